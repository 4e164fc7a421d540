import numpy as np
import pytest
from edge_alm.runtime.features import log_mel
from edge_alm.runtime.manifest import FeatureParams
from transformers import WhisperFeatureExtractor


@pytest.mark.parametrize("seconds", [0.05, 2.7, 12.0, 29.99, 31.0])
def test_log_mel_matches_transformers(seconds):
    rng = np.random.default_rng(int(seconds * 100))
    x = (rng.standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)
    x[: len(x) // 3] *= 0.01  # quiet start: exercises the max - 8 clamp
    ref = WhisperFeatureExtractor()(x, sampling_rate=16000, return_tensors="np").input_features[0]
    got = log_mel(x, FeatureParams())
    assert got.shape == ref.shape == (80, 3000)
    assert np.abs(got - ref).max() < 1e-4


def test_short_window_equals_reference_on_padded_waveform():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(16000 * 4) * 0.1).astype(np.float32)
    fe = WhisperFeatureExtractor(chunk_length=10)  # 10 s window, waveform zero-padded
    ref = fe(x, sampling_rate=16000, return_tensors="np").input_features[0]
    got = log_mel(x, FeatureParams(), n_samples=160000)
    assert got.shape == ref.shape == (80, 1000)
    assert np.abs(got - ref).max() < 1e-4
