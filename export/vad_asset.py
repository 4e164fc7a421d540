"""Silero VAD (MIT) as an ONNX file, taken from the PyPI `silero-vad` wheel.

The wheel is fetched with pip (`--no-deps`: its Python code needs torch, the ONNX file
does not) and only `silero_vad/data/silero_vad.onnx` is kept.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

SILERO_VERSION = "6.2.3"
MEMBER = "silero_vad/data/silero_vad.onnx"


def silero_vad_onnx(cache_dir: Path) -> Path:
    """Return the cached silero_vad.onnx, downloading the wheel with pip on first use."""
    cache_dir = Path(cache_dir)
    out = cache_dir / f"silero_vad-{SILERO_VERSION}.onnx"
    if out.is_file():
        return out
    wheels = cache_dir / "wheels"
    wheel = next(wheels.glob(f"silero_vad-{SILERO_VERSION}-*.whl"), None) if wheels.is_dir() else None
    if wheel is None:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"silero-vad=={SILERO_VERSION}",
            "--no-deps",
            "-q",
            "-d",
            str(wheels),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"pip download silero-vad=={SILERO_VERSION} failed: {proc.stderr.strip()[-300:]}")
        wheel = next(wheels.glob(f"silero_vad-{SILERO_VERSION}-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        out.write_bytes(z.read(MEMBER))
    return out
