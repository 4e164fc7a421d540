"""The device install on 64-bit ARM, checked on this x86 machine under qemu-user.

    python -m benchmarks.arm64_check [--bundles models/whisper-base-int8 models/smollm2-whisper-qa-int8]

1. A Debian bookworm arm64 root, first stage only (`debootstrap --foreign`; the downloaded
   .debs are unpacked with dpkg-deb, nothing arm64 is executed), gives an aarch64 Python 3.11.
2. The device install's aarch64 wheels from PyPI (numpy, onnxruntime, tokenizers, soundfile,
   soxr; onnxruntime at this machine's version) go into a target directory.
3. The same probe runs natively and under `qemu-aarch64-static`: every bundle transcribes (or
   answers about) the packaged bench clips; the token ids are compared one for one.

Timings under emulation mean nothing and are not reported. Needs Debian's qemu-user-static and
debootstrap (`make arm64-check` installs them) and reaches deb.debian.org and PyPI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "arm64"
PROBE = r"""
import json, sys
from pathlib import Path
from edge_alm import EdgeALM
from edge_alm.bench import PACKAGED_CLIPS
import onnxruntime, platform
clips = sorted(PACKAGED_CLIPS.glob("*.wav"))
out = {"arch": platform.machine(), "onnxruntime": onnxruntime.__version__, "bundles": {}}
for b in sys.argv[1:]:
    m = EdgeALM.load(b, threads=1)
    res = {}
    for c in clips:
        if m.manifest.kind == "alm":
            a = m.ask("What does the speaker say?", audio=str(c), max_new_tokens=24)
            res[c.name] = {"tokens": a.tokens, "text": a.text}
        else:
            r = m.transcribe(str(c))
            res[c.name] = {"tokens": [t for s in r.segments for t in s.tokens], "text": r.text}
    out["bundles"][Path(b).name] = res
print(json.dumps(out))
"""


def arm64_python() -> Path:
    root = CACHE / "root"
    py = root / "usr" / "bin" / "python3.11"
    if not py.is_file():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "debootstrap",
                "--foreign",
                "--arch=arm64",
                "--variant=minbase",
                "--include=python3",
                "bookworm",
                str(root),
            ]
            + ["http://deb.debian.org/debian"],
            check=True,
        )
        # the first stage unpacks only the essential packages; the rest (python3) wait as .debs
        for deb in sorted((root / "var/cache/apt/archives").glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return py


def arm64_site(ort_version: str) -> Path:
    import numpy
    import tokenizers

    site = CACHE / f"site-ort{ort_version}"
    if not (site / "onnxruntime").is_dir():
        pins = [f"numpy=={numpy.__version__}", f"onnxruntime=={ort_version}"]
        pkgs = [*pins, f"tokenizers=={tokenizers.__version__}", "soundfile", "soxr"]
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(site), "--only-binary=:all:"]
            + ["--implementation", "cp", "--python-version", "3.11", "--platform", "manylinux2014_aarch64"]
            + ["--platform", "manylinux_2_28_aarch64", "--platform", "manylinux_2_17_aarch64", *pkgs],
            check=True,
        )
    return site


def source_tree() -> Path:
    """edge_alm laid out as installed (edge_alm/runtime is runtime/), for a Python without our
    editable-install hook."""
    src = CACHE / "src" / "edge_alm"
    shutil.rmtree(src.parent, ignore_errors=True)
    src.mkdir(parents=True)
    for f in (ROOT / "edge_alm").iterdir():
        if f.name != "__pycache__":
            (src / f.name).symlink_to(f)
    (src / "runtime").symlink_to(ROOT / "runtime")
    return src.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundles", nargs="+", default=["models/whisper-base-int8", "models/smollm2-whisper-alm-int8"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/arm64-qemu"))
    # onnxruntime 1.32's aarch64 wheel dies at import under qemu-user (SIGSEGV, any -cpu model);
    # 1.22 runs there. Real boards are not affected by this.
    ap.add_argument("--ort", default="1.22.0", help="onnxruntime version of the arm64 side")
    args = ap.parse_args()
    bundles = [str(ROOT / b) for b in args.bundles if (ROOT / b / "manifest.json").is_file()]
    native = json.loads(
        subprocess.run([sys.executable, "-c", PROBE, *bundles], capture_output=True, text=True, check=True).stdout
    )
    py, site, src = arm64_python(), arm64_site(args.ort), source_tree()
    env = {**os.environ, "PYTHONPATH": f"{src}:{site}", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        ["qemu-aarch64-static", "-L", str(py.parents[2]), str(py), "-c", PROBE, *bundles],
        capture_output=True,
        text=True,
        env=env,
        cwd=CACHE,  # not the repository: its edge_alm/ (without runtime/) would shadow the laid-out tree
    )
    if proc.returncode != 0:
        sys.exit(f"arm64 run failed:\n{proc.stderr[-3000:]}")
    arm = json.loads(proc.stdout.strip().splitlines()[-1])
    rows, same = [], 0
    for b, clips in native["bundles"].items():
        for clip, r in clips.items():
            a = arm["bundles"][b][clip]
            equal = a["tokens"] == r["tokens"]
            same += equal
            rows.append({"bundle": b, "clip": clip, "equal": equal, "x86": r["text"], "arm64": a["text"]})
    report = {
        "native": native["arch"],
        "native_onnxruntime": native["onnxruntime"],
        "emulated": arm["arch"],
        "onnxruntime": arm["onnxruntime"],
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "check.json").write_text(json.dumps(report, indent=1))
    lines = [
        f"# arm64 (qemu-user, Debian bookworm, onnxruntime {arm['onnxruntime']} aarch64 wheel) vs x86_64 "
        f"(onnxruntime {native['onnxruntime']})",
        "",
        f"{same} of {len(rows)} outputs equal token for token. Timings under emulation are not board speed.",
        "",
        "| bundle | clip | same tokens | x86_64 text | arm64 text |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['bundle']} | {r['clip']} | {'yes' if r['equal'] else 'NO'} | {r['x86']} | {r['arm64']} |" for r in rows
    ]
    (out / "check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
