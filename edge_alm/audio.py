"""Audio input: files (WAV/FLAC/OGG via soundfile), bytes, or (samples, rate) -> mono float32 16 kHz."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from edge_alm.errors import AudioError

AudioInput = str | Path | bytes | tuple[np.ndarray, int] | np.ndarray


def to_mono_float(samples: np.ndarray, name: str = "audio") -> np.ndarray:
    """int16/int32/float samples, (T,) or (T, C), -> float32 mono in [-1, 1]."""
    a = np.asarray(samples)
    if a.ndim == 2:
        # channels last is the soundfile convention; accept (C, T) with few channels too
        if a.shape[0] <= 8 < a.shape[1]:
            a = a.T
        a = a.mean(axis=1) if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64).mean(axis=1)
    elif a.ndim != 1:
        raise AudioError(f"{name}: expected samples shaped (T,) or (T, channels), got {a.shape}")
    if a.dtype == np.int16:
        a = a.astype(np.float32) / 32768.0
    elif a.dtype == np.int32:
        a = a.astype(np.float32) / 2147483648.0
    elif a.dtype == np.uint8:
        a = (a.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
    else:
        raise AudioError(f"{name}: unsupported sample type {a.dtype}")
    if a.size and not np.isfinite(a).all():
        raise AudioError(f"{name}: audio holds NaN or Inf samples")
    return a


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate <= 0:
        raise AudioError(f"invalid sample rate {rate}")
    if rate == target or samples.size == 0:
        return samples
    return soxr.resample(samples, rate, target, quality="HQ").astype(np.float32)


def load_audio(audio: AudioInput, target_rate: int = 16000) -> np.ndarray:
    """Any supported input -> mono float32 samples at target_rate."""
    if isinstance(audio, tuple):
        if len(audio) != 2:
            raise AudioError("audio tuple must be (samples, sample_rate)")
        samples, rate = audio
        return resample(to_mono_float(samples, "samples"), int(rate), target_rate)
    if isinstance(audio, np.ndarray):
        return to_mono_float(audio, "samples")  # assumed to be at target_rate already
    if isinstance(audio, (bytes, bytearray)):
        name, src = "audio bytes", io.BytesIO(audio)
    else:
        path = Path(audio)
        if not path.is_file():
            raise AudioError(f"{path}: audio file not found")
        name, src = str(path), str(path)
    try:
        data, rate = sf.read(src, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(f"{name}: cannot read audio ({why})") from None
    return resample(to_mono_float(data, name), rate, target_rate)
