"""Frame level and pitch (runtime/frame_stats.py) on signals whose level and pitch are known, and
an alm bundle whose adapter reads them: the runtime feeds what the PyTorch adapter gets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from edge_alm.runtime.frame_stats import frame_stats

SR, HOP = 16000, 320


def voice(f0: float, seconds: float = 1.0, amp: float = 0.1) -> np.ndarray:
    """A buzz with seven harmonics: a crude voiced vowel of pitch f0."""
    t = np.arange(int(seconds * SR)) / SR
    return (amp * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))).astype(np.float32)


@pytest.mark.parametrize("f0", [95.0, 120.0, 210.0, 260.0])
def test_pitch_of_a_voiced_signal(f0):
    s = frame_stats(voice(f0), 50, HOP, SR)[5:45]  # (frames, [level, voicing, pitch]) inside the clip
    assert s.shape == (40, 3) and (s[:, 1] > 0.9).all()
    heard = 150 * 2 ** (s[:, 2] / s[:, 1])
    assert np.abs(heard / f0 - 1).max() < 0.03


def test_level_follows_gain_and_silence_has_no_pitch():
    x = voice(150.0)
    loud, quiet = frame_stats(x, 50, HOP, SR), frame_stats(x * 10 ** (-12 / 20), 50, HOP, SR)
    assert np.allclose(loud[5:45, 0] - quiet[5:45, 0], 12 / 20, atol=1e-3)  # 12 dB = 0.6
    padded = frame_stats(x[: SR // 2], 50, HOP, SR)  # half a second of signal, then padding
    assert (padded[30:, 0] == -3.0).all() and (padded[30:, 1:] == 0).all()
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    assert frame_stats(noise, 50, HOP, SR)[5:45, 1].mean() < 0.3  # white noise is not voiced


def test_an_adapter_that_reads_frame_stats_gets_them_from_the_runtime(tiny_alm, tmp_path):
    torch = pytest.importorskip("torch")
    from edge_alm.export.alm_export import build_alm_bundle
    from edge_alm.export.alm_graphs import PooledMLPAdapter

    from edge_alm import EdgeALM

    parts, _ = tiny_alm
    torch.manual_seed(1)
    d_audio, d_model = parts.adapter.fc1.in_features, parts.adapter.fc2.out_features
    adapter = PooledMLPAdapter(d_audio, d_model, parts.pool, n_stats=3).eval()
    bundle = build_alm_bundle(dataclasses.replace(parts, adapter=adapter), tmp_path / "b", quantize="fp32")
    model = EdgeALM.load(bundle, threads=1).alm
    assert model.adapter.inputs == ["hidden", "frame_stats"]
    x = voice(110.0, 2.3)
    got = model.encode_clip(x)
    with torch.no_grad():
        hidden = parts.encoder(torch.from_numpy(model.features(x)))  # (1, S, C)
        stats = torch.from_numpy(model.frame_stats(x, hidden.shape[1]))[None]  # (1, S, 3)
        want = adapter(hidden, stats)[0].numpy()
    assert np.abs(got - want).max() < 1e-4


def test_clip_facts_give_the_lm_the_level_that_training_reads_from_the_frame_stats(tiny_alm, tmp_path):
    torch = pytest.importorskip("torch")
    from edge_alm.export.alm_export import build_alm_bundle
    from edge_alm.runtime.alm_audio import clip_level_db
    from edge_alm.runtime.frame_stats import stats_level_db

    from edge_alm import EdgeALM

    parts, _ = tiny_alm
    facts = " (level {level_db} dBFS)"
    bundle = build_alm_bundle(dataclasses.replace(parts, clip_facts=facts), tmp_path / "b", quantize="fp32")
    model = EdgeALM.load(bundle, threads=1)
    alm = model.alm
    loud, quiet = voice(120.0, 2.3, amp=0.2), voice(200.0, 0.6, amp=0.01)  # the quiet one is padded to 1 s
    for x in (loud, quiet):
        n_frames = alm.features(x).shape[2] // 2
        measured = clip_level_db(x, alm.params, alm.config.audio)
        assert abs(measured - stats_level_db(alm.frame_stats(x, n_frames))) < 0.05  # runtime = training
        padded = n_frames * 2 * alm.params.hop_length
        assert abs(measured - 10 * np.log10(np.mean(np.square(x, dtype=np.float64)) * len(x) / padded)) < 1e-6
    assert alm.clip_facts(loud) == f" (level {round(clip_level_db(loud, alm.params, alm.config.audio))} dBFS)"
    question = "Which clip is louder?"
    texts = [alm.clip_facts(c) for c in (loud, quiet)]
    layout = alm.prompt_parts(question, 2, True, texts)
    at = [i for i, p in enumerate(layout) if isinstance(p, int)]
    assert [alm.decode(layout[i + 1]) for i in at] == texts  # each clip's facts right after its audio
    assert texts[0] != texts[1]
    # the chat prefills that layout: the same logits as the reference embeddings in PyTorch
    chat = model.chat([(loud, 16000), (quiet, 16000)])
    logits, info = chat._prefill(question)
    emb = parts.lm.get_input_embeddings()
    with torch.no_grad():
        chunks = [
            parts.adapter(parts.encoder(torch.from_numpy(alm.features((loud, quiet)[p]))))[0]
            if isinstance(p, int)
            else emb(torch.tensor(p))
            for p in layout
        ]
        x = torch.cat(chunks)[None]
        ref = parts.lm(inputs_embeds=x).logits[0, -1].numpy()
    assert info["prompt_tokens"] == x.shape[1]
    assert np.abs(logits[0] - ref).max() < 1e-4
