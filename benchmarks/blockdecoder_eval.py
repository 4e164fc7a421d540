"""Teacher against BlockDecoder student on the dev set, and the training curve.

Runs `edge_alm.bench.run_bench` (the same loop as `edge-alm bench`) for the teacher bundle
and the student at each K (greedy, plus beam if asked) in one process, so ratios compare
like with like; writes JSON, a markdown table and a plot of held-out WER against steps.

    python -m benchmarks.blockdecoder_eval --teacher models/whisper-base-int8 \
        --student models/whisper-base-blockdecoder-int8 --train-log .cache/blockdecoder/train-4+2/log.jsonl \
        --out benchmarks/results/x86-2core
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_alm.runtime.manifest import load_manifest

from edge_alm.bench import run_bench


def bundle_mb(path: str) -> float:
    m = load_manifest(path, verify=False)
    return sum((m.path / g.file).stat().st_size for n, g in m.graphs.items() if n != "vad") / 1e6


def plot_curve(log: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log.read_text().splitlines()]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in rows], [r["wer_vs_teacher"] for r in rows], marker="o", label="held-out WER vs teacher")
    ax.set_xlabel("training step (batch 16)")
    ax.set_ylabel("WER %")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot([r["step"] for r in rows], [r["loss"] for r in rows], color="gray", ls="--", label="train loss")
    ax2.set_ylabel("train loss")
    fig.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="models/whisper-base-int8")
    p.add_argument("--student", default="models/whisper-base-blockdecoder-int8")
    p.add_argument("--clips", default="benchmarks/data/clips")
    p.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--beam", type=int, default=0, help="also run beam search of this width (teacher and K=4)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-log", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    runs = [("teacher", args.teacher, None, 1)] + [("student", args.student, k, 1) for k in args.ks]
    if args.beam > 1:
        runs += [("teacher", args.teacher, None, args.beam), ("student", args.student, 4, args.beam)]
    rows = []
    for role, bundle, k, beam in runs:
        s = run_bench(bundle, args.clips, args.threads, beam=beam, block_size=k)
        s.pop("rows")
        s.update(role=role, mb=bundle_mb(bundle))
        rows.append(s)
        print(
            f"{role:8s} K={k or '-'} beam={beam}: wall {s['wall_s']:.1f} s, {s['ms_per_token']:.2f} ms/token, "
            f"WER {s['wer']:.1f} %",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "blockdecoder_eval.json").write_text(json.dumps(rows, indent=1))
    base = {r["beam"]: r for r in rows if r["role"] == "teacher"}
    lines = [
        "| model | K | beam | graphs MB | wall s | vs teacher | ms/token | vs teacher | WER |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = base[r["beam"]]
        lines.append(
            f"| {r['role']} | {r['block_size'] or '-'} | {r['beam']} | {r['mb']:.0f} | {r['wall_s']:.1f} | "
            f"{r['wall_s'] / t['wall_s']:.2f} | {r['ms_per_token']:.2f} | {r['ms_per_token'] / t['ms_per_token']:.2f} "
            f"| {r['wer']:.1f} % |"
        )
    table = "\n".join(lines)
    (args.out / "blockdecoder_eval.md").write_text(table + "\n")
    print(table)
    if args.train_log:
        print(plot_curve(args.train_log, args.out / "blockdecoder_curve.png"))


if __name__ == "__main__":
    main()
