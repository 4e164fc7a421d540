"""Audio sources for streaming: a file (optionally at real-time pace) and the microphone.

Every source yields float32 mono chunks at its `sample_rate` from `chunks()` and counts
what it had to drop in `dropped_samples`. The microphone fills a bounded queue from the
PortAudio callback; when the consumer is slower than real time the oldest audio is
dropped and counted, never blocking the callback or crashing.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge_alm.audio import load_audio
from edge_alm.errors import AudioError, EdgeALMError


class ChunkQueue:
    """A bounded FIFO of audio chunks; a full queue drops its oldest chunk and counts it."""

    def __init__(self, max_chunks: int) -> None:
        self._q: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=max_chunks)
        self.dropped_samples = 0
        self._lock = threading.Lock()

    def put(self, chunk: np.ndarray | None) -> None:
        with self._lock:
            while True:
                try:
                    self._q.put_nowait(chunk)
                    return
                except queue.Full:
                    try:
                        old = self._q.get_nowait()
                        self.dropped_samples += 0 if old is None else len(old)
                    except queue.Empty:
                        pass

    def get(self, timeout: float | None = None) -> np.ndarray | None:
        return self._q.get(timeout=timeout)


class FileSource:
    def __init__(self, path: str | Path, chunk_s: float = 0.1, realtime: bool = False, sample_rate: int = 16000):
        self.samples = load_audio(path, sample_rate)
        self.sample_rate = sample_rate
        self.chunk = max(1, int(chunk_s * sample_rate))
        self.realtime = realtime
        self.dropped_samples = 0

    def chunks(self) -> Iterator[np.ndarray]:
        t0 = time.perf_counter()
        for i in range(0, len(self.samples), self.chunk):
            if self.realtime:  # deliver each chunk when it would have been recorded
                due = t0 + (i + self.chunk) / self.sample_rate
                time.sleep(max(0.0, due - time.perf_counter()))
            yield self.samples[i : i + self.chunk]


def _sounddevice():
    try:
        import sounddevice as sd
    except ImportError as e:
        raise EdgeALMError("microphone input needs the mic extra: pip install 'edge-alm[mic]'") from e
    except OSError as e:  # libportaudio missing
        raise EdgeALMError(f"microphone input needs PortAudio (Debian: apt-get install libportaudio2): {e}") from e
    return sd


def input_devices() -> list[dict]:
    sd = _sounddevice()
    return [
        {"index": i, "name": d["name"], "channels": d["max_input_channels"], "rate": d["default_samplerate"]}
        for i, d in enumerate(sd.query_devices())
        if d["max_input_channels"] > 0
    ]


class MicrophoneSource:
    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: int | None = None,
        chunk_s: float = 0.1,
        max_backlog_s: float = 10.0,
    ) -> None:
        sd = _sounddevice()
        if not input_devices():
            raise AudioError("no audio input device found; use --input FILE to replay a file instead")
        try:
            info = sd.query_devices(device, "input")
        except (ValueError, sd.PortAudioError) as e:
            raise AudioError(f"input device {device!r}: {e}") from None
        self.sample_rate = int(sample_rate or info["default_samplerate"])
        self.blocksize = max(1, int(chunk_s * self.sample_rate))
        self.queue = ChunkQueue(max(2, int(max_backlog_s / chunk_s)))
        self.overflows = 0  # PortAudio's own input overflows (samples lost before the callback)
        self._sd, self._device = sd, device

    @property
    def dropped_samples(self) -> int:
        return self.queue.dropped_samples + self.overflows * self.blocksize

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self.queue.put(indata[:, 0].copy())

    def chunks(self) -> Iterator[np.ndarray]:
        try:
            stream = self._sd.InputStream(
                device=self._device,
                channels=1,
                samplerate=self.sample_rate,
                blocksize=self.blocksize,
                dtype="float32",
                callback=self._callback,
            )
        except self._sd.PortAudioError as e:
            raise AudioError(f"cannot open the microphone ({e}); use --input FILE instead") from None
        with stream:
            while True:
                chunk = self.queue.get()
                if chunk is None:
                    return
                yield chunk

    def close(self) -> None:
        self.queue.put(None)
