"""The alm kind on tiny random models: runtime against PyTorch, caches against recomputation,
prompt layout, chat turns, Qwen2-Audio against transformers' generate, and bad requests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from edge_alm.runtime.alm import AlmState, PromptError
from edge_alm.runtime.kv_cache import KVBuffers

from edge_alm import BundleError, EdgeALM

QUESTION = "What is in this recording?"


def clip(seed: int, seconds: float = 2.3) -> np.ndarray:
    g = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * g.uniform(200, 800) * t) + 0.05 * g.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tiny_alm):
    parts, bundle = tiny_alm
    return parts, EdgeALM.load(bundle, threads=1)


def reference_embeds(parts, model, parts_list, clips) -> torch.Tensor:
    """The prompt's embeddings built in PyTorch: text through the HF embedding, each clip
    through the encoder and adapter modules, placed in the order the template gives."""
    emb = parts.lm.get_input_embeddings()
    chunks = []
    with torch.no_grad():
        for part in parts_list:
            if isinstance(part, int):
                feats = torch.from_numpy(model.alm.features(clips[part]))
                chunks.append(parts.adapter(parts.encoder(feats))[0])
            else:
                chunks.append(emb(torch.tensor(part)))
    return torch.cat(chunks)[None]  # (1, N, D)


def test_prefill_logits_equal_pytorch(tiny):
    parts, model = tiny
    clips = [clip(0)]
    chat = model.chat([(c, 16000) for c in clips])
    logits, _ = chat._prefill(QUESTION)
    x = reference_embeds(parts, model, model.alm.prompt_parts(QUESTION, 1, True), clips)
    with torch.no_grad():
        ref = parts.lm(inputs_embeds=x).logits[0, -1].numpy()
    assert np.abs(logits[0] - ref).max() < 1e-4


def test_expected_number_equals_pytorch_and_leaves_the_chat_as_it_was(tiny):
    """Chat.expect_number: the units digit's probabilities (top 3) times each one's expected
    tenths digit after "d.", recomputed in PyTorch from the prompt's embeddings."""
    parts, model = tiny
    clips = [clip(3)]
    chat = model.chat([(c, 16000) for c in clips])
    got = chat.expect_number(QUESTION, min_digit_mass=0.0)
    x = reference_embeds(parts, model, model.alm.prompt_parts(QUESTION, 1, True), clips)
    emb = parts.lm.get_input_embeddings()
    ids = [model.alm.encode(str(d))[0] for d in range(10)]
    point = model.alm.encode(".")[0]
    with torch.no_grad():
        units = torch.softmax(parts.lm(inputs_embeds=x).logits[0, -1].double()[ids], -1)
        top = torch.argsort(units, descending=True)[:3]
        total = 0.0
        for d in top.tolist():
            y = torch.cat([x, emb(torch.tensor([[ids[d], point]]))], 1)
            tenths = torch.softmax(parts.lm(inputs_embeds=y).logits[0, -1].double()[ids], -1)
            total += units[d].item() * (d + (tenths * torch.arange(10)).sum().item() / 10)
    assert abs(got - total / units[top].sum().item()) < 1e-3
    fresh = model.chat([(c, 16000) for c in clips]).ask(QUESTION, max_new_tokens=5)
    assert chat.ask(QUESTION, max_new_tokens=5).tokens == fresh.tokens  # nothing was added to the chat
    with pytest.raises(ValueError, match="with a number"):  # a random LM puts little mass on digits
        model.chat([(c, 16000) for c in clips]).expect_number(QUESTION)


def test_greedy_tokens_equal_transformers_generate(tiny):
    parts, model = tiny
    clips = [clip(1)]
    answer = model.ask(QUESTION, audio=[(clips[0], 16000)], max_new_tokens=12)
    x = reference_embeds(parts, model, model.alm.prompt_parts(QUESTION, 1, True), clips)
    stops = model.manifest.config.prompt.stop_tokens
    with torch.no_grad():
        ref = parts.lm.generate(
            inputs_embeds=x, max_new_tokens=12, do_sample=False, eos_token_id=stops, pad_token_id=stops[0]
        )[0].tolist()
    ref = [t for t in ref if t not in stops]
    assert len(answer.tokens) == 12 and answer.tokens == ref
    assert answer.timings["prompt_tokens"] == x.shape[1]


def test_cached_decoding_equals_recomputation(tiny):
    """The logits of the last cached step equal one uncached pass over the whole sequence,
    with the in-place cache buffers growing several times on the way."""
    _, model = tiny
    alm = model.alm
    chat = model.chat([(clip(2), 16000)])
    lm = alm.config.lm
    chat.state.cache = KVBuffers(lm.n_layers, 1, lm.n_kv_heads, lm.head_dim, capacity=4)
    logits, _ = chat._prefill(QUESTION)
    prefix = chat.state.cache.length
    toks = []
    for _ in range(6):
        tok = int(np.argmax(logits[0]))
        toks.append(tok)
        logits = chat.state.step(np.array([tok]))
    fresh = AlmState(alm)
    x = np.concatenate(
        [
            np.concatenate(
                [
                    alm.encode_clip(clip(2)) if isinstance(p, int) else alm.embed(np.array([p]))[0]
                    for p in alm.prompt_parts(QUESTION, 1, True)
                ]
            ),
            alm.embed(np.array([toks]))[0],
        ]
    )[None]
    assert x.shape[1] == prefix + 6 and chat.state.cache.capacity >= prefix + 6
    full = fresh.feed(x)
    assert np.abs(full - logits).max() < 1e-4
    # rewinding the cache and feeding the same token again gives the same logits
    chat.state.cache.rewind_to(prefix + 5)
    again = chat.state.step(np.array([toks[-1]]))
    assert np.abs(again - logits).max() < 1e-5


