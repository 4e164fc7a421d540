"""Put `edge-alm bench` reports from several machines side by side: one table and one plot.

python -m benchmarks.boards bench-*.json [--out benchmarks/results/boards]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(reports: list[dict]) -> list[dict]:
    out = []
    for r in reports:
        m = r["machine"]
        for s in r["runs"]:
            speed = s["ms_per_token"]
            first = s["first_token_ms_mean"]
            extra = f"RTF {s['rtf']:.3f}" if r["kind"] != "alm" else f"prefill {s['prefill_ms_mean']:.0f} ms"
            out.append(
                {
                    "machine": m["board"] or m["cpu"],
                    "arch": m["arch"],
                    "bundle": r["bundle"],
                    "threads": s["threads"],
                    "first_token_ms": first,
                    "ms_per_token": speed,
                    "extra": extra,
                }
            )
    return out


def table(rs: list[dict]) -> str:
    lines = ["| machine | arch | bundle | threads | first token ms | ms/token | |", "|---|---|---|---|---|---|---|"]
    lines += [
        f"| {r['machine']} | {r['arch']} | {r['bundle']} | {r['threads']} | {r['first_token_ms']:.0f} | "
        f"{r['ms_per_token']:.1f} | {r['extra']} |"
        for r in rs
    ]
    return "\n".join(lines) + "\n"


def plot(rs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['machine'][:28]}\n{r['bundle']}, {r['threads']}t" for r in rs]
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(rs)))
    ax.barh(labels, [r["ms_per_token"] for r in rs])
    ax.set_xlabel("decoder ms / token (lower is better)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("reports", nargs="+")
    ap.add_argument("--out", default="benchmarks/results/boards")
    args = ap.parse_args()
    rs = rows([json.loads(Path(p).read_text()) for p in args.reports])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "boards.md").write_text(table(rs))
    plot(rs, out / "boards.png")
    print(table(rs))


if __name__ == "__main__":
    main()
