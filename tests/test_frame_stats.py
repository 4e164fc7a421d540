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
