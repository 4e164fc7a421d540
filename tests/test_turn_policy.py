"""The stream's end-of-turn policy alone (milliseconds): a scripted VAD and a scripted decoder
whose text and full-stop probability are set per test, so each rule of `StreamOptions` shows in
how many quiet chunks a final needs."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from edge_alm.runtime.stream import Final, Stream, StreamOptions, sentence_end_prob
from edge_alm.runtime.transcribe import Segment, TranscribeOptions, Transcription
from edge_alm.runtime.vad import CHUNK

EOT = 100  # the scripted vocabulary: ids below are text, 100 and up special


def result(text: str, last_p: float, tokens=(5, 6, 7)) -> Transcription:
    lps = [-0.1] * (len(tokens) - 1) + [math.log(last_p)]
    seg = Segment(0.0, 1.0, text, [*tokens, EOT + 50], token_logprobs=[*lps, -0.01])  # a timestamp at the end
    return Transcription(text, [seg], None, 1.0, {})


class ScriptedDecoder:
    """Stands in for the Transcriber: the same text and last-token probability every time."""

    def __init__(self, text: str, last_p: float) -> None:
        self.params = SimpleNamespace(sample_rate=16000)
        self.model = SimpleNamespace(special=SimpleNamespace(eot=EOT))
        self.text, self.last_p, self.calls = text, last_p, 0

    def transcribe(self, audio, opts, speech_probs=None) -> Transcription:
        assert speech_probs is not None and len(speech_probs) == len(audio) // CHUNK  # the stream's VAD, reused
        self.calls += 1
        return result(self.text, self.last_p)


def speech_then(
    dec: ScriptedDecoder, quiet_chunks, turn_text=None, turn_lm=None, **options
) -> tuple[Stream, list[Final], int | None]:
    """About 1 s of speech, then `quiet_chunks` (a list of 0 = quiet, 1 = speech) one by one.
    Returns the stream, its finals and after how many of those chunks the first final came."""
    opts = StreamOptions(partial_interval_s=0, **options)
    vad = lambda c: 0.9 if c[0] > 0 else 0.1  # noqa: E731
    stream = Stream(dec, vad, opts, TranscribeOptions(), turn_text=turn_text, turn_lm=turn_lm)
    stream.accept_waveform(np.full(32 * CHUNK, 0.1, np.float32), 16000)  # whole chunks
    assert not list(stream.events())
    finals, first = [], None
    for i, speech in enumerate(quiet_chunks, 1):
        stream.accept_waveform(np.full(CHUNK, 0.1 * speech, np.float32), 16000)
        finals += [e for e in stream.events() if isinstance(e, Final)]
        if finals and first is None:
            first = i
    return stream, finals, first


def quiet_chunks_to_final(text: str, last_p: float, turn_text=None, turn_lm=None, **options) -> int | None:
    return speech_then(ScriptedDecoder(text, last_p), [0] * 40, turn_text, turn_lm, **options)[2]


def test_a_sure_full_stop_ends_the_turn_after_sure_silence():
    assert quiet_chunks_to_final("Call me back.", 0.9) == 4  # 0.1 s of 32 ms chunks
    assert quiet_chunks_to_final("Call me back.", 0.9, sure_silence_s=0.2) == 7


def test_the_final_is_the_speculative_decode():
    """Decoded after one quiet chunk, confirmed by three more: the final holds the speech and that
    one quiet chunk, and no second decode ran."""
    dec = ScriptedDecoder("Call me back.", 0.9)
    _, finals, _ = speech_then(dec, [0] * 10)
    assert dec.calls == 1 and len(finals) == 1
    assert finals[0].end == pytest.approx(33 * CHUNK / 16000)


def test_speech_before_the_confirmation_keeps_the_turn_open():
    dec = ScriptedDecoder("Call me back.", 0.9)
    _, finals, first = speech_then(dec, [0, 0, 1, 1] + [0] * 10)
    assert len(finals) == 1 and first == 8  # not at the 4th chunk: speech came back; 4 quiet chunks after it
    assert finals[0].end == pytest.approx((32 + 4 + 1) * CHUNK / 16000)


def test_an_unsure_full_stop_waits_min_silence_or_unsure_silence():
    assert quiet_chunks_to_final("When the meeting is over.", 0.4) == 22  # 0.7 s
    assert quiet_chunks_to_final("When the meeting is over.", 0.4, unsure_silence_s=0.4) == 13


def test_no_full_stop_waits_min_silence():
    assert quiet_chunks_to_final("When the meeting is over,", 0.99) == 22
    assert quiet_chunks_to_final("When the meeting is over,", 0.99, unsure_silence_s=0.4) == 22
    assert quiet_chunks_to_final("I think the answer is...", 0.99) == 22
    assert quiet_chunks_to_final("Call me back.", 0.9, early_end=False) == 22


def test_the_end_score_mixes_the_full_stop_and_the_words():
    """text_weight 0.5: the packaged text model gives the whole sentence 0.89 and the fragment ending
    on "that" 0.19: with the same full-stop probability one ends the turn at 0.1 s, the other waits 0.7 s."""
    whole, fragment = "Please call me back when you get home tonight.", "My sister said that."
    mean = {"text_weight": 0.5, "end_confidence": 0.55, "text_end_confidence": None}
    assert quiet_chunks_to_final(whole, 0.5, **mean) == 4  # (0.5 + 0.89) / 2 >= 0.55
    assert quiet_chunks_to_final(fragment, 0.5, **mean) == 22  # (0.5 + 0.19) / 2
    assert quiet_chunks_to_final(fragment, 0.85, **mean) == 22  # a surer full stop after a fragment: the words say wait
    assert quiet_chunks_to_final(whole, 0.15, **mean) == 22  # (0.15 + 0.89) / 2 < 0.55
    assert quiet_chunks_to_final(whole, 0.5, **{**mean, "text_weight": 0.0}) == 22  # the decoder alone: 0.5 < 0.55


def test_the_default_two_tier_rule():
    """p >= 0.6 alone, or p >= 0.45 and the text model >= 0.8 (spelled out, as the benchmark does)."""
    old = {"end_confidence": 0.6, "text_weight": 0.0, "unsure_end_confidence": 0.45, "text_end_confidence": 0.8}
    whole, fragment = "Please call me back when you get home tonight.", "My sister said that."
    assert quiet_chunks_to_final(whole, 0.5, **old) == 4
    assert quiet_chunks_to_final(fragment, 0.5, **old) == 22
    assert quiet_chunks_to_final(fragment, 0.65, **old) == 4  # a sure full stop alone ends it
    assert quiet_chunks_to_final(whole, 0.4, **old) == 22  # below unsure_end_confidence: the text is not asked
    assert quiet_chunks_to_final(whole, 0.5, **{**old, "unsure_end_confidence": 0.6}) == 22


class Always:
    """A text model that gives every text the same end-of-turn probability."""

    def __init__(self, p: float) -> None:
        self.p = p

    def prob(self, text: str) -> float:
        return self.p


def test_the_stream_asks_the_text_model_it_is_given():
    assert quiet_chunks_to_final("Call me back.", 0.5, turn_text=Always(0.9)) == 4
    assert quiet_chunks_to_final("Call me back.", 0.5, turn_text=Always(0.1)) == 22
    assert quiet_chunks_to_final("Call me back.", 0.4, turn_text=Always(0.9)) == 22  # below unsure_end_confidence


def test_a_turn_lm_ends_turns_the_decoder_and_text_model_leave_open():
    """No full stop written (or an unsure one): without a turn LM the turn waits min_silence_s;
    a turn LM expecting a full stop ends it after sure_silence_s. A sure full stop needs no LM."""
    no_stop, unsure = ("I need to return the books", 0.9), ("Put the milk back in the fridge, please.", 0.55)
    for text, p in (no_stop, unsure):
        assert quiet_chunks_to_final(text, p, turn_text=Always(0.1)) == 22
        assert quiet_chunks_to_final(text, p, turn_text=Always(0.1), turn_lm=Always(0.3)) == 4
        assert quiet_chunks_to_final(text, p, turn_text=Always(0.1), turn_lm=Always(0.29)) == 22
        assert quiet_chunks_to_final(text, p, Always(0.1), Always(0.4), turn_lm_confidence=0.5) == 22
    assert quiet_chunks_to_final("Call me back.", 0.9, turn_text=Always(0.1), turn_lm=Always(0.0)) == 4


def test_the_end_score_is_the_weighted_mean():
    mean = {"text_weight": 0.5, "end_confidence": 0.55, "text_end_confidence": None}
    # the end score is the weighted mean: (0.5 + 0.6) / 2 = 0.55 ends it, 0.545 does not
    assert quiet_chunks_to_final("Call me back.", 0.5, turn_text=Always(0.6), **mean) == 4
    assert quiet_chunks_to_final("Call me back.", 0.5, turn_text=Always(0.59), **mean) == 22
    assert (
        quiet_chunks_to_final("Call me back.", 0.5, turn_text=Always(0.6), **{**mean, "text_weight": 0.2}) == 22
    )  # 0.52
    assert (
        quiet_chunks_to_final("Call me back.", 0.5, turn_text=Always(1.0), **{**mean, "text_weight": 0.2}) == 4
    )  # 0.6


@pytest.mark.parametrize("conf,quiet", [(0.0, 4), (0.5, 4), (0.95, 22)])
def test_end_confidence_is_the_threshold(conf, quiet):
    # the text model off: the end score is the decoder's probability
    assert quiet_chunks_to_final("Call me back.", 0.9, end_confidence=conf, text_weight=0.0) == quiet


def test_sentence_end_prob_reads_the_last_text_token():
    assert sentence_end_prob(result("Call me back.", 0.7), EOT) == pytest.approx(0.7)
    assert sentence_end_prob(result("Call me back,", 0.7), EOT) == 0.0
    assert sentence_end_prob(result("Call me back...", 0.7), EOT) == 0.0
    empty = Transcription("", [], None, 1.0, {})
    assert sentence_end_prob(empty, EOT) == 0.0
    no_scores = Transcription("Call me.", [Segment(0.0, 1.0, "Call me.", [5, 6])], None, 1.0, {})
    assert sentence_end_prob(no_scores, EOT) == 1.0


def test_options_are_checked():
    with pytest.raises(ValueError, match="end_confidence"):
        StreamOptions(end_confidence=1.5)
    with pytest.raises(ValueError, match="unsure_silence_s"):
        StreamOptions(unsure_silence_s=-1)
    with pytest.raises(ValueError, match="sure_silence_s"):
        StreamOptions(sure_silence_s=-1)
    with pytest.raises(ValueError, match="unsure_end_confidence"):
        StreamOptions(unsure_end_confidence=1.5)
    with pytest.raises(ValueError, match="text_weight"):
        StreamOptions(text_weight=1.5)
    with pytest.raises(ValueError, match="text_end_confidence"):
        StreamOptions(text_end_confidence=-0.1)
    with pytest.raises(ValueError, match="turn_lm_confidence"):
        StreamOptions(turn_lm_confidence=2)


class CostlyDecoder(ScriptedDecoder):
    """A decoder that reports each decode as costing `cost_ms` of compute."""

    def __init__(self, cost_ms: float) -> None:
        super().__init__("Call me back", 0.9)
        self.cost_ms = cost_ms

    def transcribe(self, audio, opts, speech_probs=None) -> Transcription:
        r = super().transcribe(audio, opts, speech_probs)
        r.timings["total_ms"] = self.cost_ms
        return r


def partials_in_speech(dec: ScriptedDecoder, seconds: float, **options) -> int:
    opts = StreamOptions(partial_interval_s=0.5, first_partial_s=1.0, **options)
    stream = Stream(dec, lambda c: 0.9, opts, TranscribeOptions())
    for _ in range(round(seconds * 16000 / CHUNK)):
        stream.accept_waveform(np.full(CHUNK, 0.1, np.float32), 16000)
    return sum(e.__class__.__name__ == "Partial" for e in stream.events())


def test_partials_keep_to_their_share_of_the_cpu():
    """8 s of speech, a partial every 0.5 s after the first second: 14-15 partials. When each costs
    0.4 s and partials may take half the CPU, they come every 0.8 s instead (9); when they are
    cheap (0.1 s) the share changes nothing."""
    free = partials_in_speech(CostlyDecoder(400), 8.0, partial_cpu_share=None)
    assert 14 <= free <= 15
    assert partials_in_speech(CostlyDecoder(400), 8.0, partial_cpu_share=0.5) == pytest.approx(free * 0.5 / 0.8, abs=1)
    assert partials_in_speech(CostlyDecoder(100), 8.0, partial_cpu_share=0.5) == free
    assert partials_in_speech(CostlyDecoder(0), 8.0) == free  # the default share, with free decodes
    with pytest.raises(ValueError, match="partial_cpu_share"):
        StreamOptions(partial_cpu_share=0)
