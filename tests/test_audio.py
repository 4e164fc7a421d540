import numpy as np
import pytest
import soundfile as sf

from edge_alm.audio import load_audio
from edge_alm.errors import AudioError


def tone(sr, seconds=1.0, f=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resampled_to_16k(sr):
    out = load_audio((tone(sr), sr))
    assert abs(len(out) - 16000) <= 2
    ref = tone(16000)
    n = min(len(out), len(ref))
    assert np.abs(out[200 : n - 200] - ref[200 : n - 200]).max() < 0.01


def test_stereo_int16_file_is_mixed_down(tmp_path):
    left = (tone(16000) * 32767).astype(np.int16)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 16000, subtype="PCM_16")
    out = load_audio(tmp_path / "s.wav")
    assert out.dtype == np.float32 and out.ndim == 1
    np.testing.assert_allclose(out, left / 32768.0 / 2, atol=1e-4)


@pytest.mark.parametrize("ext", ["flac", "ogg"])
def test_compressed_formats_and_bytes(tmp_path, ext):
    sf.write(tmp_path / f"a.{ext}", tone(48000), 48000)
    from_path = load_audio(tmp_path / f"a.{ext}")
    from_bytes = load_audio((tmp_path / f"a.{ext}").read_bytes())
    assert abs(len(from_path) - 16000) <= 2
    np.testing.assert_array_equal(from_path, from_bytes)


def test_int16_samples_tuple():
    x = (tone(16000) * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio((x, 16000)), x / 32768.0, atol=1e-6)


def test_bad_rate():
    with pytest.raises(AudioError, match="sample rate"):
        load_audio((tone(16000), 0))


@pytest.mark.parametrize("sr,channels", [(22050, 1), (44100, 2), (16000, 1), (8000, 1)])
def test_a_long_file_read_a_block_at_a_time_equals_reading_it_whole(tmp_path, sr, channels):
    from edge_alm.audio import AudioFile, open_audio

    g = np.random.default_rng(sr)
    x = (0.1 * g.standard_normal((int(sr * 75.3), channels))).astype(np.float32)
    sf.write(tmp_path / "long.wav", x, sr, subtype="FLOAT")
    whole = load_audio(tmp_path / "long.wav")
    with open_audio(tmp_path / "long.wav") as f:  # over 60 s: read lazily
        assert isinstance(f, AudioFile) and len(f) == len(whole)
        n = len(f) // 512
        chunks = np.concatenate([f[i * 512 : (i + 1) * 512] for i in range(n)])  # as the VAD reads it
        np.testing.assert_allclose(chunks, whole[: n * 512], atol=1e-5)
        for a, b in [(0, 10), (len(f) - 5000, len(f) + 100), (123_457, 123_457 + 29 * 16000), (700_001, 700_000)]:
            np.testing.assert_allclose(f[a:b], whole[a:b], atol=1e-5)
    assert isinstance(open_audio(tmp_path / "long.wav", lazy_after_s=100.0), np.ndarray)