def test_two_clip_prompt_places_each_clip_in_its_slot(tiny):
    parts, model = tiny
    clips = [clip(3, 2.0), clip(4, 3.1)]
    layout = model.alm.prompt_parts(QUESTION, 2, True)
    assert [p for p in layout if isinstance(p, int)] == [0, 1]
    chat = model.chat([(c, 16000) for c in clips])
    logits, info = chat._prefill(QUESTION)
    x = reference_embeds(parts, model, layout, clips)
    with torch.no_grad():
        ref = parts.lm(inputs_embeds=x).logits[0, -1].numpy()
    assert info["prompt_tokens"] == x.shape[1]
    assert np.abs(logits[0] - ref).max() < 1e-4
    swapped, _ = model.chat([(c, 16000) for c in clips[::-1]])._prefill(QUESTION)
    assert np.abs(swapped - logits).max() > 1e-3  # the order of the clips matters


def test_chat_second_turn_equals_fresh_prefill_of_the_conversation(tiny):
    _, model = tiny
    alm = model.alm
    c = clip(5)
    chat = model.chat((c, 16000))
    first = chat.ask(QUESTION, max_new_tokens=5)
    assert first.timings["encode_ms"] > 0
    logits, info = chat._prefill("And how loud is it?")
    assert info["encode_ms"] == 0.0  # the clip is not encoded again ...
    follow = alm.prompt_parts("And how loud is it?", 0, False)
    assert info["prompt_tokens"] == len(follow[0])  # ... and only the new turn is prefilled
    pieces = [
        alm.encode_clip(c) if isinstance(p, int) else alm.embed(np.array([p]))[0]
        for p in alm.prompt_parts(QUESTION, 1, True)
    ]
    pieces += [alm.embed(np.array([first.tokens]))[0], alm.embed(np.array(follow))[0]]
    fresh = AlmState(alm).feed(np.concatenate(pieces)[None])
    assert np.abs(fresh - logits).max() < 1e-4


def test_beam_answer_then_a_follow_up_continues_from_the_chosen_answer(tiny):
    _, model = tiny
    alm = model.alm
    c = clip(10)
    chat = model.chat((c, 16000))
    beam = chat.ask(QUESTION, max_new_tokens=6, beam_size=3)
    greedy = model.ask(QUESTION, audio=(c, 16000), max_new_tokens=6)
    assert len(beam.tokens) == 6 and chat.state.cache.batch == 1
    assert beam.tokens != greedy.tokens  # on this model the beams leave the greedy path
    logits, _ = chat._prefill("Why?")
    pieces = [
        alm.encode_clip(c) if isinstance(p, int) else alm.embed(np.array([p]))[0]
        for p in alm.prompt_parts(QUESTION, 1, True)
    ]
    pieces += [alm.embed(np.array([beam.tokens]))[0], alm.embed(np.array(alm.prompt_parts("Why?", 0, False)))[0]]
    fresh = AlmState(alm).feed(np.concatenate(pieces)[None])
    assert np.abs(fresh - logits).max() < 1e-4


def test_streamed_text_equals_the_answer(tiny):
    _, model = tiny
    chat = model.chat((clip(6), 16000))
    pieces = list(chat.stream(QUESTION))
    answer = chat.turns[-1][1]
    assert "".join(pieces) == answer.text and len(pieces) > 1


def test_sampling_is_seeded_and_differs_from_greedy(tiny):
    _, model = tiny
    audio = (clip(7), 16000)
    a = model.ask(QUESTION, audio=audio, temperature=1.0, top_p=0.9, seed=3, max_new_tokens=10)
    b = model.ask(QUESTION, audio=audio, temperature=1.0, top_p=0.9, seed=3, max_new_tokens=10)
    g = model.ask(QUESTION, audio=audio, max_new_tokens=10)
    assert a.tokens == b.tokens and a.tokens != g.tokens


def test_bad_requests_are_one_line_errors(tiny):
    _, model = tiny
    with pytest.raises(PromptError, match="got none"):
        model.ask(QUESTION)
    with pytest.raises(PromptError, match="got 3"):
        model.ask(QUESTION, audio=[(clip(i), 16000) for i in range(3)])
    with pytest.raises(PromptError, match="context is 256 tokens"):
        model.ask("word " * 300, audio=(clip(0), 16000))
    with pytest.raises(ValueError, match="needs a transcription bundle"):
        model.transcribe((clip(0), 16000))


