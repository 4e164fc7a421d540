"""Train the end-of-turn text model (runtime/turn_text.py): `python -m edge_alm.export.end_of_turn_train`.

Whole sentences (label 1) against prefixes of them cut after a random word (label 0, two per
sentence), from the project's permissive sentence pool (Python's standard-library docstrings and,
when installed, Debian's fortunes: `make end-of-turn-train` installs them). Logistic regression
over hashed features, full batch, Adam, L2; the classes weighted equally. A tenth of the sentences
is held out and its ROC AUC printed. About 10 s on 2 cores; deterministic.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from edge_alm.runtime.turn_text import FEATURES_VERSION, feature_bins

N_BINS = 1 << 14
PREFIXES_PER_SENTENCE = 2


def examples(sentences: list[str], rng: np.random.Generator) -> tuple[list[list[int]], np.ndarray]:
    rows, labels = [], []
    for s in sentences:
        ws = s.split()
        rows.append(feature_bins(s, N_BINS))
        labels.append(1.0)
        for k in rng.choice(np.arange(1, len(ws)), size=min(PREFIXES_PER_SENTENCE, len(ws) - 1), replace=False):
            rows.append(feature_bins(" ".join(ws[:k]), N_BINS))
            labels.append(0.0)
    return rows, np.array(labels)


def fit(rows: list[list[int]], y: np.ndarray, epochs: int = 400, lr: float = 0.1, l2: float = 1e-4) -> np.ndarray:
    """Weights (N_BINS,) of a logistic regression on bags of hashed features."""
    r = np.repeat(np.arange(len(rows)), [len(x) for x in rows])
    c = np.concatenate(rows)
    balance = np.where(y == 1, (y == 0).sum() / max(1, (y == 1).sum()), 1.0) / len(y)
    w, m, v = np.zeros(N_BINS), np.zeros(N_BINS), np.zeros(N_BINS)
    for t in range(1, epochs + 1):
        p = 1 / (1 + np.exp(-np.bincount(r, weights=w[c], minlength=len(y))))
        g = np.bincount(c, weights=((p - y) * balance)[r], minlength=N_BINS) + l2 * w
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        w -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return w


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="stable")] = np.arange(1, len(scores) + 1)
    pos, neg = (y == 1).sum(), (y == 0).sum()
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def train(sentences: list[str], out: Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    pool = sorted(set(sentences))
    rng.shuffle(pool)
    cut = int(0.9 * len(pool))
    rows, y = examples(pool[:cut], rng)
    w = fit(rows, y)
    test_rows, test_y = examples(pool[cut:], rng)
    score = lambda rs: np.array([w[x].sum() for x in rs])  # noqa: E731
    report = {"sentences": len(pool), "train_auc": auc(score(rows), y), "heldout_auc": auc(score(test_rows), test_y)}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, weights=w.astype(np.float16), features_version=np.int64(FEATURES_VERSION))
    return report


def main(argv: list[str] | None = None) -> None:
    from edge_alm.export.alm_qa_audio import sentence_pool

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("edge_alm/data/end_of_turn.npz"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    report = train(sentence_pool(3, 20), args.out, args.seed)
    print(
        f"{report['sentences']} sentences; ROC AUC train {report['train_auc']:.3f}, "
        f"held-out sentences {report['heldout_auc']:.3f}; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
