"""Utterance boundaries from per-chunk speech probabilities: a pure state machine (no audio,
no model), so tests drive it with synthetic probability sequences in milliseconds.

Chunks are counted from the start of the stream. An utterance opens on a speech chunk (keeping
`pad` chunks before it, never reaching back into the previous utterance), and closes after
`min_silence` non-speech chunks, keeping `pad` chunks after its last speech. After `early`
silent chunks, and again after `pad`, a `pad` boundary tells the decode policy that the audio
a final would hold is there (up to now): the policy may decode it and, once sure, end the turn
at that chunk (`close_now(end)`) instead of waiting for the rest of the silence. Utterances
reaching `max_len` chunks are cut at their quietest chunk in the last third and go on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Boundary:
    kind: str  # open | pad | close | cut | drop (closed with too little speech)
    start: int  # first chunk of the utterance
    end: int  # one past its last chunk (for open: the chunk that opened it, + 1)


class Endpointer:
    def __init__(
        self, threshold: float, min_silence: int, pad: int, min_speech: int, max_len: int, early: int | None = None
    ) -> None:
        if min_silence < 1 or pad < 0 or max_len < 3:
            raise ValueError("min_silence must be >= 1 chunk, pad >= 0, max_len >= 3")
        self.threshold, self.min_silence, self.pad = threshold, min_silence, pad
        self.early = pad if early is None else min(early, pad)  # first chance to end the turn
        self.min_speech, self.max_len = min_speech, max_len
        self.n = 0  # chunks seen
        self.floor = 0  # an utterance never starts before this (the end of the previous one)
        self.is_open = False
        self.start = self.last_speech = self.speech = 0
        self.probs: list[float] = []  # of the open utterance's chunks since its last speech-onset/cut

    @property
    def silence(self) -> int:
        """Non-speech chunks since the open utterance's last speech chunk."""
        return self.n - 1 - self.last_speech if self.is_open else 0

    def push(self, p: float) -> list[Boundary]:
        """One chunk's speech probability; returns the boundaries it causes, in order."""
        i = self.n
        self.n += 1
        speech = p > self.threshold
        if not self.is_open:
            if not speech:
                return []
            self.is_open, self.start, self.last_speech, self.speech = True, max(i - self.pad, self.floor), i, 1
            self.probs = [0.0] * (i - self.start) + [p]
            return [Boundary("open", self.start, i + 1)]
        self.probs.append(p)
        if speech:
            self.last_speech, self.speech = i, self.speech + 1
        if self.silence >= self.min_silence:
            return [self._close(self.last_speech + 1 + self.pad)]
        if self.n - self.start >= self.max_len:
            return self._cut()
        if self.silence in (self.early, self.pad) and self.speech >= self.min_speech:
            return [Boundary("pad", self.start, self.n)]
        return []

    def close_now(self, end: int | None = None) -> list[Boundary]:
        """The decode policy says the turn is over: close at `end` (the chunk its final was decoded
        up to), by default at the last speech + pad."""
        if not self.is_open:
            return []
        return [self._close(min(self.n, self.last_speech + 1 + self.pad) if end is None else end)]

    def finish(self) -> list[Boundary]:
        """End of input: close what is open."""
        return self.close_now()

    def _close(self, end: int) -> Boundary:
        self.is_open, self.floor = False, end
        return Boundary("close" if self.speech >= self.min_speech else "drop", self.start, end)

    def _cut(self) -> list[Boundary]:
        n = len(self.probs)
        lo = 2 * n // 3
        cut = self.start + lo + int(np.argmin(self.probs[lo:])) + 1
        first = Boundary("cut" if self.speech >= self.min_speech else "drop", self.start, cut)
        rest = self.probs[cut - self.start :]
        self.start, self.floor = cut, cut
        self.probs = rest
        self.speech = sum(q > self.threshold for q in rest)
        self.last_speech = self.n - 1  # the rest counts as just spoken: its silence starts now
        return [first]
