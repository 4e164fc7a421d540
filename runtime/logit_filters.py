"""Whisper's logit rules as plain functions over a (B, V) logits array, applied in place.

`sample_begin` is the index in the token sequence of the first generated token.
"""

from __future__ import annotations

import numpy as np
from edge_alm.runtime.manifest import SpecialTokens
from edge_alm.runtime.sampling import log_softmax

NEG_INF = -np.inf


def suppress_ids(special: SpecialTokens) -> np.ndarray:
    """Ids never sampled: the bundle's suppress list plus every special control token."""
    control = range(special.eot + 1, special.timestamp_begin)  # sot, languages, tasks, ...
    return np.array(sorted(set(special.suppress) | set(control)), dtype=np.int64)


def apply_suppress(logits: np.ndarray, ids: np.ndarray) -> None:
    logits[:, ids] = NEG_INF


def apply_begin_suppress(logits: np.ndarray, special: SpecialTokens, n_generated: int) -> None:
    if n_generated == 0 and special.begin_suppress:
        logits[:, list(special.begin_suppress)] = NEG_INF


def apply_timestamp_rules(
    logits: np.ndarray,
    generated: list[list[int]],
    special: SpecialTokens,
    max_initial_timestamp: int = 50,
    max_timestamp: int | None = None,
) -> None:
    """Timestamps come in pairs, never decrease, start the text, and win when the
    timestamps' total probability beats every single text token (as in openai/whisper)."""
    tb, eot = special.timestamp_begin, special.eot
    if max_timestamp is not None:
        logits[:, tb + max_timestamp + 1 :] = NEG_INF
    for b, seq in enumerate(generated):
        row = logits[b]
        last_ts = len(seq) >= 1 and seq[-1] >= tb
        penult_ts = len(seq) < 2 or seq[-2] >= tb
        if last_ts:
            if penult_ts:
                row[tb:] = NEG_INF  # a pair just closed: text (or eot) next
            else:
                row[:eot] = NEG_INF  # an opening timestamp: another timestamp or eot next
        stamps = [t for t in seq if t >= tb]
        if stamps:
            floor = stamps[-1] if (last_ts and not penult_ts) else stamps[-1] + 1
            row[tb:floor] = NEG_INF
        if not seq:
            row[:tb] = NEG_INF
            row[tb + max_initial_timestamp + 1 :] = NEG_INF
        logprobs = log_softmax(row[None])[0]
        ts_logprob = np.logaddexp.reduce(logprobs[tb:])
        if ts_logprob > logprobs[:tb].max():
            row[:tb] = NEG_INF
