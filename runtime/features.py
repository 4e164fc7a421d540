"""Log-mel features in numpy, for the two kinds a manifest can name (FeatureParams.kind).

"whisper" (`log_mel`), equal to transformers' WhisperFeatureExtractor: zero-pad the waveform
to the window length, centred STFT (reflect padding, periodic Hann window), power spectrum,
Slaney mel filterbank, log10, clamp to (max - 8), then (x + 4) / 4; the last STFT frame is
dropped, as the reference does.

"power-db" (`power_db_mel`), equal to torchlibrosa's Spectrogram + LogmelFilterBank (as HTSAT
uses them): the same STFT and filterbank between fmin and fmax, every frame kept, then
10 * log10(max(power, 1e-10)), no clamp, time-major.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from edge_alm.runtime.manifest import FeatureParams


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney scale: linear below 1 kHz, logarithmic above
    f = np.asarray(f, dtype=np.float64)
    mel = 3.0 * f / 200.0
    log_region = f >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) * 27.0 / np.log(6.4), mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f = 200.0 * m / 3.0
    return np.where(m >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (m - 15.0)), f)


@lru_cache(maxsize=4)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float = 0.0) -> np.ndarray:
    """Slaney-normalised triangular filters from fmin to fmax (0: Nyquist), shape (n_fft // 2 + 1, n_mels)."""
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_pts = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax or sample_rate / 2), n_mels + 2)
    hz_pts = _mel_to_hz(mel_pts)
    diff = np.diff(hz_pts)
    slopes = hz_pts[None, :] - fft_freqs[:, None]  # (F, n_mels + 2)
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    fb *= 2.0 / (hz_pts[2:] - hz_pts[:-2])[None, :]
    return fb


@lru_cache(maxsize=4)
def _hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic


BLOCK_FRAMES = 500  # STFT frames per block: a 30 s window at once held about 40 MB of float64 temporaries


def _mel_power(x: np.ndarray, params: FeatureParams, filters: np.ndarray) -> np.ndarray:
    """Centred STFT power through the mel filters, one row per hop: (1 + len(x) // hop, n_mels).
    Computed in blocks of frames (each row is independent), so the (T, n_fft) frames and their
    complex spectrum never exist for the whole window at once."""
    x = np.pad(x, params.n_fft // 2, mode="reflect")
    n_frames = 1 + (len(x) - params.n_fft) // params.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(x, params.n_fft)[:: params.hop_length][:n_frames]  # a view
    window = _hann(params.n_fft)
    out = np.empty((n_frames, filters.shape[1]))
    for i in range(0, n_frames, BLOCK_FRAMES):
        spec = np.abs(np.fft.rfft(frames[i : i + BLOCK_FRAMES] * window, axis=-1)) ** 2  # (block, F)
        out[i : i + BLOCK_FRAMES] = spec @ filters
    return out


def power_db_mel(samples: np.ndarray, params: FeatureParams) -> np.ndarray:
    """10 * log10 power mel (1 + len // hop, n_mels) of mono float samples at params.sample_rate."""
    filters = mel_filters(params.sample_rate, params.n_fft, params.n_mels, params.fmin, params.fmax)
    mel = _mel_power(np.asarray(samples, np.float64), params, filters)  # (T, n_mels)
    return (10.0 * np.log10(np.maximum(mel, 1e-10))).astype(np.float32)  # (T, n_mels)


def log_mel(samples: np.ndarray, params: FeatureParams, n_samples: int | None = None) -> np.ndarray:
    """Log-mel features (n_mels, n_samples // hop) of mono float samples at params.sample_rate.

    n_samples: zero-pad (or cut) the waveform to this length first; default is the
    model's full window (chunk_seconds).
    """
    if n_samples is None:
        n_samples = params.chunk_seconds * params.sample_rate
    x = np.zeros(n_samples, dtype=np.float64)
    m = min(len(samples), n_samples)
    x[:m] = samples[:m]
    mel = _mel_power(x, params, mel_filters(params.sample_rate, params.n_fft, params.n_mels))[:-1]  # (T, n_mels)
    logspec = np.log10(np.maximum(mel, 1e-10))
    logspec = np.maximum(logspec, logspec.max() - 8.0)
    return ((logspec + 4.0) / 4.0).T.astype(np.float32)  # (n_mels, T)
