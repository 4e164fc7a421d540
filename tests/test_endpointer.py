"""The endpointer alone, driven by synthetic VAD probability sequences (milliseconds)."""

from __future__ import annotations

import pytest
from edge_alm.runtime.endpointer import Boundary, Endpointer
from edge_alm.runtime.stream import ends_sentence

S, Q = 0.9, 0.1  # a speech chunk, a quiet chunk


def run(probs, **kw):
    cfg = dict(threshold=0.5, min_silence=4, pad=2, min_speech=3, max_len=50)
    cfg.update(kw)
    ep = Endpointer(**cfg)
    out = [(i, b) for i, p in enumerate(probs) for b in ep.push(p)]
    return ep, out


def test_open_pad_close_with_pre_and_post_pad():
    ep, out = run([Q] * 5 + [S] * 5 + [Q] * 6)
    assert out == [
        (5, Boundary("open", 3, 6)),  # 2 chunks of pre-roll
        (11, Boundary("pad", 3, 12)),  # 2 quiet chunks after the last speech (index 9): the final's audio
        (13, Boundary("close", 3, 12)),  # 4 quiet chunks: closed, trailing silence beyond the pad trimmed
    ]
    assert not ep.is_open and ep.floor == 12


def test_a_pause_shorter_than_min_silence_does_not_close():
    _, out = run([S] * 4 + [Q] * 3 + [S] * 4 + [Q] * 5)
    kinds = [b.kind for _, b in out]
    assert kinds == ["open", "pad", "pad", "close"] and out[-1][1] == Boundary("close", 0, 13)


def test_too_little_speech_is_dropped_and_gets_no_pad():
    _, out = run([Q, S, S, Q, Q, Q, Q, Q])
    assert [b.kind for _, b in out] == ["open", "drop"]


def test_next_utterance_never_reaches_into_the_previous_one():
    _, out = run([S] * 4 + [Q] * 4 + [S] * 4 + [Q] * 4)
    opens = [b for _, b in out if b.kind == "open"]
    closes = [b for _, b in out if b.kind == "close"]
    assert closes[0].end == 6 and opens[1].start == 6  # the pre-roll stops at the previous end


def test_close_now_ends_the_turn_at_the_pad():
    ep = Endpointer(0.5, min_silence=10, pad=2, min_speech=3, max_len=100)
    for p in [S] * 5 + [Q] * 2:
        bs = ep.push(p)
    assert bs == [Boundary("pad", 0, 7)]
    assert ep.close_now() == [Boundary("close", 0, 7)] and not ep.is_open
    assert ep.close_now() == []


def test_over_long_utterances_are_cut_at_their_quietest_chunk():
    probs = [S] * 20 + [0.6, 0.55, 0.51, 0.52] + [S] * 6
    _, out = run(probs, max_len=30, min_silence=4)
    cuts = [b for _, b in out if b.kind == "cut"]
    assert cuts == [Boundary("cut", 0, 23)]  # after 0.51, the least speech-like chunk of the last third


def test_finish_closes_what_is_open():
    ep, _ = run([S] * 6 + [Q])
    assert ep.finish() == [Boundary("close", 0, 7)]


def test_bad_configuration():
    with pytest.raises(ValueError):
        Endpointer(0.5, min_silence=0, pad=2, min_speech=3, max_len=50)


@pytest.mark.parametrize(
    "text,done",
    [("Please call me back.", True), ("Is it?", True), ("And then", False), ("Wait...", False), ("", False)],
)
def test_ends_sentence(text, done):
    assert ends_sentence(text) is done


def test_an_earlier_first_chance_then_the_pad():
    """early=1: a first pad boundary after one quiet chunk (the speculative final), again at the
    pad; close_now at the first one ends the utterance there."""
    ep, out = run([Q] * 5 + [S] * 5 + [Q] * 6, min_silence=5, pad=3, early=1)
    assert out[1:] == [
        (10, Boundary("pad", 2, 11)),
        (12, Boundary("pad", 2, 13)),
        (14, Boundary("close", 2, 13)),
    ]
    ep = Endpointer(threshold=0.5, min_silence=5, pad=3, min_speech=3, max_len=50, early=1)
    for p in [S] * 5 + [Q]:
        ep.push(p)
    assert ep.close_now() == [Boundary("close", 0, 6)]  # last speech + the one quiet chunk heard
