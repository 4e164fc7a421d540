"""Whole-clip transcription: windows, temperature fallback, timestamps, silence gating.

Audio up to 30 s runs as one window. Longer audio is cut at the VAD's pauses and the speech
packed into windows of up to 29 s (long_form="vad", the default, as faster-whisper's batched
pipeline and WhisperX do; silence between speech is not decoded), or runs in consecutive 30 s
windows, each starting at the end of the last complete timestamped segment of the one before
(long_form="seek", as openai/whisper does). Inside a VAD window the seek rule applies too, so a
window the decoder finishes early is continued. Measured: on the dev set's 126 s file of voices
at different levels with pauses, seek lost 3 of 24 sentences (WER 26.1 %), VAD none (17.6 %);
on its 67 s file seek 5.1 %, VAD 9.4 % (substitutions); on benchmarks/long_form.py's 8 files
the same WER, VAD 8 % faster.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field, replace

import numpy as np
from edge_alm.runtime.decoding import DecodeResult
from edge_alm.runtime.features import log_mel
from edge_alm.runtime.seq2seq import DecodeOptions, Seq2SeqModel
from edge_alm.runtime.session import release_free_heap
from edge_alm.runtime.tokenizer import TextTokenizer
from edge_alm.runtime.vad import MIN_SPEECH_S, SPEECH_THRESHOLD, EnergyVAD, SileroVAD

TIME_PER_TIMESTAMP = 0.02  # seconds per timestamp token step


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = "en"  # language code; None on a multilingual model detects it
    task: str = "transcribe"  # transcribe | translate
    beam_size: int = 1  # 1 = greedy
    window: str = "auto"  # auto: clip length + 1 s (at least min_window_s); 30s: Whisper's fixed window
    long_form: str = "vad"  # audio over 30 s: "vad": VAD speech regions packed into windows; "seek": 30 s steps
    min_window_s: float = 10.0  # shortest encoder window in auto mode (shorter loses accuracy)
    timestamps: bool = True  # timestamp-mode decoding, gives segments with times
    condition_on_previous_text: bool = True  # long audio: each window sees the text before it (as Whisper)
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # fallback schedule
    compression_ratio_threshold: float = 2.4  # gzip ratio above this = repetition: retry hotter
    logprob_threshold: float = -1.0  # mean log-prob below this = unsure: retry hotter
    no_speech_threshold: float = 0.6  # P(no speech) above this (and unsure) = silence
    silence_db: float = -80.0  # windows whose loudest 20 ms stays below this dBFS are skipped (digital silence)
    vad_threshold: float = SPEECH_THRESHOLD  # VAD probability above which a 32 ms chunk counts as speech
    min_speech_s: float = MIN_SPEECH_S  # windows with less VAD speech than this are skipped (beeps, noise)
    tokens_per_second: float = 7.0  # token budget: this many per second of audio ...
    token_budget_base: int = 24  # ... plus this many
    block_size: int | None = None  # blockdecoder bundles: tokens per block, K (None: the bundle's own)


MAX_BEAM = 16  # wider beams cost memory linearly and gain nothing measurable here


def check_options(opts: TranscribeOptions) -> None:
    """One-line ValueErrors for option values that would hang, crash or be silently ignored."""
    if opts.task not in ("transcribe", "translate"):
        raise ValueError(f"task must be 'transcribe' or 'translate', got {opts.task!r}")
    if opts.window not in ("auto", "30s"):
        raise ValueError(f"window must be 'auto' or '30s', got {opts.window!r}")
    if opts.long_form not in ("vad", "seek"):
        raise ValueError(f"long_form must be 'vad' or 'seek', got {opts.long_form!r}")
    if isinstance(opts.beam_size, bool) or not isinstance(opts.beam_size, int) or not 1 <= opts.beam_size <= MAX_BEAM:
        raise ValueError(f"beam size must be 1 to {MAX_BEAM}, got {opts.beam_size!r}")
    if not opts.temperatures or any(not 0 <= t <= 2 for t in opts.temperatures):
        raise ValueError(f"temperatures must be a non-empty list of values from 0 to 2, got {opts.temperatures!r}")
    if not opts.min_window_s > 0 or not opts.tokens_per_second > 0:
        raise ValueError("min_window_s and tokens_per_second must be positive")


@dataclass
class Segment:
    start: float  # seconds from the start of the audio
    end: float
    text: str
    tokens: list[int] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    temperature: float = 0.0
    token_logprobs: list[float] = field(default_factory=list)  # one per entry of `tokens`


@dataclass
class Transcription:
    text: str
    segments: list[Segment]
    language: str | None
    duration: float  # seconds of audio
    timings: dict[str, float]  # features_ms, encoder_ms, decoder_ms, first_token_ms, total_ms, rtf, ...


AFTER_AUDIO_S = 0.1  # segments starting later than this before the audio's end are dropped
REPEAT_MIN_WORDS = 3  # a segment this long that repeats the one before word for word ...
REPEAT_MAX_SPAN = 0.6  # ... in under this fraction of the first one's time is dropped
DROPPED_WORDS_RATIO = 0.5  # a hot try with under this fraction of a colder sure try's words dropped speech


def repeats(seg: Segment, prev: Segment | None) -> bool:
    """The decoder's known failure on short padded windows: the whole utterance again, squeezed
    into the little audio that is left. A sentence really said twice takes as long again."""
    words = seg.text.lower().split()
    if prev is None or len(words) < REPEAT_MIN_WORDS or words != prev.text.lower().split():
        return False
    return seg.end - seg.start < REPEAT_MAX_SPAN * (prev.end - prev.start)


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw))) if raw else 0.0


def loudest_frame_db(samples: np.ndarray, frame: int = 320, block_frames: int = 500) -> float:
    """Level of the loudest 20 ms frame, dBFS. Squares in float64 a block of frames at a time,
    sliced from `samples` (an array or an AudioFile): the whole 10-minute file at once made a
    73 MB temporary."""
    if len(samples) == 0:
        return -np.inf
    if len(samples) < frame:
        frame = len(samples)
    n = len(samples) // frame
    loudest = 0.0
    for i in range(0, n, block_frames):
        x = np.asarray(samples[i * frame : min(n, i + block_frames) * frame]).reshape(-1, frame)  # (frames, frame)
        loudest = max(loudest, float(np.mean(x.astype(np.float64) ** 2, axis=1).max()))
    return float(20 * np.log10(max(np.sqrt(loudest), 1e-10)))


VAD_TARGET_DB = -20.0  # the VAD hears every clip at this loudest-20-ms level ...
VAD_MAX_GAIN_DB = 50.0  # ... raised by at most this much, so dither and hiss stay quiet


def vad_gain(samples: np.ndarray) -> float:
    """The gain the VAD hears the clip at: Silero VAD misses speech whose loudest 20 ms is below
    about -60 dBFS (quiet recordings), while Whisper's log-mel is level-independent. Only the VAD
    input is scaled, a chunk at a time (a scaled copy of a long file would be its size again)."""
    peak = loudest_frame_db(samples)
    if not np.isfinite(peak) or peak >= VAD_TARGET_DB:
        return 1.0
    return float(10 ** (min(VAD_TARGET_DB - peak, VAD_MAX_GAIN_DB) / 20))


REGION_GAP_S = 0.5  # speech regions closer than this are one region
REGION_PAD_S = 0.5  # kept around each region (0.2 s gave 1.3 points more WER on benchmarks/long_form.py)


def speech_windows(speech: np.ndarray, chunk_s: float, n: int, sr: int, max_s: float) -> list[tuple[int, int]]:
    """VAD chunk flags -> sample spans: speech regions (gaps under REGION_GAP_S bridged, padded by
    REGION_PAD_S) packed greedily into spans of at most max_s; a longer region is a span alone."""
    regions: list[list[float]] = []
    for i in np.flatnonzero(speech):
        t0, t1 = i * chunk_s, (i + 1) * chunk_s
        if regions and t0 - regions[-1][1] < REGION_GAP_S:
            regions[-1][1] = t1
        else:
            regions.append([t0, t1])
    spans: list[list[float]] = []
    for t0, t1 in regions:
        t0, t1 = max(0.0, t0 - REGION_PAD_S), min(n / sr, t1 + REGION_PAD_S)
        if spans and t1 - spans[-1][0] <= max_s:
            spans[-1][1] = t1
        else:
            spans.append([t0, t1])
    return [(int(a * sr), min(n, int(b * sr))) for a, b in spans]


class Transcriber:
    def __init__(self, model: Seq2SeqModel, tokenizer: TextTokenizer, vad: SileroVAD | EnergyVAD) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.vad = vad
        self.params = model.manifest.features

    def window_samples(self, remaining: int, opts: TranscribeOptions) -> int:
        """Encoder window (samples) for audio with `remaining` samples left."""
        sr, chunk = self.params.sample_rate, self.params.chunk_seconds * self.params.sample_rate
        if opts.window == "30s" or remaining >= chunk:
            return chunk
        want = max(remaining + sr, int(opts.min_window_s * sr))
        step = self.params.hop_length * self.params.frames_per_position * 50  # 1 s at Whisper's rates
        return min(chunk, -(-want // step) * step)

    def _decode_with_fallback(
        self, cross, prompt: list[int], opts: TranscribeOptions, base: DecodeOptions
    ) -> DecodeResult:
        tries: list[DecodeResult] = []
        for i, t in enumerate(opts.temperatures):
            d = replace(base, temperature=t, beam_size=opts.beam_size if t == 0 else 1, seed=i)
            result = self.model.decode(cross, prompt, d)
            text = self.tokenizer.decode(result.tokens)
            tries.append(result)
            if result.no_speech_prob > opts.no_speech_threshold and result.avg_logprob < opts.logprob_threshold:
                break  # silence: a hotter retry would only invent words
            looping = compression_ratio(text) > opts.compression_ratio_threshold or not result.finished
            if not looping and result.avg_logprob >= opts.logprob_threshold:
                # Speech that really repeats fails the compression check cold; a hot decode can then
                # pass by saying the sentence once for the whole window (4 repeats -> 1, measured).
                # A colder sure try that said far more is the better reading.
                best = self._most_confident_sure(tries[:-1], opts)
                if best is not None and len(text.split()) < DROPPED_WORDS_RATIO * self._words(best):
                    return best
                return result
        # Every try failed a check, or the last one reads as silence. Speech that really repeats
        # (a sentence said three times) fails the compression check at every temperature while
        # only a garbled hot decode passes it, and that decode's low confidence can then pass for
        # silence. So a try that ended, was confident and has no loop inside one timestamped
        # segment ("I'm afraid I'm afraid ...", which beam search ends confidently) wins; else the
        # last try, as Whisper (the most confident unsure one added words on 0 dB noise here).
        return self._most_confident_sure(tries, opts) or result

    def _most_confident_sure(self, tries: list[DecodeResult], opts: TranscribeOptions) -> DecodeResult | None:
        """The most confident of the tries that ended, were confident and have no loop inside one
        timestamped segment; None if there is none."""
        limit = opts.compression_ratio_threshold
        sure = [
            r
            for r in tries
            if r.finished and r.avg_logprob >= opts.logprob_threshold and self._segment_ratio(r.tokens) <= limit
        ]
        return max(sure, key=lambda r: r.avg_logprob) if sure else None

    def _words(self, r: DecodeResult) -> int:
        return len(self.tokenizer.decode(r.tokens).split())

    def _segment_ratio(self, tokens: list[int]) -> float:
        """The highest compression ratio of the text between two timestamp tokens."""
        tb, pieces, piece = self.model.special.timestamp_begin, [], []
        for t in tokens:
            if t >= tb:
                pieces.append(piece)
                piece = []
            else:
                piece.append(t)
        return max(compression_ratio(self.tokenizer.decode(p)) for p in [*pieces, piece])

    def transcribe(
        self, samples: np.ndarray, opts: TranscribeOptions, speech_probs: np.ndarray | None = None
    ) -> Transcription:
        """speech_probs: the VAD probability of each 32 ms chunk of `samples` when the caller has
        them already (a stream runs the VAD once per chunk); else the VAD runs here."""
        t_start = time.perf_counter()
        sr = self.params.sample_rate
        chunk = self.params.chunk_seconds * sr
        n = len(samples)
        timings = {
            "features_ms": 0.0,
            "encoder_ms": 0.0,
            "decoder_ms": 0.0,
            "first_token_ms": 0.0,
            "windows": 0,
            "tokens": 0,
        }
        segments: list[Segment] = []
        language = opts.language if self.model.special.languages else None
        t0 = time.perf_counter()
        probs = self.vad.speech_probs(samples, gain=vad_gain(samples)) if speech_probs is None else speech_probs
        speech = probs > opts.vad_threshold  # (n // 512,)
        timings["vad_ms"] = (time.perf_counter() - t0) * 1000
        chunk_s = self.vad.chunk_seconds
        if opts.long_form == "vad" and n > chunk:
            spans = speech_windows(speech, chunk_s, n, sr, self.params.chunk_seconds - 1.0)
        else:
            spans = [(0, n)]
        for a, b in spans:
            language = self._seek_span(samples, a, b, speech, language, opts, timings, t_start, segments)
        total = (time.perf_counter() - t_start) * 1000
        timings["total_ms"] = total
        timings["rtf"] = total / 1000 / (n / sr) if n else 0.0  # no audio: no real-time factor
        text = "".join(s.text for s in segments).strip()
        return Transcription(text, segments, language, n / sr, timings)

    def _seek_span(
        self,
        samples: np.ndarray,
        a: int,
        b: int,
        speech: np.ndarray,
        language: str | None,
        opts: TranscribeOptions,
        timings: dict,
        t_start: float,
        segments: list[Segment],
    ) -> str | None:
        """Decode samples[a:b] window after window, each starting where the last complete
        segment of the one before ended; appends to `segments` (the file's so far, the context
        of the next window) and returns the (detected) language."""
        sr, chunk = self.params.sample_rate, self.params.chunk_seconds * self.params.sample_rate
        first = len(segments)  # the repeat guard looks within this span only
        chunk_s = self.vad.chunk_seconds
        seek = a
        while seek < b - int(0.05 * sr):  # ignore a tail shorter than 50 ms
            remaining = b - seek
            span = min(remaining, chunk)
            audio = samples[seek : seek + span]
            c0, c1 = int(seek / sr / chunk_s), int((seek + span) / sr / chunk_s) + 1
            if loudest_frame_db(audio) < opts.silence_db or speech[c0:c1].sum() * chunk_s < opts.min_speech_s:
                seek += span  # silence, beeps or noise: the decoder would only invent words
                continue
            win = self.window_samples(remaining, opts)
            if segments:
                release_free_heap()  # the last window's freed buffers, before this one's peak
            t0 = time.perf_counter()
            feats = log_mel(audio, self.params, n_samples=win)
            t1 = time.perf_counter()
            cross = self.model.encode(feats)
            t2 = time.perf_counter()
            timings["features_ms"] += (t1 - t0) * 1000
            timings["encoder_ms"] += (t2 - t1) * 1000
            if self.model.special.languages and language is None:
                language = self.model.detect_language(cross)
            prompt = self.tokenizer.prompt(language, opts.task, opts.timestamps)
            context = self._previous_tokens(segments, opts)
            if context:
                prompt = [self.tokenizer.start_of_prev, *context, *prompt]
            budget = int(opts.tokens_per_second * span / sr) + opts.token_budget_base
            base = DecodeOptions(
                max_new_tokens=budget,
                timestamps=opts.timestamps,
                max_timestamp=round(win / sr / TIME_PER_TIMESTAMP),
                block_size=opts.block_size,
            )
            result = self._decode_with_fallback(cross, prompt, opts, base)
            timings["decoder_ms"] += result.decode_ms
            timings["tokens"] += len(result.tokens)
            if timings["windows"] == 0:
                timings["first_token_ms"] = (t2 - t_start) * 1000 + result.first_token_ms
            timings["windows"] += 1
            if result.no_speech_prob > opts.no_speech_threshold and result.avg_logprob < opts.logprob_threshold:
                seek += span
                continue
            new, advance = self._segments(result, seek / sr, span)
            for seg in new:
                if seg.text.strip() and not repeats(seg, segments[-1] if len(segments) > first else None):
                    segments.append(seg)
            seek += advance
        return language

    def _previous_tokens(self, segments: list[Segment], opts: TranscribeOptions) -> list[int]:
        """The text tokens before this window (at most half the decoder's positions, as Whisper),
        back to the last segment decoded hot (temperature > 0.5: likely garbage)."""
        if not opts.condition_on_previous_text or self.tokenizer.start_of_prev is None or not segments:
            return []
        limit = self.model.manifest.decoder.max_length // 2 - 1
        tokens: list[int] = []
        for seg in reversed(segments):
            if seg.temperature > 0.5 or len(tokens) >= limit:
                break
            tokens[:0] = [t for t in seg.tokens if t < self.model.special.eot]
        return tokens[-limit:]

    def _segments(self, r: DecodeResult, offset: float, span: int) -> tuple[list[Segment], int]:
        """Split timestamped tokens into segments; return them and how far to seek (samples)."""
        tb = self.model.special.timestamp_begin
        sr = self.params.sample_rate
        toks = r.tokens
        is_ts = [t >= tb for t in toks]
        meta = {"avg_logprob": r.avg_logprob, "no_speech_prob": r.no_speech_prob, "temperature": r.temperature}

        def seg(lo: int, hi: int, start: float, end: float) -> Segment:
            part = toks[lo:hi]
            lps = r.token_logprobs[lo:hi]
            return Segment(offset + start, offset + end, self.tokenizer.decode(part), part, token_logprobs=lps, **meta)

        audio_end = span / sr - AFTER_AUDIO_S

        def real(segs: list[Segment]) -> list[Segment]:
            # a segment that starts where the window holds only padding repeats earlier speech
            return [x for x in segs if x.start - offset < audio_end]

        single_ending = len(toks) >= 2 and is_ts[-1] and not is_ts[-2]
        cuts = [i for i in range(1, len(toks)) if is_ts[i] and is_ts[i - 1]]
        if cuts:
            if single_ending:
                cuts.append(len(toks))
            out, last = [], 0
            for cut in cuts:
                start, end = (toks[last] - tb) * TIME_PER_TIMESTAMP, (toks[cut - 1] - tb) * TIME_PER_TIMESTAMP
                out.append(seg(last, cut, start, end))
                last = cut
            if single_ending:
                return real(out), span
            advance = int((toks[last - 1] - tb) * TIME_PER_TIMESTAMP * sr)
            # a window that made no progress moves on rather than loop forever
            return real(out), advance if advance >= sr else span
        stamps = [t for t in toks if t >= tb]
        end = span / sr
        if stamps and stamps[-1] != tb:
            end = (stamps[-1] - tb) * TIME_PER_TIMESTAMP
        start = (stamps[0] - tb) * TIME_PER_TIMESTAMP if stamps else 0.0
        return [seg(0, len(toks), start, min(end, span / sr))], span
