"""Token compression for the audio-QA model: how far can encoder frames be pooled before answers
suffer? Trains the same recipe (adapter + LoRA, same corpus, same seed and schedule) at each
pooling factor, exports each as a bundle and scores it on the same held-out questions, then times
prefill (audio encoder + adapter + LM prefill) for a 10 s clip at each factor in one run.

    python -m benchmarks.alm_qa_pool_sweep [--pools 1 2 4 8] [--steps 300] [--stride 3]
        [--stage train eval time] [--out benchmarks/results/x86-2core]

Each factor has its own resumable work folder (.cache/alm-qa-v6-sweep/p<N>) that shares the
corpus and cached frames of .cache/alm-qa-v6 (build them first: `make alm-qa-train`).
The steps are far fewer than the shipped model's (a CPU budget), so the table compares the
factors at equal training, not the shipped model's accuracy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / ".cache/alm-qa-v6"
SWEEP = ROOT / ".cache/alm-qa-v6-sweep"
BASE_BUNDLE = ROOT / "models/smollm2-whisper-alm-int8"


def work_dir(pool: int) -> Path:
    work = SWEEP / f"p{pool}"
    work.mkdir(parents=True, exist_ok=True)
    for split in ("train", "heldout"):
        link = work / split
        if not link.exists():
            link.symlink_to(CORPUS / split)
    return work


def train_pool(pool: int, steps: int) -> Path:
    from edge_alm.export.alm_export import default_smollm2
    from edge_alm.export.alm_qa_train import train
    from edge_alm.export.whisper_weights import default_whisper_base

    cache = ROOT / ".cache"
    work = work_dir(pool)
    weights = train(work, BASE_BUNDLE, default_smollm2(cache), default_whisper_base(cache), steps, pool=pool)
    bundle = work / "bundle"
    if not (bundle / "manifest.json").is_file():
        cmd = [sys.executable, "-m", "edge_alm.cli", "export", "alm", "--adapter", str(weights)]
        subprocess.run(cmd + ["--lm-quantize", "int8-block", "--out", str(bundle)], check=True)
    return bundle


def eval_pool(pool: int, stride: int, threads: int) -> dict:
    from benchmarks.alm_qa_eval import load_clips, run, summarise
    from edge_alm import EdgeALM

    model = EdgeALM.load(work_dir(pool) / "bundle", threads=threads)
    audio, qas = load_clips(CORPUS)
    rows = run(model, audio, qas[::stride])
    log = [json.loads(line) for line in (work_dir(pool) / "log.jsonl").read_text().splitlines()]
    curve = [{k: r[k] for k in ("step", "heldout_loss", "heldout_first_token_acc")} for r in log if "heldout_loss" in r]
    return {"pool": pool, "questions": len(rows), "scores": summarise(rows), "curve": curve}


def time_pools(pools: list[int], threads: int, repeats: int = 5) -> dict[int, dict]:
    """Median encode and prefill time of one question about a 10 s clip, bundles interleaved."""
    from edge_alm import EdgeALM

    models = {p: EdgeALM.load(work_dir(p) / "bundle", threads=threads) for p in pools}
    clip = (np.random.default_rng(0).standard_normal(160000) * 0.05).astype(np.float32)
    times: dict[int, list[dict]] = {p: [] for p in pools}
    for _ in range(repeats):
        for p, m in models.items():
            t = m.ask("Is there speech in this recording?", audio=(clip, 16000), max_new_tokens=1).timings
            times[p].append(t)
    return {
        p: {k: round(statistics.median(t[k] for t in ts), 1) for k in ("encode_ms", "prefill_ms", "prompt_tokens")}
        for p, ts in times.items()
    }


def markdown(results: list[dict], timing: dict, steps: int) -> str:
    from benchmarks.alm_qa_eval import metric

    pools = [r["pool"] for r in results]
    tasks = sorted(results[0]["scores"])
    lines = [
        "# Audio-QA token compression: pooling factor against accuracy and prefill time",
        "",
        f"The same recipe trained {steps} steps (batch 8) at each pooling factor p (p encoder frames averaged "
        "into one audio token; whisper-base gives 50 frames/s), int8-block LM, scored through the runtime "
        f"on the same {results[0]['questions']} held-out questions. The shipped model is p = 4 trained "
        "1,300 steps; these short runs compare the factors at equal training.",
        "",
        "| task | n | " + " | ".join(f"p = {p}" for p in pools) + " |",
        "|---|---|" + "---|" * len(pools),
    ]
    for t in tasks:
        n = results[0]["scores"][t]["n"]
        lines.append(f"| {t} | {n} | " + " | ".join(metric(r["scores"][t]) for r in results) + " |")
    losses = " | ".join(f"{r['curve'][-1]['heldout_loss']:.3f}" for r in results)
    lines.append(f"| held-out loss (128 questions) | | {losses} |")
    if timing:
        lines += [
            "",
            "Time for one question about a 10 s clip (2 threads, median of 5, bundles interleaved in one run):",
            "",
            "| | " + " | ".join(f"p = {p}" for p in pools) + " |",
            "|---|" + "---|" * len(pools),
            "| audio tokens + prompt | " + " | ".join(f"{timing[p]['prompt_tokens']:.0f}" for p in pools) + " |",
            "| encoder + adapter ms | " + " | ".join(f"{timing[p]['encode_ms']:.0f}" for p in pools) + " |",
            "| LM prefill ms | " + " | ".join(f"{timing[p]['prefill_ms']:.0f}" for p in pools) + " |",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pools", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--stride", type=int, default=3, help="every Nth held-out question")
    ap.add_argument("--stage", nargs="+", default=["train", "eval", "time"], choices=("train", "eval", "time"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/x86-2core"))
    args = ap.parse_args()
    out = Path(args.out)
    state = SWEEP / "results.json"
    saved = json.loads(state.read_text()) if state.is_file() else {"evals": {}, "timing": {}}
    for p in args.pools:
        if "train" in args.stage:
            t0 = time.time()
            train_pool(p, args.steps)
            print(f"p={p}: trained and exported in {(time.time() - t0) / 60:.0f} min", flush=True)
        if "eval" in args.stage:
            saved["evals"][str(p)] = eval_pool(p, args.stride, args.threads)
            state.write_text(json.dumps(saved, indent=1))
            print(json.dumps(saved["evals"][str(p)]["scores"]), flush=True)
    if "time" in args.stage:
        saved["timing"] = {str(p): t for p, t in time_pools(args.pools, args.threads).items()}
        state.write_text(json.dumps(saved, indent=1))
    results = [saved["evals"][str(p)] for p in args.pools if str(p) in saved["evals"]]
    if results:
        timing = {int(p): t for p, t in saved["timing"].items()}
        timing = timing if all(p in timing for p in args.pools) else {}
        md = markdown(results, timing, args.steps)
        out.mkdir(parents=True, exist_ok=True)
        (out / "alm_qa_pool_sweep.md").write_text(md)
        (out / "alm_qa_pool_sweep.json").write_text(json.dumps({**saved, "steps": args.steps}, indent=1))
        print(md)


if __name__ == "__main__":
    main()
