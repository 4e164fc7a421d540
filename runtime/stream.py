"""Streaming recognition: one `Stream` per audio source over one shared model.

Audio of any rate and chunk size is resampled to 16 kHz and cut into 32 ms VAD chunks.
A VAD state machine opens an utterance on speech (keeping `speech_pad_s` of audio before
it) and closes it after `min_silence_s` of silence (keeping `speech_pad_s` after it). While
an utterance grows it is re-decoded every `partial_interval_s` (encoder on the real
length) for Partial events; when it closes, its audio is transcribed once more for the
Final — exactly what offline transcription of that segment gives. Utterances reaching
`max_utterance_s` are cut at their quietest chunk. Bad chunks (NaN/Inf, wrong shape) are
dropped and counted, never raised.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import soxr
from edge_alm.runtime.errors import AudioError
from edge_alm.runtime.pcm import check_rate, to_mono_float
from edge_alm.runtime.transcribe import TranscribeOptions, Transcriber
from edge_alm.runtime.vad import CHUNK


@dataclass(frozen=True)
class StreamOptions:
    vad_threshold: float = 0.5  # chunk speech probability that counts as speech
    min_silence_s: float = 0.4  # silence that closes an utterance
    speech_pad_s: float = 0.2  # audio kept before the first and after the last speech chunk
    min_speech_s: float = 0.25  # utterances with less speech than this are dropped (clicks)
    partial_interval_s: float = 0.5  # re-decode the open utterance this often (0 = no partials)
    first_partial_s: float = 1.0  # no partial before this much audio (Whisper guesses on tiny clips)
    max_utterance_s: float = 25.0  # cut longer utterances at their quietest chunk

    def __post_init__(self) -> None:
        for name in ("min_silence_s", "max_utterance_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("speech_pad_s", "min_speech_s", "partial_interval_s", "first_partial_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)!r}")
        if not 0 < self.vad_threshold < 1:
            raise ValueError(f"vad_threshold must be between 0 and 1, got {self.vad_threshold!r}")
        if 0 < self.partial_interval_s < 0.1:
            raise ValueError("partial_interval_s below 0.1 s re-decodes on every chunk; use 0 for no partials")


@dataclass
class Partial:
    text: str  # current hypothesis of the open utterance
    stable: str  # prefix that two consecutive partials agreed on (does not flicker)
    start: float  # seconds from the start of the stream


@dataclass
class Final:
    text: str
    start: float  # seconds from the start of the stream
    end: float
    end_of_speech_to_final_ms: float  # wall time from the arrival of the last speech audio to this event
    audio: np.ndarray | None = field(default=None, repr=False)  # the utterance, 16 kHz (for `listen --ask`)


@dataclass
class StreamStats:
    received_samples: int = 0  # at the input rate, summed over calls
    processed_s: float = 0.0  # seconds of 16 kHz audio through the VAD
    dropped_samples: int = 0  # input samples dropped (bad chunks, source overflow)
    dropped_chunks: int = 0
    problems: list[str] = field(default_factory=list)  # one line per kind of drop, first few only


def _common_prefix(a: str, b: str) -> str:
    out = []
    for x, y in zip(a.split(), b.split()):
        if x != y:
            break
        out.append(x)
    return " ".join(out)


class Stream:
    def __init__(
        self, transcriber: Transcriber, stepper, options: StreamOptions, transcribe_options: TranscribeOptions
    ) -> None:
        self.tr = transcriber
        self.vad = stepper  # stateful chunk -> speech probability
        self.opts = options
        self.topts = transcribe_options
        self.sr = transcriber.params.sample_rate
        self.stats = StreamStats()
        self._events: deque = deque()
        self._resampler: soxr.ResampleStream | None = None
        self._in_rate: int | None = None
        self._pending = np.zeros(0, np.float32)  # 16 kHz samples not yet a full VAD chunk
        self._pos = 0  # 16 kHz samples through the VAD
        pad_chunks = max(1, round(options.speech_pad_s * self.sr / CHUNK))
        self._pad_chunks = pad_chunks
        self._pre: deque[np.ndarray] = deque(maxlen=pad_chunks)  # recent chunks while idle
        self._utt: list[np.ndarray] = []  # chunks of the open utterance
        self._probs: list[float] = []
        self._utt_start = 0  # sample index of the utterance's first chunk
        self._silence = 0  # consecutive non-speech chunks at the utterance's end
        self._speech_chunks = 0
        self._last_speech_wall = 0.0
        self._since_partial = 0
        self._last_partial = ""
        self._stable: list[str] = []  # committed words of the open utterance: they only grow
        self._candidate: tuple[int, str] | None = None  # (chunks, text) decoded once the pad was reached
        self._arrival = 0.0

    # -- input ---------------------------------------------------------------
    def _drop(self, n: int, why: str) -> None:
        self.stats.dropped_samples += n
        self.stats.dropped_chunks += 1
        if len(self.stats.problems) < 10:
            self.stats.problems.append(why)

    def report_dropped(self, n_samples: int, why: str = "source overflow") -> None:
        """A source tells the stream it lost audio before delivering it."""
        if n_samples > 0:
            self._drop(n_samples, why)

    def accept_waveform(self, samples: np.ndarray, sample_rate: int) -> None:
        """Feed audio of any rate and length; mono float or int16, or (T, channels)."""
        self._arrival = time.perf_counter()
        try:
            a = to_mono_float(samples, "chunk")  # the normaliser files and arrays go through too
            sample_rate = check_rate(sample_rate, "chunk")
        except AudioError as e:
            self._drop(_sample_count(samples), f"{e}; ignored")
            return
        self.stats.received_samples += len(a)
        if sample_rate != self._in_rate:
            self._flush_resampler()
            self._in_rate = sample_rate
            self._resampler = None if sample_rate == self.sr else soxr.ResampleStream(sample_rate, self.sr, 1)
        out = a if self._resampler is None else self._resampler.resample_chunk(a)
        self._feed(out)

    def _flush_resampler(self) -> None:
        if self._resampler is not None:
            self._feed(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
            self._resampler = None

    def _feed(self, x: np.ndarray) -> None:
        buf = np.concatenate([self._pending, x]) if len(self._pending) else x
        n = len(buf) // CHUNK
        for i in range(n):
            # copies: the caller (or soxr) may reuse the buffer these samples arrived in
            self._chunk(buf[i * CHUNK : (i + 1) * CHUNK].copy())
        self._pending = buf[n * CHUNK :].copy()

    # -- the VAD state machine ----------------------------------------------
    def _chunk(self, chunk: np.ndarray) -> None:
        p = self.vad(chunk)
        speech = p > self.opts.vad_threshold
        start = self._pos
        self._pos += CHUNK
        self.stats.processed_s = self._pos / self.sr
        if not self._utt:
            if speech:
                self._utt = [*self._pre, chunk]
                self._probs = [0.0] * len(self._pre) + [p]
                self._utt_start = start - CHUNK * len(self._pre)
                self._pre.clear()
                self._silence, self._speech_chunks, self._since_partial = 0, 1, 1
                self._last_speech_wall = self._arrival
                self._last_partial, self._stable, self._candidate = "", [], None
            else:
                self._pre.append(chunk)
            return
        self._utt.append(chunk)
        self._probs.append(p)
        self._since_partial += 1
        if speech:
            self._silence = 0
            self._speech_chunks += 1
            self._last_speech_wall = self._arrival
            self._candidate = None
        else:
            self._silence += 1
        chunk_s = CHUNK / self.sr
        if self._silence * chunk_s >= self.opts.min_silence_s:
            self._close(trim=self._silence - self._pad_chunks)
        elif len(self._utt) * chunk_s >= self.opts.max_utterance_s:
            self._cut()
        elif self._silence == self._pad_chunks and self._enough_speech():
            # The audio a final would hold is complete now: decode it while the silence
            # that confirms the end is still arriving, so the final costs no decode.
            r = self.tr.transcribe(np.concatenate(self._utt), self.topts)
            self._candidate = (len(self._utt), r.text)
            self._since_partial = 0
            if self.opts.partial_interval_s:
                self._emit_partial(r.text)
        elif (
            self.opts.partial_interval_s
            and self._since_partial * chunk_s >= self.opts.partial_interval_s
            and len(self._utt) * chunk_s >= self.opts.first_partial_s
            and not self._silence  # speech paused: the speculative final decode is due, keep the CPU for it
        ):
            self._partial()

    def _enough_speech(self) -> bool:
        return self._speech_chunks * CHUNK / self.sr >= self.opts.min_speech_s

    def _partial(self) -> None:
        self._since_partial = 0
        self._emit_partial(self.tr.transcribe(np.concatenate(self._utt), self.topts).text)

    def _emit_partial(self, text: str) -> None:
        """Words two consecutive hypotheses agree on are committed; committed words stay."""
        agreed = _common_prefix(self._last_partial, text).split()
        if len(agreed) > len(self._stable) and agreed[: len(self._stable)] == self._stable:
            self._stable = agreed
        self._last_partial = text
        words = text.split()
        shown = self._stable + (
            words[len(self._stable) :] if words[: len(self._stable)] == self._stable else words[len(self._stable) :]
        )
        self._events.append(Partial(" ".join(shown), " ".join(self._stable), self._utt_start / self.sr))

    def _close(self, trim: int = 0) -> None:
        """End the open utterance, dropping `trim` trailing silence chunks beyond the pad."""
        keep = len(self._utt) - max(0, trim)
        chunks, tail = self._utt[:keep], self._utt[keep:]
        start = self._utt_start
        enough = self._enough_speech()
        candidate, self._candidate = self._candidate, None
        self._utt, self._probs = [], []
        self._pre.extend(tail)
        if chunks and enough:
            audio = np.concatenate(chunks)
            if candidate is not None and candidate[0] == len(chunks):
                text = candidate[1]  # decoded on exactly these chunks when the pad was reached
            else:
                text = self.tr.transcribe(audio, self.topts).text
            if text:
                lag = (time.perf_counter() - self._last_speech_wall) * 1000
                self._events.append(Final(text, start / self.sr, (start + len(audio)) / self.sr, lag, audio))

    def _cut(self) -> None:
        """Split an over-long utterance at its quietest chunk in the last third; keep the rest open."""
        n = len(self._probs)
        lo = 2 * n // 3
        cut = lo + int(np.argmin(self._probs[lo:])) + 1
        rest, rest_probs = self._utt[cut:], self._probs[cut:]
        self._close(trim=n - cut)
        self._pre.clear()
        self._utt, self._probs = rest, rest_probs
        self._utt_start = self._pos - CHUNK * len(rest)
        self._speech_chunks = sum(p > self.opts.vad_threshold for p in rest_probs)
        self._since_partial, self._silence, self._last_partial, self._stable = 0, 0, "", []
        if not rest:
            self._utt = []

    # -- output --------------------------------------------------------------
    def events(self) -> Iterator[Partial | Final]:
        """Events produced so far, oldest first (each is returned once)."""
        while self._events:
            yield self._events.popleft()

    def finish(self) -> None:
        """End of input: flush the resampler and close the open utterance."""
        self._flush_resampler()
        if len(self._pending):
            self._feed(np.zeros(CHUNK - len(self._pending), np.float32))
        if self._utt:
            self._close(trim=self._silence - self._pad_chunks)


def _sample_count(samples) -> int:
    """Samples (per channel) in a chunk that could not be used, for the drop count."""
    try:
        a = np.asarray(samples)
    except (TypeError, ValueError):
        return 0
    if a.ndim == 2:
        return int(max(a.shape) if min(a.shape) <= 8 else a.shape[0])
    return int(a.size)
