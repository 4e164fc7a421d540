"""Long-form transcription cut at VAD pauses, and the guards against repeated utterances."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from conftest import SENTENCES, VOICES, espeak, read_wav
from edge_alm.runtime.decoding import DecodeResult
from edge_alm.runtime.transcribe import REGION_PAD_S, Segment, repeats, speech_windows
from whisper_normalizer.english import EnglishTextNormalizer

CHUNK = 0.032  # VAD chunk seconds
SR = 16000


def flags(regions: list[tuple[float, float]], total: float) -> np.ndarray:
    f = np.zeros(int(total / CHUNK), bool)
    for a, b in regions:
        f[int(a / CHUNK) : int(b / CHUNK)] = True
    return f


def test_speech_windows_bridge_short_gaps_pack_and_keep_long_regions_alone():
    total = 100.0
    regions = [(1, 5), (5.3, 8), (12, 20), (22, 29), (31, 70), (75, 80)]
    spans = [(a / SR, b / SR) for a, b in speech_windows(flags(regions, total), CHUNK, int(total * SR), SR, 29.0)]
    pad = REGION_PAD_S
    assert len(spans) == 3
    (a0, b0), (a1, b1), (a2, b2) = spans
    assert a0 == pytest.approx(1 - pad, abs=0.05) and b0 == pytest.approx(29 + pad, abs=0.05)  # 1-29 packed
    assert a1 == pytest.approx(31 - pad, abs=0.05) and b1 - a1 > 29  # a long region is a span alone
    assert a2 == pytest.approx(75 - pad, abs=0.05) and b2 == pytest.approx(80 + pad, abs=0.05)
    assert all(b <= a_next for (_, b), (a_next, _) in zip(spans, spans[1:]))  # no overlap
    assert speech_windows(flags([], total), CHUNK, int(total * SR), SR, 29.0) == []


def test_repeated_utterance_is_dropped_but_short_repeats_stay():
    a = Segment(0.0, 4.0, " Please call me back when you get home tonight.")
    assert repeats(Segment(4.0, 8.0, " please call me back when you get home tonight."), a)
    assert not repeats(Segment(4.0, 5.0, " No no."), Segment(3.0, 4.0, " No no."))  # short: may be real speech
    assert not repeats(Segment(4.0, 8.0, " Call me back."), a)
    assert not repeats(a, None)


@pytest.mark.slow
def test_segment_starting_after_the_audio_is_dropped(default_model):
    """The failure on 8-9 s clips: the auto window leaves about 1 s of padding, and the decoder
    starts a second segment there that repeats the first. Built from real decoder tokens."""
    tr = default_model.transcriber
    tb = tr.model.special.timestamp_begin
    text = tr.tokenizer.encode(" Please call me back when you get home tonight.")
    toks = [tb, *text, tb + 400, tb + 450, *text, tb + 495]  # 0-8 s, then 9.0-9.9 s in a 10 s window
    r = DecodeResult(toks, -1.0, 0.0, 0.0, 0.0, 0.0, len(toks))
    segs, _ = tr._segments(r, 0.0, int(8.9 * SR))  # 8.9 s of real audio
    assert [round(s.start, 2) for s in segs] == [0.0]
    segs, _ = tr._segments(r, 0.0, int(9.95 * SR))  # the audio really goes on: kept
    assert len(segs) == 2


@pytest.fixture(scope="module")
def long_file(tmp_path_factory) -> tuple[np.ndarray, list[str]]:
    """Twelve sentences in two voices at two speeds, joined with 0.6-1.6 s pauses (about 47 s)."""
    d = tmp_path_factory.mktemp("long")
    g = np.random.default_rng(3)
    parts = []
    for i, s in enumerate(SENTENCES):
        x, sr = read_wav(espeak(s, d / f"{i}.wav", VOICES[i % 2], speed=130 + 20 * (i % 3)))
        x = soxr.resample(x, sr, SR).astype(np.float32)
        parts += [x, np.zeros(int(g.uniform(0.6, 1.6) * SR), np.float32)]
    return np.concatenate(parts), SENTENCES


def sentence_recall(text: str, sentence: str, norm) -> float:
    got, want = norm(text).split(), norm(sentence).split()
    return sum(w in got for w in want) / len(want)


@pytest.mark.slow
def test_long_form_keeps_every_sentence_both_ways(default_model, long_file):
    audio, sentences = long_file
    norm = EnglishTextNormalizer()
    vad = default_model.transcribe((audio, SR), long_form="vad")
    seek = default_model.transcribe((audio, SR), long_form="seek")
    assert vad.duration > 40 and vad.timings["windows"] >= 2
    recall = [sentence_recall(vad.text, s, norm) for s in sentences]
    assert min(recall) >= 0.5, list(zip(sentences, recall))  # every sentence there (one is misheard)
    # timestamps are mapped back to the file: increasing and inside it
    starts = [s.start for s in vad.segments]
    assert starts == sorted(starts) and vad.segments[-1].end <= vad.duration + 0.1
    seek_recall = [sentence_recall(seek.text, s, norm) for s in sentences]
    assert min(seek_recall) >= 0.5, list(zip(sentences, seek_recall))  # the default path keeps them too
    with pytest.raises(ValueError, match="long_form"):
        default_model.transcribe((audio, SR), long_form="chunks")
