"""Mellow on the device: the reference implementation against edge-alm, same model, same input.

Full-size Mellow with rule-filled random weights (tests/mellow_rules.py: the checkpoint the
parity tests use), two clips of tests/mellow_rules.py and one prompt, 2 threads. Each
configuration runs in its own process (for its peak RSS):

    reference     Mellow's wrapper as users run it: PyTorch, the whole LM over the whole
                  sequence for every token (no KV cache)
    torch-kv      the same PyTorch model with Hugging Face's KV cache (our loop)
    edge-fp32 / edge-int8 / edge-int4   `edge-alm export mellow` bundles (int4: the LM)
    edge-int8-nopad                     the int8 bundle without the 129-token question padding

Reports time to first token (audio encoding + prefill + first token), ms per generated
token over 50 and over 200 tokens, peak RSS. Needs the reference directory and torchlibrosa
(as tests/mellow_oracle.py does).

    .venv/bin/python benchmarks/mellow_speed.py --reference ../shared/reference/mellow
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import mellow_rules as R  # noqa: E402

CONFIGS = ("reference", "torch-kv", "edge-fp32", "edge-int8", "edge-int4", "edge-int8-nopad")
BUNDLES = {"edge-fp32": ("fp32", None), "edge-int8": ("int8", None), "edge-int4": ("int8", "int4")}
CLIPS, PROMPT = (0, 1), R.PROMPTS[0]


def build_bundles(work: Path) -> dict[str, Path]:
    """The rule-filled checkpoint and its bundles (built once, then reused)."""
    from edge_alm.cli import main as cli

    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / "v0.ckpt"
    spec = json.loads(str(np.load(R.FIXTURE)["spec"]))
    if not ckpt.is_file():
        R.write_checkpoint([(n, tuple(s)) for n, s in spec], ckpt)
    out = {}
    for name, (q, lm_q) in BUNDLES.items():
        out[name] = work / name
        if not (out[name] / "manifest.json").is_file():
            argv = ["export", "mellow", "--checkpoint", str(ckpt), "--quantize", q, "--out", str(out[name])]
            argv += ["--lm-quantize", lm_q] if lm_q else []
            if cli([*argv, "--cache", str(ROOT / ".cache")]) != 0:
                raise SystemExit(f"export of {name} failed")
    return out


def torch_times(stamps: list[float], t0: float) -> tuple[float, float]:
    """First-token ms and ms per later token from the end time of every LM call."""
    return (stamps[0] - t0) * 1000, (stamps[-1] - stamps[0]) * 1000 / max(len(stamps) - 1, 1)


def run_reference(reference: Path, saved: Path, n: int, kv: bool) -> tuple[float, float, list[int]]:
    import torch
    from mellow_oracle import CLIP_PATHS, reference_wrapper

    wrapper, _ = reference_wrapper(reference, threads=2, saved=saved)
    lm = wrapper.model.caption_decoder.lm
    stamps: list[float] = []
    lm.register_forward_hook(lambda m, i, o: stamps.append(time.perf_counter()))
    names = list(CLIP_PATHS)
    example = [names[CLIPS[0]], names[CLIPS[1]], PROMPT]
    t0 = time.perf_counter()
    if not kv:
        wrapper.generate([example], n, top_p=0.8, temperature=1.0)
        ttft, per = torch_times(stamps, t0)
        return ttft, per, []
    with torch.no_grad():  # the same prefix, then one token at a time on HF's cache
        d = {
            "audio1": wrapper.preprocess_audio([example[0]], True).squeeze(1),
            "audio2": wrapper.preprocess_audio([example[1]], True).squeeze(1),
            "input": wrapper.preprocess_text([PROMPT]),
        }
        prefix, _, _ = wrapper.model.generate_prefix_inference(d)
        out = lm(inputs_embeds=prefix, use_cache=True)
        tokens = []
        for _ in range(n):
            token = out.logits[:, -1].argmax(-1)
            tokens.append(int(token))
            if len(tokens) == n:
                break
            out = lm(inputs_embeds=lm.model.embed_tokens(token[:, None]), past_key_values=out.past_key_values)
    ttft, per = torch_times(stamps, t0)
    return ttft, per, tokens


def run_edge(bundle: Path, n: int, pad: bool) -> tuple[float, float, list[int]]:
    from dataclasses import replace

    from edge_alm.model import EdgeALM

    model = EdgeALM.load(bundle, threads=2)
    if not pad:  # the same bundle as exported with --no-pad
        p = model.alm.config.prompt
        model.alm.config = replace(model.alm.config, prompt=replace(p, question_tokens=0))
    clips = [(R.synth_clip(*R.CLIPS[i]), R.SR) for i in CLIPS]
    model.ask(PROMPT, clips, max_new_tokens=2)  # warm-up: session start, first-run allocations
    answer = model.ask(PROMPT, clips, max_new_tokens=n)
    t = answer.timings
    return t["first_token_ms"], t["ms_per_token"], answer.tokens


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, Linux does not carry it over
    from the parent that started us)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(config: str, n: int, reference: Path, work: Path) -> dict:
    saved = work / "reference-full.ckpt"
    if config == "prepare":  # the reference's full checkpoint, written once outside the timed processes
        from mellow_oracle import reference_wrapper

        reference_wrapper(reference, saved=saved)
        return {}
    if config in ("reference", "torch-kv"):
        ttft, per, tokens = run_reference(reference, saved, n, kv=config == "torch-kv")
    else:
        bundle = work / ("edge-int8" if config == "edge-int8-nopad" else config)
        ttft, per, tokens = run_edge(bundle, n, pad=config != "edge-int8-nopad")
    rss = peak_rss_mb()
    return {"config": config, "tokens": n, "ttft_ms": ttft, "ms_per_token": per, "peak_rss_mb": rss, "ids": tokens}


def table(rows: list[dict]) -> str:
    by = {(r["config"], r["tokens"]): r for r in rows}
    ref200 = by[("reference", 200)]["ms_per_token"]
    kv200 = by[("torch-kv", 200)]["ms_per_token"]
    lines = [
        "| configuration | first token (ms) | ms/token, 50 tokens | ms/token, 200 tokens | vs reference (200) "
        "| vs torch-kv (200) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in CONFIGS:
        a, b = by[(c, 50)], by[(c, 200)]
        lines.append(
            f"| {c} | {a['ttft_ms']:.0f} | {a['ms_per_token']:.1f} | {b['ms_per_token']:.1f} | "
            f"{ref200 / b['ms_per_token']:.1f}x | {kv200 / b['ms_per_token']:.2f}x | "
            f"{max(a['peak_rss_mb'], b['peak_rss_mb']):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, required=True, help="the reference directory (holds mellow/)")
    ap.add_argument("--work", type=Path, default=ROOT / ".cache" / "mellow-bench")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "x86-2core")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tokens", type=int, default=50, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.tokens, args.reference, args.work)))
        return
    build_bundles(args.work)
    cmd = [sys.executable, __file__, "--reference", str(args.reference), "--work", str(args.work)]
    subprocess.run([*cmd, "--child", "prepare"], check=True, capture_output=True)
    rows = []
    for config in CONFIGS:
        for n in (50, 200):
            res = subprocess.run([*cmd, "--child", config, "--tokens", str(n)], capture_output=True, text=True)
            if res.returncode != 0:
                raise SystemExit(f"{config} failed:\n{res.stderr[-2000:]}")
            row = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{config:16s} {n:3d} tokens: first token {row['ttft_ms']:7.0f} ms, "
                f"{row['ms_per_token']:7.1f} ms/token, peak RSS {row['peak_rss_mb']:5.0f} MB",
                flush=True,
            )
    ids = {(r["config"], r["tokens"]): r["ids"] for r in rows}
    agree = {c: sum(a == b for a, b in zip(ids[(c, 200)], ids[("torch-kv", 200)])) for c in CONFIGS if ids[(c, 200)]}
    md = table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mellow_speed.json").write_text(json.dumps({"rows": rows, "agree_with_torch_kv_200": agree}, indent=1))
    (args.out / "mellow_speed.md").write_text(md + "\n")
    print(md)
    print("tokens equal to torch-kv's, of 200:", agree)


if __name__ == "__main__":
    main()
