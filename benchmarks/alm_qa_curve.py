"""Plot the audio-QA training log: training loss (smoothed) and held-out loss and first-token
accuracy against steps.

    python -m benchmarks.alm_qa_curve [.cache/alm-qa-v6/log.jsonl] [--out benchmarks/results/x86-2core/alm_qa_curve.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("log", nargs="?", default=".cache/alm-qa-v6/log.jsonl")
    ap.add_argument("--out", default="benchmarks/results/x86-2core/alm_qa_curve.png")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(args.log).read_text().splitlines()]
    steps = np.array([r["step"] for r in rows])
    loss = np.array([r["loss"] for r in rows])
    k = 25
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    ev = [r for r in rows if "heldout_loss" in r]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].plot(steps[k - 1 :], smooth, label=f"train loss ({k}-step mean)")
    ax[0].plot([r["step"] for r in ev], [r["heldout_loss"] for r in ev], "o-", label="held-out loss")
    ax[0].set_xlabel("step (batch 8)")
    ax[0].legend()
    ax[1].plot([r["step"] for r in ev], [100 * r["heldout_first_token_acc"] for r in ev], "o-")
    ax[1].set_xlabel("step (batch 8)")
    ax[1].set_ylabel("held-out first answer token correct, %")
    fig.suptitle("audio-QA adapter + LoRA on SmolLM2-135M-Instruct, 2 CPU cores")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
