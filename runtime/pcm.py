"""One normaliser for every way audio arrives (files, arrays, stream chunks): integer or
float samples, mono or multi-channel in either axis order -> float32 mono in [-1, 1].

Integers are scaled before channels are mixed (mixing first would turn int16 into float64
at full integer scale). Anything else is an AudioError that names the problem.
"""

from __future__ import annotations

import numpy as np
from edge_alm.runtime.errors import AudioError

INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0, np.dtype(np.int8): 128.0}
MAX_CHANNELS = 8  # a 2-D array with at most this many rows and more columns is channels-first


def to_mono_float(samples, name: str = "audio") -> np.ndarray:
    """int8/int16/int32/uint8/float samples, (T,), (T, C) or (C, T) -> float32 (T,)."""
    try:
        a = np.asarray(samples)
    except (TypeError, ValueError) as e:
        raise AudioError(f"{name}: not an array of samples ({e})") from None
    if a.dtype in INT_SCALE:
        a = a.astype(np.float32) / INT_SCALE[a.dtype]
    elif a.dtype == np.uint8:
        a = (a.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32, copy=False)
    else:
        raise AudioError(f"{name}: unsupported sample type {a.dtype} (expected int8/16/32, uint8 or float)")
    if a.ndim == 2:
        if a.shape[0] <= MAX_CHANNELS < a.shape[1]:
            a = a.T  # channels-first, as librosa and torchaudio give it
        a = a.mean(axis=1, dtype=np.float32)
    elif a.ndim != 1:
        raise AudioError(f"{name}: expected samples shaped (T,), (T, channels) or (channels, T), got {a.shape}")
    if a.size and not np.isfinite(a.sum(dtype=np.float64)):  # a sum, not a mask as large as the audio
        raise AudioError(f"{name}: audio holds NaN or Inf samples")
    return np.ascontiguousarray(a, np.float32)


def check_rate(rate, name: str = "audio") -> int:
    """A positive integer sample rate, or an AudioError."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer, float)) or rate != rate:
        raise AudioError(f"{name}: sample rate must be a positive number, got {rate!r}")
    if rate <= 0 or int(rate) != rate:
        raise AudioError(f"{name}: invalid sample rate {rate!r}")
    return int(rate)
