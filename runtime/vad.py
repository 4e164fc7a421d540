"""Voice activity detection: Silero VAD on onnxruntime + numpy, with an energy fallback.

Silero's graph takes 512 new samples plus the previous 64 at 16 kHz (32 ms per call) and a
recurrent state; its output is the speech probability of that chunk.
"""

from __future__ import annotations

import numpy as np
from edge_alm.runtime.session import GraphSession

CHUNK = 512  # samples per VAD step at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous chunk the graph also sees


class SileroVAD:
    def __init__(self, session: GraphSession, sample_rate: int = 16000) -> None:
        self.session = session
        self.sample_rate = sample_rate
        self.chunk_seconds = CHUNK / sample_rate

    def speech_probs(self, samples: np.ndarray) -> np.ndarray:
        """Speech probability of each 32 ms chunk, shape (len // 512,)."""
        state = np.zeros((2, 1, 128), np.float32)
        sr = np.array(self.sample_rate, dtype=np.int64)
        n = len(samples) // CHUNK
        x = np.concatenate([np.zeros(CONTEXT, np.float32), samples[: n * CHUNK].astype(np.float32)])
        out = np.empty(n, np.float32)
        for i in range(n):
            window = x[i * CHUNK : i * CHUNK + CONTEXT + CHUNK][None]  # (1, 576)
            p, state = self.session.run({"input": window, "state": state, "sr": sr})
            out[i] = p[0, 0]
        return out


class EnergyVAD:
    """Fallback when a bundle has no VAD graph: a chunk is speech when its RMS beats a floor."""

    def __init__(self, threshold_db: float = -45.0, sample_rate: int = 16000) -> None:
        self.threshold_db = threshold_db
        self.chunk_seconds = CHUNK / sample_rate

    def speech_probs(self, samples: np.ndarray) -> np.ndarray:
        n = len(samples) // CHUNK
        if n == 0:
            return np.zeros(0, np.float32)
        x = samples[: n * CHUNK].reshape(n, CHUNK).astype(np.float64)
        db = 10 * np.log10(np.maximum((x**2).mean(axis=1), 1e-20))
        return (db > self.threshold_db).astype(np.float32)
