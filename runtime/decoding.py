"""One decoding core for every model kind: a step interface, one sampling loop, one beam loop.

A model kind implements `DecoderState` for one request: its own prefill (which differs per
kind: Whisper feeds prompt tokens, an ALM feeds embeddings) returns the first next-token
logits, then `step(tokens)` feeds one token per row and returns the next logits, and
`reorder(rows)` moves rows around for beam search (row b becomes old row rows[b]; the batch
may grow from 1 to n). BlockDecoder hides its block boundaries inside `step`.

`TokenGenerator` is the caller-owned loop (as in onnxruntime-genai: `generate_next_token`,
`is_done`), so the CLI can stream tokens; `generate` drives it to the end, and
`beam_search` is the beam loop. Kind-specific logit rules come in as filters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from edge_alm.runtime.sampling import (
    LogitFilter,
    SamplingOptions,
    apply_repetition_penalty,
    log_softmax,
    pick_token,
)


class DecoderState(Protocol):
    def step(self, tokens: np.ndarray) -> np.ndarray:
        """Feed one token per row, tokens (n,); return next-token logits (n, V), float64."""
        ...

    def reorder(self, rows: np.ndarray) -> None:
        """Row b of the new state is row rows[b] of the old one."""
        ...


@dataclass
class DecodeResult:
    tokens: list[int]  # generated ids, without the prompt or the stop token
    sum_logprob: float
    no_speech_prob: float  # Whisper: P(<|nospeech|>) at the <|startoftranscript|> position; else 0
    temperature: float
    first_token_ms: float  # prefill + first pick
    decode_ms: float  # all decoder passes
    steps: int  # decoder passes
    finished: bool = True  # ended with a stop token (or stop string) rather than the budget
    token_logprobs: list[float] = field(default_factory=list)  # one per token (the end-of-turn check reads the last)

    @property
    def avg_logprob(self) -> float:
        return self.sum_logprob / (len(self.tokens) + 1)


class TokenGenerator:
    """Greedy or sampled decoding of one sequence, one token per call.

    first_logits: (1, V) or (V,) logits the prefill returned. history: tokens the repetition
    penalty counts besides the generated ones (the prompt's). stop_text: called with the
    generated tokens after each pick; True ends generation (stop strings).
    """

    def __init__(
        self,
        state: DecoderState,
        first_logits: np.ndarray,
        budget: int,
        stop_ids: Sequence[int],
        sampling: SamplingOptions | None = None,
        filters: Sequence[LogitFilter] = (),
        history: Sequence[int] = (),
        stop_text: Callable[[list[int]], bool] | None = None,
        started: float | None = None,
    ) -> None:
        self.state = state
        self._logits = np.asarray(first_logits, np.float64).reshape(1, -1)
        self.budget = budget
        self.stop_ids = frozenset(int(t) for t in stop_ids)
        self.sampling = sampling or SamplingOptions()
        self.filters = filters
        self.history = list(history)
        self.stop_text = stop_text
        self.rng = np.random.default_rng(self.sampling.seed)
        self.tokens: list[int] = []
        self.token_logprobs: list[float] = []
        self.sum_logprob = 0.0
        self.steps = 1  # the prefill
        self.finished = False  # a stop token or stop string ended it
        self._done = budget <= 0
        self._t0 = started if started is not None else time.perf_counter()
        self.first_token_ms = 0.0

    def is_done(self) -> bool:
        return self._done

    def generate_next_token(self) -> int | None:
        """Pick the next token and feed it; None when generation ended (stop token: not kept)."""
        if self._done:
            return None
        logits = self._logits.copy()  # (1, V)
        for f in self.filters:
            f(logits, [self.tokens])
        apply_repetition_penalty(logits, [self.history + self.tokens], self.sampling.repetition_penalty)
        tok, lp = pick_token(logits[0], self.sampling, self.rng)
        if not self.first_token_ms:
            self.first_token_ms = (time.perf_counter() - self._t0) * 1000
        self.sum_logprob += lp
        if tok in self.stop_ids:
            self._done = self.finished = True
            return None
        self.tokens.append(tok)
        self.token_logprobs.append(lp)
        if self.stop_text is not None and self.stop_text(self.tokens):
            self._done = self.finished = True
            return tok
        if len(self.tokens) >= self.budget:
            self._done = True
            return tok
        self._logits = self.state.step(np.array([tok], np.int64))
        self.steps += 1
        return tok

    def result(self, no_speech_prob: float = 0.0) -> DecodeResult:
        return DecodeResult(
            list(self.tokens),
            self.sum_logprob,
            no_speech_prob,
            self.sampling.temperature,
            self.first_token_ms,
            (time.perf_counter() - self._t0) * 1000,
            self.steps,
            self.finished,
            list(self.token_logprobs),
        )


def generate(state: DecoderState, first_logits: np.ndarray, budget: int, stop_ids: Sequence[int], **kw) -> DecodeResult:
    """Run a TokenGenerator to the end (keyword arguments as for TokenGenerator)."""
    gen = TokenGenerator(state, first_logits, budget, stop_ids, **kw)
    while not gen.is_done():
        gen.generate_next_token()
    return gen.result()


@dataclass
class Beam:
    tokens: list[int] = field(default_factory=list)
    score: float = 0.0  # summed log-probability
    src: int = 0  # the row this hypothesis extends (after a step)
    logprobs: list[float] = field(default_factory=list)  # of each token


def select_beams(total: np.ndarray, beams: list[Beam], eot: int, finished: list[Beam]) -> list[Beam]:
    """One beam-search step. total: (n, V) summed log-probs of every continuation. Returns
    the n best continuations that do not end (padded with -inf copies so the batch stays
    full), each with `src`, the row it extends; a top-n continuation ending in EOT joins
    `finished`. An empty list ends the search."""
    n, vocab = total.shape
    nxt: list[Beam] = []
    for rank, idx in enumerate(np.argsort(-total, axis=None)[: 2 * n]):
        b, tok = divmod(int(idx), vocab)
        score = float(total[b, tok])
        if not np.isfinite(score):
            break
        if tok == eot:
            if rank < n:
                finished.append(Beam(list(beams[b].tokens), score, logprobs=list(beams[b].logprobs)))
            continue
        nxt.append(Beam(beams[b].tokens + [tok], score, src=b, logprobs=beams[b].logprobs + [score - beams[b].score]))
        if len(nxt) == n:
            break
    if len(finished) >= n or not nxt:
        return []
    while len(nxt) < n:  # padding rows never win
        nxt.append(Beam(list(nxt[0].tokens), -np.inf, src=nxt[0].src, logprobs=list(nxt[0].logprobs)))
    return nxt


def best_beam(finished: list[Beam], live: list[Beam], hit_budget: bool) -> Beam:
    """Best by mean log-prob; out of budget, unfinished beams compete too (as in transformers)."""
    pool = finished + ([b for b in live if np.isfinite(b.score)] if hit_budget else [])
    return max(pool, key=lambda b: b.score / (len(b.tokens) + 1))


def beam_search(
    state: DecoderState,
    first_logits: np.ndarray,
    budget: int,
    eot: int,
    n_beams: int,
    filters: Sequence[LogitFilter] = (),
    started: float | None = None,
) -> DecodeResult:
    """Beam search with the beams on the batch axis; finished hypotheses ranked by mean log-prob.
    The state holds one row after prefill; it is expanded to n_beams rows here."""
    t0 = started if started is not None else time.perf_counter()
    first_ms = (time.perf_counter() - t0) * 1000
    state.reorder(np.zeros(n_beams, np.int64))
    logits = np.repeat(np.asarray(first_logits, np.float64).reshape(1, -1), n_beams, axis=0)  # (n, V)
    beams = [Beam()] + [Beam(score=-np.inf) for _ in range(n_beams - 1)]  # identical rows: expand only the first
    finished: list[Beam] = []
    steps, hit_budget = 1, True
    for _ in range(budget):
        for f in filters:
            f(logits, [b.tokens for b in beams])
        total = np.array([b.score for b in beams])[:, None] + log_softmax(logits)  # (n, V)
        nxt = select_beams(total, beams, eot, finished)
        if not nxt:
            hit_budget = False
            break
        beams = nxt
        state.reorder(np.array([b.src for b in beams]))
        logits = state.step(np.array([b.tokens[-1] for b in beams], np.int64))
        steps += 1
    best = best_beam(finished, beams, hit_budget)
    ms = (time.perf_counter() - t0) * 1000
    return DecodeResult(best.tokens, best.score, 0.0, 0.0, first_ms, ms, steps, best in finished, best.logprobs)
