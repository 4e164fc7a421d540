"""Side-by-side benchmark: edge-alm against faster-whisper, whisper.cpp, optimum and
transformers on the same weights, the same clips and the same threads.

Each engine runs in its own worker process. Runs are interleaved (clip by clip, engine by
engine) and repeated; per clip the minimum and median wall times are kept. Every ratio is
against faster-whisper int8 greedy measured in the same run.

    python -m benchmarks.compare --threads 1 2 --repeats 3 --out benchmarks/results/<machine>
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.devset import DEFAULT_DIR, build
from benchmarks.report import machine_info, write_report

BASELINE = "faster-whisper int8 greedy"
CACHE = Path(".cache")


def engine_specs(threads: int) -> dict[str, dict]:
    hf = str(CACHE / "whisper-base-hf")
    ct2 = str(CACHE / "whisper-base-ct2")
    specs: dict[str, dict] = {}
    for prec, bundle in (
        ("fp32", "models/whisper-base-fp32"),
        ("int8", "models/whisper-base-int8"),
        ("int4-decoder", "models/whisper-base-int4dec"),
    ):
        for window in ("auto", "30s"):
            for beam in (1, 5):
                name = f"edge-alm {prec} {'greedy' if beam == 1 else 'beam5'} {window}"
                specs[name] = {"kind": "edge-alm", "model": bundle, "window": window, "beam": beam}
    for prec in ("int8", "float32"):
        for beam in (1, 5):
            name = f"faster-whisper {prec.replace('float32', 'fp32')} {'greedy' if beam == 1 else 'beam5'}"
            specs[name] = {"kind": "faster-whisper", "model": ct2, "precision": prec, "beam": beam}
    for prec in ("f16", "q8_0"):
        for beam in (1, 5):
            name = f"whisper.cpp {prec} {'greedy' if beam == 1 else 'beam5'}"
            specs[name] = {"kind": "whisper.cpp", "model": str(CACHE / f"ggml-whisper-base-{prec}.bin"), "beam": beam}
    specs["optimum-ort fp32 greedy"] = {"kind": "optimum", "model": str(CACHE / "optimum-whisper-base"), "hf": hf}
    specs["transformers fp32 greedy"] = {"kind": "transformers", "hf": hf}
    for s in specs.values():
        s["threads"] = threads
    return specs


def prepare(specs: dict[str, dict]) -> None:
    """Build the bundles and the optimum export the chosen engines need (once)."""
    need = {s.get("model") for s in specs.values()}
    builds = {
        "models/whisper-base-fp32": ["--quantize", "fp32"],
        "models/whisper-base-int4dec": ["--quantize", "int8", "--decoder-quantize", "int4"],
    }
    for bundle, flags in builds.items():
        if bundle in need and not (Path(bundle) / "manifest.json").is_file():
            subprocess.run(
                [sys.executable, "-m", "edge_alm.cli", "export", "whisper", "--out", bundle, *flags], check=True
            )
    for prec in ("f16", "q8_0"):
        ggml = CACHE / f"ggml-whisper-base-{prec}.bin"
        if str(ggml) in need and not ggml.is_file():
            from edge_alm.export.ggml_whisper import write_ggml

            write_ggml(CACHE / "whisper-base-hf", ggml, prec)
    opt = CACHE / "optimum-whisper-base"
    if str(opt) in need and not (opt / "encoder_model.onnx").is_file():
        from optimum.onnxruntime import ORTModelForSpeechSeq2Seq

        ORTModelForSpeechSeq2Seq.from_pretrained(str(CACHE / "whisper-base-hf"), export=True).save_pretrained(opt)


class Worker:
    def __init__(self, spec: dict) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker died: {self.proc.args[-1]}")
        return json.loads(line)

    def run(self, path: Path) -> dict:
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> dict:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        stats = self._read()
        self.proc.wait()
        return stats


def run_engines(specs: dict[str, dict], clips: list[dict], clip_dir: Path, repeats: int) -> dict:
    """Run every engine (own worker process) over the clips, interleaved; return raw results."""
    names = list(specs)
    results: dict[str, dict] = {}
    for name in names:  # one worker at a time while loading, so load times are clean
        print(f"loading {name}", file=sys.stderr, flush=True)
        w = Worker(specs[name])
        w.run(clip_dir / clips[0]["file"])  # warm-up
        results[name] = {
            "worker": w,
            "load_s": w.info["load_s"],
            "size_mb": w.info["size_mb"],
            "clips": [{"file": c["file"], "walls": []} for c in clips],
        }
    for rep in range(repeats):
        for i, clip in enumerate(clips):
            print(
                f"\rrepeat {rep + 1}/{repeats} clip {i + 1}/{len(clips)}",
                end="",
                file=sys.stderr,
                flush=True,
            )
            for name in names:
                out = results[name]["worker"].run(clip_dir / clip["file"])
                row = results[name]["clips"][i]
                row["walls"].append(out.pop("wall_ms"))
                if rep == 0:
                    row.update(out)
    print(file=sys.stderr)
    for r in results.values():
        r.update(r.pop("worker").close())
        for row in r["clips"]:
            row["wall_min_ms"] = min(row["walls"])
            row["wall_median_ms"] = statistics.median(row["walls"])
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--engines", default=".", help="regex over engine names (the baseline always runs)")
    p.add_argument("--clips", type=Path, default=DEFAULT_DIR)
    p.add_argument("--limit", type=int, default=0, help="use only the first N clips (smoke runs)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/latest"))
    args = p.parse_args()
    clips = build(args.clips)
    if args.limit:
        clips = clips[: args.limit]
    names = [n for n in engine_specs(1) if re.search(args.engines, n) or n == BASELINE]
    names.sort(key=lambda n: n != BASELINE)
    runs = {}
    for t in args.threads:
        specs = {n: engine_specs(t)[n] for n in names}
        prepare(specs)
        runs[t] = run_engines(specs, clips, args.clips, args.repeats)
    data = {
        "machine": machine_info(),
        "repeats": args.repeats,
        "baseline": BASELINE,
        "clips": clips,
        "runs": {str(t): r for t, r in runs.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(data, indent=1))
    print(write_report(data, args.out))


if __name__ == "__main__":
    main()
