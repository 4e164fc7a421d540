"""Mellow: `edge-alm export mellow` on a full-size checkpoint against the reference's recorded
outputs (tests/data/mellow_reference.npz, written by tests/mellow_oracle.py beside the
reference code). The checkpoint is rebuilt here from the recorded tensor names and shapes by
the rule in tests/mellow_rules.py, so it is the one the reference ran."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import mellow_rules as R
import numpy as np
import pytest
import soundfile as sf
from edge_alm.export.mellow_export import MELLOW_FEATURES
from edge_alm.runtime.alm import PromptError
from edge_alm.runtime.alm_audio import ClipCutWarning
from edge_alm.runtime.features import power_db_mel
from mellow_oracle import lm_directory

from edge_alm.cli import main as cli
from edge_alm.model import EdgeALM

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::edge_alm.runtime.alm_audio.ClipCutWarning")  # clip 2 is 12 s
FIX = np.load(R.FIXTURE)
SPEC = json.loads(str(FIX["spec"]))
EXPECTED = json.loads(str(FIX["tokens"]))


def clip(i: int) -> np.ndarray:
    return R.synth_clip(*R.CLIPS[i])


def test_features_equal_torchlibrosa():
    got = power_db_mel(R.synth_clip(*R.FEATURE_CLIP), MELLOW_FEATURES)
    assert got.shape == FIX["features"].shape  # (1 + samples // hop, 64)
    # torchlibrosa's Spectrogram + LogmelFilterBank run in float64: equal within 1e-4 dB
    assert np.abs(got - FIX["features64"]).max() < 1e-4
    # as the reference runs them (float32 convolution STFT): its own rounding, up to ~2e-4 dB
    diff = np.abs(got - FIX["features"])
    assert np.percentile(diff, 99) < 1e-4 and diff.max() < 5e-4


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mellow")
    ckpt = R.write_checkpoint([(n, tuple(s)) for n, s in SPEC], d / "v0.ckpt")
    out = {}
    for q in ("fp32", "int8"):
        out[q] = d / q
        argv = ["export", "mellow", "--checkpoint", str(ckpt), "--quantize", q, "--out", str(out[q])]
        if q == "int8":  # the other way in: a SmolLM2-135M directory, as the reference reads it
            argv += ["--lm-dir", str(lm_directory(d))]
        assert cli([*argv, "--cache", str(ROOT / ".cache")]) == 0
    return out


@pytest.fixture(scope="module")
def fp32(bundles) -> EdgeALM:
    return EdgeALM.load(bundles["fp32"], threads=2)


def encode(model: EdgeALM, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    alm = model.alm
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClipCutWarning)
        feats = alm.features(samples)
    (hidden,) = alm.audio_encoder.run({"input_features": feats})
    (emb,) = alm.adapter.run({"hidden": hidden})
    return hidden[0], emb[0]


@pytest.mark.parametrize("i", range(len(R.CLIPS)))
def test_encoder_and_audio_prefix_match_reference(fp32, i):
    hidden, emb = encode(fp32, clip(i))
    assert hidden.shape == (33, 768) and emb.shape == (129, 576)
    assert np.abs(hidden - FIX[f"embedding{i}"]).max() < 1e-4
    distinct = np.concatenate([emb[:1], emb[1::4]])
    assert np.abs(distinct - FIX[f"prefix{i}"]).max() < 1e-4
    assert np.array_equal(emb[1:], np.repeat(emb[1::4], 4, axis=0))  # pooled frames repeat, as the reference's


def test_long_clip_is_cut_with_a_warning(fp32):
    with pytest.warns(ClipCutWarning, match="fixed segment"):
        fp32.alm.features(clip(2))


@pytest.mark.parametrize("k", range(len(R.PROMPTS)))
def test_question_tokens_match_reference(fp32, k):
    parts = fp32.alm.prompt_parts(R.PROMPTS[k], 2, True)
    assert parts[0] == 0 and parts[1] == [0] and parts[2] == 1 and parts[3] == [0]  # clip, sep, clip, sep
    assert parts[4] == FIX["prompt_ids"][k].tolist()  # 129 ids, cut and padded with "!"


@pytest.mark.parametrize("e", range(len(R.EXAMPLES)))
def test_greedy_tokens_match_reference(fp32, e):
    a, b, p = R.EXAMPLES[e]
    answer = fp32.ask(R.PROMPTS[p], [(clip(a), R.SR), (clip(b), R.SR)], max_new_tokens=R.MAX_TOKENS)
    assert answer.tokens == EXPECTED[e][: R.MAX_TOKENS]
    assert answer.timings["prompt_tokens"] == 389  # 129 + 1 + 129 + 1 + 129, as the reference's prefix_length


def test_logits_at_every_step_match_reference(fp32):
    """Prefill and every cached step: the reference's 20 highest logits, by id, within 1e-3."""
    for e, (a, b, p) in enumerate(R.EXAMPLES):
        chat = fp32.chat([(clip(a), R.SR), (clip(b), R.SR)])
        logits, _ = chat._prefill(R.PROMPTS[p])
        for step, token in enumerate(EXPECTED[e][: R.MAX_TOKENS]):
            ids, want = FIX["top_ids"][e, step], FIX["top_values"][e, step]
            assert np.abs(logits[0, ids] - want).max() < 1e-3, (e, step)
            assert int(np.argmax(logits[0])) == token
            logits = chat.state.step(np.array([token]))


