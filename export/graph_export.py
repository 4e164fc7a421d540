"""Export-side helpers every bundle kind needs: the ONNX export call, the quantized-logits
check, shipping the VAD graph, and writing the manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

OPSET = 17
# Quantized graphs are checked by logit cosine against fp32 (whisper-base: int8 0.999,
# int4 decoder 0.997); a broken quantizer gives far less.
MIN_QUANT_COSINE = 0.9


def export_onnx(
    module: torch.nn.Module,
    args: tuple,
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic_axes: dict,
    opset: int = OPSET,
) -> None:
    with torch.no_grad():
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            custom_opsets={"com.microsoft": 1},  # onnxruntime's fused attention (whisper_graphs.py)
            dynamo=False,
        )


def logit_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def require_cosine(cos: float, min_cosine: float, what: Path) -> float:
    """Raise when quantized logits drift from fp32 below `min_cosine`."""
    if not np.isfinite(cos) or cos < min_cosine:
        raise RuntimeError(f"quantized graphs drift from fp32: logit cosine {cos:.4f} < {min_cosine} ({what})")
    return cos


def with_vad(graphs: dict, vad: Path | None, out: Path) -> dict:
    """Copy `vad` (a silero_vad.onnx) into the bundle and list it among the graphs."""
    if vad is not None:
        shutil.copy(vad, out / "vad.onnx")
        graphs = {**graphs, "vad": {"file": "vad.onnx", "precision": "fp32"}}
    return graphs
