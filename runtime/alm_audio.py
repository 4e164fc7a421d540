"""A clip as an alm bundle's audio encoder hears it: its log-mel input (padded to whole audio
embeddings, or repeated / cut to a fixed segment) and its measured level for the prompt's clip
facts (AlmPrompt.clip_facts)."""

from __future__ import annotations

import warnings

import numpy as np
from edge_alm.runtime.errors import AudioError
from edge_alm.runtime.features import log_mel, power_db_mel
from edge_alm.runtime.manifest import AlmAudio, FeatureParams


class ClipCutWarning(UserWarning):
    """A clip is longer than the model's fixed segment; only its start is heard."""


def fit_segment(samples: np.ndarray, n: int) -> np.ndarray:
    """Repeat a short clip end to end, or keep the start of a long one: exactly n samples."""
    if len(samples) == 0:
        raise AudioError("clip is empty")
    if len(samples) > n:
        warnings.warn(
            f"clip is {len(samples)} samples; this model hears a fixed segment of {n}: the rest is not used",
            ClipCutWarning,
            stacklevel=3,
        )
        return samples[:n]
    return np.tile(samples, -(-n // len(samples)))[:n]


def padded_length(n_samples: int, p: FeatureParams, a: AlmAudio) -> int:
    """A clip's length as the encoder hears it: at least min_seconds, a whole number of audio
    embeddings (2 * pool mel frames each)."""
    step = 2 * a.pool * p.hop_length
    n = max(n_samples, int(a.min_seconds * p.sample_rate), 1)
    return -(-n // step) * step


def clip_level_db(samples: np.ndarray, p: FeatureParams, a: AlmAudio) -> float:
    """The clip's RMS level in dBFS over the span the encoder hears (padding counts as silence):
    the power mean of its frame levels (frame_stats), which training reads from its cache. For
    encoders of the clip's own length (segment_seconds = 0, the only kind trained with clip facts)."""
    energy = float(np.sum(np.square(samples, dtype=np.float64))) / padded_length(len(samples), p, a)
    return 10 * np.log10(energy + 1e-12)


def clip_features(samples: np.ndarray, p: FeatureParams, a: AlmAudio) -> np.ndarray:
    """Mono float samples at p.sample_rate -> the audio encoder's input: whisper log-mel
    (1, n_mels, T) of the clip's own length (at least min_seconds, padded with silence, T a
    whole number of audio embeddings), or, with a fixed segment (segment_seconds), the
    features of that segment (power-dB mel: (1, T, n_mels))."""
    if a.segment_seconds > 0:
        x = fit_segment(samples, round(a.segment_seconds * p.sample_rate))
        return power_db_mel(x, p)[None] if p.kind == "power-db" else log_mel(x, p, n_samples=len(x))[None]
    n = padded_length(len(samples), p, a)
    if n // p.hop_length > a.max_frames:
        raise AudioError(
            f"clip is {len(samples) / p.sample_rate:.1f} s; this model's audio encoder takes at most "
            f"{a.max_frames * p.hop_length / p.sample_rate:.1f} s"
        )
    return np.ascontiguousarray(log_mel(samples, p, n_samples=n)[None], np.float32)