def first_logits(model: EdgeALM, e: int) -> np.ndarray:
    a, b, p = R.EXAMPLES[e]
    chat = model.chat([(clip(a), R.SR), (clip(b), R.SR)])
    logits, _ = chat._prefill(R.PROMPTS[p])
    return logits[0]


def test_int8_keeps_first_tokens_or_logits(bundles, fp32):
    int8 = EdgeALM.load(bundles["int8"], threads=2)
    for k, prompt in enumerate(R.PROMPTS):  # built with --lm-dir: the same question ids
        assert int8.alm.prompt_parts(prompt, 2, True)[4] == FIX["prompt_ids"][k].tolist()
    for e, (a, b, p) in enumerate(R.EXAMPLES):
        clips = [(clip(a), R.SR), (clip(b), R.SR)]
        first = int8.ask(R.PROMPTS[p], clips, max_new_tokens=4).tokens
        x, y = first_logits(fp32, e), first_logits(int8, e)
        cos = float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
        assert first == EXPECTED[e][:4] or cos >= 0.99, (e, first, cos)


def test_no_padding_shortens_the_prefix(fp32):
    alm = fp32.alm
    padded = alm.prompt_parts(R.PROMPTS[0], 2, True)
    alm.config = replace(alm.config, prompt=replace(alm.config.prompt, question_tokens=0))
    try:
        short = alm.prompt_parts(R.PROMPTS[0], 2, True)
        answer = fp32.ask(R.PROMPTS[0], [(clip(0), R.SR), (clip(1), R.SR)], max_new_tokens=2)
    finally:
        alm.config = replace(alm.config, prompt=replace(alm.config.prompt, question_tokens=129))
    assert len(padded[4]) == 129 and 0 < len(short[4]) < 20
    assert answer.timings["prompt_tokens"] == 260 + len(short[4])


def test_one_question_per_chat_and_one_clip_given_twice(fp32):
    chat = fp32.chat([(clip(0), R.SR)])
    assert chat.model.prompt_parts("x", 1, True)[:4] == [0, [0], 0, [0]]
    chat.ask(R.PROMPTS[1], max_new_tokens=1)
    with pytest.raises(PromptError, match="one question per chat"):
        chat.ask("and then?")


def test_cli_ask_resamples_any_rate(bundles, tmp_path, capsys):
    import soxr

    for i, rate in ((0, 44100), (1, 16000)):
        sf.write(tmp_path / f"{i}.wav", soxr.resample(clip(i), R.SR, rate), rate)
    argv = ["ask", "--model", str(bundles["fp32"]), "--audio", str(tmp_path / "0.wav"), "--audio"]
    code = cli([*argv, str(tmp_path / "1.wav"), "caption the audio.", "--max-new-tokens", "3", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and len(out["tokens"]) == 3


def test_export_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    for argv, needle in (
        (["--checkpoint", str(tmp_path / "none.ckpt")], "checkpoint not found"),
        (["--checkpoint", str(bad)], "not a PyTorch checkpoint"),
        ([], "needs --checkpoint"),
    ):
        assert cli(["export", "mellow", *argv, "--out", str(tmp_path / "o")]) == 1
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
