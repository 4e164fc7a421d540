"""Streaming recognition: one `Stream` per audio source over one shared model.

Three parts: input handling (any rate, chunk size, sample type -> 16 kHz 32 ms chunks, bad
chunks dropped and counted), the endpointer (runtime/endpointer.py: utterance boundaries from
the VAD probability of each chunk, computed once and reused by the transcriber), and the
decode policy here: partials every `partial_interval_s` while speech goes on; a speculative final
decode after `early_silence_s` of silence (and again when the pad after the last speech is
complete). The turn then ends by what the words say: when the text ends a sentence and the
decoder gave that full stop (? !) at least `end_confidence` probability (Whisper puts one after
mid-sentence fragments too, less surely: "When the meeting is over."), or at least
`unsure_end_confidence` and the end-of-turn text model (runtime/turn_text.py) gives the words at
least `text_end_confidence`, or (optional) a chat LM (runtime/turn_lm.py) expects a full stop after
the words with at least `turn_lm_confidence`, as soon as `sure_silence_s` of silence confirms it,
with that decode as the final. (`text_weight` > 0 mixes the two probabilities into one end score instead.) Otherwise
the turn ends after `min_silence_s` (or `unsure_silence_s` for a less sure full stop, off by
default: it splits turns). A final is exactly what offline transcription of its segment gives.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import soxr
from edge_alm.runtime.endpointer import Boundary, Endpointer
from edge_alm.runtime.errors import AudioError
from edge_alm.runtime.pcm import check_rate, to_mono_float
from edge_alm.runtime.transcribe import TranscribeOptions, Transcriber, Transcription
from edge_alm.runtime.turn_lm import TurnLM
from edge_alm.runtime.turn_text import TurnText
from edge_alm.runtime.vad import CHUNK, MIN_SPEECH_S, SPEECH_THRESHOLD


@dataclass(frozen=True)
class StreamOptions:
    vad_threshold: float = SPEECH_THRESHOLD  # chunk speech probability that counts as speech (finals use it too)
    min_silence_s: float = 0.7  # silence that closes an utterance whose text does not end a sentence
    speech_pad_s: float = 0.2  # audio kept before the first and after the last speech chunk
    min_speech_s: float = MIN_SPEECH_S  # utterances with less speech than this are dropped (clicks)
    partial_interval_s: float = 0.5  # re-decode the open utterance this often (0 = no partials)
    first_partial_s: float = 1.0  # no partial before this much audio (Whisper guesses on tiny clips)
    max_utterance_s: float = 25.0  # cut longer utterances at their quietest chunk
    early_end: bool = True  # end the turn before min_silence_s when the speculative final ends a sentence surely:
    early_silence_s: float = 0.032  # the final is decoded after this much silence (and again at speech_pad_s) ...
    end_confidence: float = 0.6  # ... and its end score is at least this: (1 - text_weight) * the decoder's
    #   probability of the full stop (? !) that ends its text + text_weight * the end-of-turn text model's
    #   probability of the words ...
    text_weight: float = 0.0  # ... (0: the decoder alone; 0.5 with end_confidence 0.55-0.6 split more turns than
    #   the rule below on two fresh benchmark recordings, see README) ...
    unsure_end_confidence: float = 0.45  # ... or the decoder gave at least this and the end-of-turn text model
    text_end_confidence: float | None = 0.8  # gives the words at least this (None: no second chance) ...
    turn_lm_confidence: float = 0.3  # ... or, with a turn LM given to the stream (runtime/turn_lm.py), it gives the
    #   words (full stop written or not) at least this probability of a full stop next ...
    sure_silence_s: float = 0.1  # ... the turn ends once this much silence confirms it, with that decode as final
    unsure_silence_s: float | None = None  # a less sure full stop ends the turn after this much silence (None:
    #   min_silence_s; 0.4 s split 5 turns of 16 in benchmarks/streaming.py)
    partial_min_window_s: float = 4.0  # encoder window floor for partials (finals keep the transcriber's)
    partial_cpu_share: float | None = 0.15  # partial decodes take at most this share of real time: after one
    #   that took d seconds the next waits d / share seconds of audio when that is longer than
    #   partial_interval_s (None: every partial_interval_s, however long they take). 0.15 took the stream's
    #   CPU real-time factor from 0.43-0.48 to 0.35-0.37 with the same finals (README)

    def __post_init__(self) -> None:
        for name in ("min_silence_s", "max_utterance_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in (
            "speech_pad_s",
            "min_speech_s",
            "partial_interval_s",
            "first_partial_s",
            "partial_min_window_s",
            "early_silence_s",
            "sure_silence_s",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)!r}")
        if self.unsure_silence_s is not None and not self.unsure_silence_s >= 0:
            raise ValueError(f"unsure_silence_s must be 0 or more, got {self.unsure_silence_s!r}")
        for name in ("end_confidence", "unsure_end_confidence", "text_weight", "turn_lm_confidence"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be from 0 to 1, got {getattr(self, name)!r}")
        if self.text_end_confidence is not None and not 0 <= self.text_end_confidence <= 1:
            raise ValueError(f"text_end_confidence must be from 0 to 1 or None, got {self.text_end_confidence!r}")
        if not 0 < self.vad_threshold < 1:
            raise ValueError(f"vad_threshold must be between 0 and 1, got {self.vad_threshold!r}")
        if self.partial_cpu_share is not None and not 0 < self.partial_cpu_share <= 1:
            raise ValueError(f"partial_cpu_share must be above 0 and at most 1, got {self.partial_cpu_share!r}")
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
    turn_closed_to_final_ms: float = 0.0  # wall time from the decision that the turn ended (compute only)
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


def _chunks(seconds: float) -> int:
    return int(np.ceil(seconds * 16000 / CHUNK - 1e-9))


def ends_sentence(text: str) -> bool:
    """The decoded text closes a sentence: the words say the turn may be over."""
    t = text.rstrip()
    return bool(t) and t[-1] in ".?!" and not t.endswith("...")


def sentence_end_prob(result: Transcription, eot: int) -> float:
    """The probability the decoder gave the last text token when the text ends a sentence (that
    token is the full stop, ? or !), else 0. eot: the first special token id (text ids are below)."""
    if not ends_sentence(result.text):
        return 0.0
    for seg in reversed(result.segments):
        lps = [lp for t, lp in zip(seg.tokens, seg.token_logprobs) if t < eot]
        if lps:
            return float(np.exp(lps[-1]))
    return 1.0  # no per-token scores (a decoder that does not give them): trust the text


@lru_cache(maxsize=1)
def default_turn_text() -> TurnText:
    return TurnText()


class Stream:
    def __init__(
        self,
        transcriber: Transcriber,
        stepper,
        options: StreamOptions,
        transcribe_options: TranscribeOptions,
        turn_text: TurnText | None = None,  # default: the packaged model, when the options use one
        turn_lm: TurnLM | None = None,  # one more judge of whether the words end the turn
    ) -> None:
        self.tr = transcriber
        self.vad = stepper  # stateful chunk -> speech probability
        self.opts = options
        # one speech gate: the transcriber judges an utterance by the stream's own threshold
        self.topts = replace(transcribe_options, vad_threshold=options.vad_threshold, min_speech_s=options.min_speech_s)
        self.sr = transcriber.params.sample_rate
        self.stats = StreamStats()
        self._events: deque = deque()
        self._resampler: soxr.ResampleStream | None = None
        self._in_rate: int | None = None
        self._pending = np.zeros(0, np.float32)  # 16 kHz samples not yet a full VAD chunk
        self._pad = max(1, round(options.speech_pad_s * self.sr / CHUNK))
        self.ep = Endpointer(
            options.vad_threshold,
            min_silence=_chunks(options.min_silence_s),
            pad=self._pad,
            min_speech=_chunks(options.min_speech_s),
            max_len=_chunks(options.max_utterance_s),
            early=_chunks(options.early_silence_s),
        )
        self._audio: list[np.ndarray] = []  # chunks from index self._base on
        self._probs: list[float] = []  # their VAD probabilities
        self._base = 0
        self._last_speech_wall = 0.0
        self._since_partial = 0
        self._partial_wait = options.partial_interval_s  # seconds of audio until the next partial may run
        self._last_partial = ""
        self._stable: list[str] = []  # committed words of the open utterance: they only grow
        # (end chunk, text, sentence-end probability, sure that the turn ended) of the speculative final decode
        self._candidate: tuple[int, str, float, bool] | None = None
        self.turn_lm = turn_lm
        self.turn_text = turn_text
        if turn_text is None and (options.text_weight > 0 or options.text_end_confidence is not None):
            self.turn_text = default_turn_text()
        self._sure = _chunks(options.sure_silence_s)
        self._unsure = None if options.unsure_silence_s is None else _chunks(options.unsure_silence_s)
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
        """Feed audio of any rate, length and sample type (see runtime/pcm.py). Chunks that cannot
        be used are dropped and counted in `stats`; after `finish()` the stream goes on."""
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

    # -- one chunk: VAD once, the endpointer, the decode policy ----------------
    def _chunk(self, chunk: np.ndarray) -> None:
        p = float(self.vad(chunk))
        self._audio.append(chunk)
        self._probs.append(p)
        if p > self.opts.vad_threshold:
            self._last_speech_wall = self._arrival
            self._candidate = None
        for b in self.ep.push(p):
            self._boundary(b)
        self._maybe_end_turn()
        self.stats.processed_s = self.ep.n * CHUNK / self.sr
        if self.ep.is_open:
            self._since_partial += 1
            self._maybe_partial()
        else:  # idle: keep only what a next utterance may reach back to
            self._forget(max(self.ep.n - self._pad, self.ep.floor))

    def _maybe_end_turn(self) -> None:
        """End the open turn before min_silence_s when the speculative final ends a sentence."""
        c = self._candidate
        if not (self.opts.early_end and self.ep.is_open and c is not None):
            return
        if c[3] and self.ep.silence >= self._sure:
            closing = self.ep.close_now(end=c[0])  # the final is the decode that was sure
        elif self._unsure is not None and c[2] > 0 and self.ep.silence >= self._unsure:
            closing = self.ep.close_now()
        else:
            return
        for b in closing:
            self._boundary(b)

    def _sure_end(self, text: str, p: float) -> bool:
        """The text ends a sentence (p > 0) and its end score (decoder and words) is high enough;
        or a turn LM expects a full stop after the words (whether or not the decoder wrote one)."""
        if self._sure_by_decoder(text, p):
            return True
        return self.turn_lm is not None and self.turn_lm.prob(text) >= self.opts.turn_lm_confidence

    def _sure_by_decoder(self, text: str, p: float) -> bool:
        o = self.opts
        if p <= 0:
            return False
        q = None if self.turn_text is None else self.turn_text.prob(text)
        w = o.text_weight if q is not None else 0.0
        if (1 - w) * p + w * (q or 0.0) >= o.end_confidence:
            return True
        return (
            o.text_end_confidence is not None
            and q is not None
            and p >= o.unsure_end_confidence
            and q >= o.text_end_confidence
        )

    def _forget(self, upto: int) -> None:
        k = upto - self._base
        if k > 0:
            del self._audio[:k], self._probs[:k]
            self._base = upto

    def _segment(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = start - self._base, end - self._base
        return np.concatenate(self._audio[a:b]), np.array(self._probs[a:b])

    def _decode(self, start: int, end: int, partial: bool = False) -> Transcription:
        audio, probs = self._segment(start, end)
        opts = replace(self.topts, min_window_s=self.opts.partial_min_window_s) if partial else self.topts
        return self.tr.transcribe(audio, opts, speech_probs=probs)

    def _boundary(self, b: Boundary) -> None:
        if b.kind == "open":
            self._since_partial, self._last_partial, self._stable, self._candidate = 1, "", [], None
            self._partial_wait = self.opts.partial_interval_s
        elif b.kind == "pad":
            # The audio a final would hold is complete now: decode it while the silence that
            # confirms the end arrives, so the final costs no decode.
            result = self._decode(b.start, b.end)
            p = sentence_end_prob(result, self.tr.model.special.eot)
            self._candidate = (b.end, result.text, p, self._sure_end(result.text, p))
            self._since_partial = 0
            if self.opts.partial_interval_s:
                self._emit_partial(result.text)
        elif b.kind in ("close", "cut"):
            self._final(b)
            if b.kind == "cut":
                self._since_partial, self._last_partial, self._stable = 0, "", []
                self._forget(b.end)

    def _final(self, b: Boundary) -> None:
        closed = time.perf_counter()
        candidate, self._candidate = self._candidate, None
        audio, _ = self._segment(b.start, b.end)
        text = candidate[1] if candidate is not None and candidate[0] == b.end else self._decode(b.start, b.end).text
        if text:
            now = time.perf_counter()
            lag = (now - self._last_speech_wall) * 1000
            self._events.append(
                Final(text, b.start * CHUNK / self.sr, b.end * CHUNK / self.sr, lag, (now - closed) * 1000, audio)
            )

    def _maybe_partial(self) -> None:
        chunk_s = CHUNK / self.sr
        if (
            self.opts.partial_interval_s
            and self._since_partial * chunk_s >= self._partial_wait
            and (self.ep.n - self.ep.start) * chunk_s >= self.opts.first_partial_s
            and not self.ep.silence  # speech paused: the speculative final decode is due, keep the CPU for it
        ):
            self._since_partial = 0
            result = self._decode(self.ep.start, self.ep.n, partial=True)
            self._partial_wait = self.opts.partial_interval_s
            if self.opts.partial_cpu_share:  # the CPU is behind when partials cost more than their share
                cost_s = result.timings.get("total_ms", 0.0) / 1000
                self._partial_wait = max(self._partial_wait, cost_s / self.opts.partial_cpu_share)
            self._emit_partial(result.text)

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
        self._events.append(Partial(" ".join(shown), " ".join(self._stable), self.ep.start * CHUNK / self.sr))

    # -- output --------------------------------------------------------------
    def events(self) -> Iterator[Partial | Final]:
        """Events produced so far, oldest first (each is returned once)."""
        while self._events:
            yield self._events.popleft()

    def finish(self) -> None:
        """End of input: flush the resampler and close the open utterance. More audio may
        follow: the stream goes on, times counting on."""
        self._flush_resampler()
        if len(self._pending):
            self._feed(np.zeros(CHUNK - len(self._pending), np.float32))
        for b in self.ep.finish():
            self._boundary(b)


def _sample_count(samples) -> int:
    """Samples (per channel) in a chunk that could not be used, for the drop count."""
    try:
        a = np.asarray(samples)
    except (TypeError, ValueError):
        return 0
    if a.ndim == 2:
        return int(max(a.shape) if min(a.shape) <= 8 else a.shape[0])
    return int(a.size)
