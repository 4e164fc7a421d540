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
from dataclasses import replace
from functools import lru_cache

import numpy as np
import soxr
from edge_alm.runtime.endpointer import Boundary, Endpointer
from edge_alm.runtime.errors import AudioError
from edge_alm.runtime.pcm import check_rate, to_mono_float
from edge_alm.runtime.stream_options import Final, Partial, StreamOptions, StreamStats
from edge_alm.runtime.transcribe import TranscribeOptions, Transcriber, Transcription
from edge_alm.runtime.turn_lm import TurnLM
from edge_alm.runtime.turn_text import TurnText
from edge_alm.runtime.vad import CHUNK


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
