"""Samplers as plain functions over next-token logits.

Each takes float64 logits of shape (n, V) (one row per hypothesis) and edits them in place or
returns a new array; `pick_token` turns one filtered row into a token. Kind-specific rules
(Whisper's timestamp rules, suppress lists) are filters of the same shape, passed into the
decoding loops in `decoding.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# A logit filter edits (n, V) logits in place, given each row's generated tokens so far.
LogitFilter = Callable[[np.ndarray, Sequence[Sequence[int]]], None]


@dataclass(frozen=True)
class SamplingOptions:
    temperature: float = 0.0  # 0 = greedy (argmax); > 0 samples from softmax(logits / T)
    top_k: int = 0  # sample only among the k likeliest tokens (0: no limit)
    top_p: float = 1.0  # sample only from the smallest set whose probability reaches p (1: no limit)
    repetition_penalty: float = 1.0  # > 1 makes tokens already in the context less likely (CTRL rule)
    seed: int = 0  # random seed, for reproducible sampling


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def apply_repetition_penalty(logits: np.ndarray, history: Sequence[Sequence[int]], penalty: float) -> None:
    """Divide positive / multiply negative logits of every token seen in a row's history
    (the rule of CTRL and transformers' RepetitionPenaltyLogitsProcessor)."""
    if penalty == 1.0:
        return
    for row, seen in zip(logits, history):
        ids = np.unique(np.asarray(seen, np.int64))
        if ids.size:
            v = row[ids]
            row[ids] = np.where(v > 0, v / penalty, v * penalty)


def apply_top_k(logits: np.ndarray, k: int) -> None:
    """Keep the k largest logits of each row (ties at the k-th kept), the rest to -inf."""
    if k <= 0 or k >= logits.shape[-1]:
        return
    kth = np.partition(logits, -k, axis=-1)[:, -k][:, None]
    logits[logits < kth] = -np.inf


def apply_top_p(logits: np.ndarray, p: float) -> None:
    """Nucleus filtering: keep the smallest set of tokens whose probability reaches p."""
    if p >= 1.0:
        return
    for row in logits:
        order = np.argsort(-row)
        probs = np.exp(log_softmax(row[order]))
        keep = np.cumsum(probs) - probs < p  # a token stays if the mass before it is below p
        keep[0] = True
        row[order[~keep]] = -np.inf


def pick_token(logits: np.ndarray, opts: SamplingOptions, rng: np.random.Generator) -> tuple[int, float]:
    """Argmax (temperature 0) or a sample from one filtered (V,) row. Returns the token and its
    log-probability under the filtered, untempered distribution."""
    lp = log_softmax(logits[None])[0]
    if opts.temperature <= 0:
        tok = int(np.argmax(lp))
        return tok, float(lp[tok])
    scaled = (lp / opts.temperature)[None]
    apply_top_k(scaled, opts.top_k)
    apply_top_p(scaled, opts.top_p)
    p = np.exp(scaled[0] - scaled[0].max())
    tok = int(rng.choice(len(p), p=p / p.sum()))
    return tok, float(lp[tok])
