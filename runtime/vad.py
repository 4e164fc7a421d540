"""Voice activity detection: Silero VAD on onnxruntime + numpy, with an energy fallback.

Silero's graph takes 512 new samples plus the previous 64 at 16 kHz (32 ms per call) and a
recurrent state; its output is the speech probability of that chunk.
"""

from __future__ import annotations

import numpy as np
from edge_alm.runtime.session import GraphSession

CHUNK = 512  # samples per VAD step at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous chunk the graph also sees
# The speech gate, one definition for offline transcription and streaming (TranscribeOptions
# and StreamOptions default to these; a stream hands its own values to the transcriber)
SPEECH_THRESHOLD = 0.5  # a 32 ms chunk whose speech probability is above this is speech
MIN_SPEECH_S = 0.25  # less speech than this (a window, an utterance) is not decoded: clicks, beeps


class SileroVAD:
    def __init__(self, session: GraphSession, sample_rate: int = 16000) -> None:
        self.session = session
        self.sample_rate = sample_rate
        self.chunk_seconds = CHUNK / sample_rate

    def speech_probs(self, samples: np.ndarray, gain: float = 1.0) -> np.ndarray:
        """Speech probability of each 32 ms chunk of samples * gain, shape (len // 512,)."""
        step = self.stepper()
        n = len(samples) // CHUNK
        g = np.float32(gain)
        return np.array([step(samples[i * CHUNK : (i + 1) * CHUNK] * g) for i in range(n)], np.float32)

    def stepper(self) -> SileroStepper:
        """A stateful per-stream scorer of consecutive 512-sample chunks."""
        return SileroStepper(self.session, self.sample_rate)


class SileroStepper:
    def __init__(self, session: GraphSession, sample_rate: int) -> None:
        self.session = session
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros(CONTEXT, np.float32)
        self.sr = np.array(sample_rate, dtype=np.int64)

    def __call__(self, chunk: np.ndarray) -> float:
        window = np.concatenate([self.context, chunk.astype(np.float32)])[None]  # (1, 576)
        p, self.state = self.session.run({"input": window, "state": self.state, "sr": self.sr})
        self.context = window[0, -CONTEXT:]
        return float(p[0, 0])


class EnergyVAD:
    """Fallback when a bundle has no VAD graph: a chunk is speech when its RMS beats a floor."""

    def __init__(self, threshold_db: float = -45.0, sample_rate: int = 16000) -> None:
        self.threshold_db = threshold_db
        self.chunk_seconds = CHUNK / sample_rate

    def speech_probs(self, samples: np.ndarray, gain: float = 1.0) -> np.ndarray:
        n = len(samples) // CHUNK
        step = self.stepper()
        g = np.float32(gain)
        return np.array([step(samples[i * CHUNK : (i + 1) * CHUNK] * g) for i in range(n)], np.float32)

    def stepper(self):
        def step(chunk: np.ndarray) -> float:
            db = 10 * np.log10(max(float(np.mean(chunk.astype(np.float64) ** 2)), 1e-20))
            return 1.0 if db > self.threshold_db else 0.0

        return step