def test_bundle_missing_its_lm_graph(tiny_alm, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_alm[1], bundle, ignore=shutil.ignore_patterns(".cache"))
    (bundle / "lm.onnx").unlink()
    with pytest.raises(BundleError, match="lm.onnx: lm file missing"):
        EdgeALM.load(bundle)
    proc = cli("ask", "--model", bundle, QUESTION)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")] == [
        f"error: {bundle / 'lm.onnx'}: lm file missing from the bundle"
    ]
    m = json.loads((bundle / "manifest.json").read_text())
    del m["alm"]["lm"]["context_length"]
    (bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="alm.lm: missing field 'context_length'"):
        EdgeALM.load(bundle)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edge_alm.cli", *map(str, args)], capture_output=True, text=True)


def test_cli_ask_and_its_errors(tiny_alm, tmp_path):
    import soundfile as sf

    bundle = tiny_alm[1]
    wav = tmp_path / "a.wav"
    sf.write(wav, clip(8), 16000)
    ok = cli("ask", "--model", bundle, "--audio", wav, QUESTION, "--max-new-tokens", "6", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert len(out["tokens"]) == 6 and isinstance(out["text"], str) and out["timings"]["prefill_ms"] > 0
    assert "adapter is untrained" in ok.stderr  # the tiny bundle's adapter is random: say so
    for args, needle in [
        ((QUESTION,), "got none"),
        (("--audio", wav, "--audio", wav, "--audio", wav, QUESTION), "got 3"),
        (("--audio", tmp_path / "missing.wav", QUESTION), "audio file not found"),
        (("--audio", wav, "--number", QUESTION), "does not answer"),  # a random LM gives no number
    ]:
        proc = cli("ask", "--model", bundle, *args)
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert proc.returncode == 1 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
        assert needle in lines[0]


def test_qwen2_audio_tokens_equal_transformers_generate(smollm2_tokenizer, tmp_path):
    from edge_alm.export.alm_export import build_alm_bundle
    from edge_alm.export.qwen2_audio import qwen2_audio_parts
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    audio_token = 49151
    cfg = Qwen2AudioConfig(
        audio_config=dict(
            d_model=64,
            encoder_layers=2,
            encoder_attention_heads=4,
            encoder_ffn_dim=128,
            num_mel_bins=80,
            max_source_positions=100,
        ),
        text_config=dict(
            model_type="qwen2",
            vocab_size=49152,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=128,
            max_position_embeddings=512,
            eos_token_id=2,
        ),
        audio_token_index=audio_token,
    )
    torch.manual_seed(0)
    hf = Qwen2AudioForConditionalGeneration(cfg).eval()
    hf.generation_config.eos_token_id = 2
    hf.save_pretrained(tmp_path / "hf")
    shutil.copy(smollm2_tokenizer, tmp_path / "hf" / "tokenizer.json")
    bundle = build_alm_bundle(qwen2_audio_parts(tmp_path / "hf"), tmp_path / "bundle", quantize="fp32")
    model = EdgeALM.load(bundle, threads=1)
    samples = clip(9, seconds=2.0)  # the full encoder window (100 positions): no padding on either side
    answer = model.ask(QUESTION, audio=(samples, 16000), max_new_tokens=10)

    feats = torch.from_numpy(model.alm.features(samples))  # (1, 80, 200)
    ids = []
    for part in model.alm.prompt_parts(QUESTION, 1, True):
        ids += [audio_token] * 50 if isinstance(part, int) else part
    with torch.no_grad():
        out = hf.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            input_features=feats,
            feature_attention_mask=torch.ones(1, feats.shape[-1], dtype=torch.long),
            max_new_tokens=10,
            do_sample=False,
            pad_token_id=2,
        )[0, len(ids) :].tolist()
    ref = [t for t in out if t != 2]
    assert len(answer.tokens) >= 3 and answer.tokens == ref


def test_cli_bench_and_info_on_an_alm_bundle(tiny_alm, tmp_path):
    import soundfile as sf

    bundle = tiny_alm[1]
    clips = tmp_path / "clips"
    clips.mkdir()
    sf.write(clips / "a.wav", clip(11, 1.5), 16000)
    sf.write(clips / "b.wav", clip(12, 2.5), 16000)
    sf.write(clips / "long.wav", clip(13, 40.0), 16000)  # longer than the encoder takes: skipped, counted
    proc = cli("bench", bundle, "--clips", clips, "--threads", "1", "--json", "--max-new-tokens", "5", "--out", "")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)["runs"][0]
    assert s["kind"] == "alm" and s["clips"] == 2 and len(s["skipped"]) == 1 and "at most 30.0 s" in s["skipped"][0]
    assert s["first_token_ms_mean"] > s["encode_ms_mean"] > 0 and s["ms_per_token"] > 0
    info = json.loads(cli("info", bundle).stdout)
    assert info["kind"] == "alm" and set(info["graphs"]) >= {"audio_encoder", "adapter", "embed", "lm"}
    assert info["alm"]["audio"]["pool"] == 2 and info["alm"]["lm"]["n_kv_heads"] == 2
