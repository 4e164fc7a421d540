"""The trained student's own weights, stored compactly as differences from Whisper.

A BlockDecoder starts as a copy of Whisper's decoder (see blockdecoder_model.py), so what
training adds is a difference per tensor. The file keeps only tensors that changed: 2-D
differences as int8 with one fp32 scale per row (differences are small, so int8 keeps them
to about 0.4 % of their own range), 1-D ones as fp16. Rebuilding needs the same Whisper
weights, checked by a fingerprint, so the file is useless (and refused) on another base.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from edge_alm.export.blockdecoder_model import BlockDecoder
from torch import nn

FORMAT = "edge-alm-blockdecoder-delta/1"


def base_fingerprint(whisper: nn.Module) -> str:
    """sha256 over the Whisper decoder's tensors the student is initialised from."""
    h = hashlib.sha256()
    for name, t in sorted(whisper.model.decoder.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def save_student(bd: BlockDecoder, whisper: nn.Module, path: str | Path) -> Path:
    """Write what `bd` does not share with a fresh BlockDecoder built from `whisper`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    init = BlockDecoder(whisper, len(bd.text_layers), len(bd.merger_layers)).state_dict()
    arrays: dict[str, np.ndarray] = {}
    for name, t in bd.state_dict().items():
        d = (t.detach() - init[name]).to(torch.float32).numpy()
        if not np.any(d):
            continue  # frozen or untouched: rebuilt from Whisper
        if d.ndim == 2:
            scale = np.maximum(np.abs(d).max(axis=1, keepdims=True), 1e-12) / 127.0  # (rows, 1)
            arrays[f"{name}::q"] = np.round(d / scale).astype(np.int8)
            arrays[f"{name}::scale"] = scale.astype(np.float32)
        else:
            arrays[f"{name}::f16"] = d.astype(np.float16)
    meta = {
        "format": FORMAT,
        "text_layers": len(bd.text_layers),
        "merger_layers": len(bd.merger_layers),
        "base_fingerprint": base_fingerprint(whisper),
    }
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def load_student(whisper: nn.Module, path: str | Path) -> BlockDecoder:
    """Rebuild the trained student from `whisper` plus the differences in `path`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"student weights not found: {path}")
    z = np.load(path)
    meta = json.loads(z["__meta__"].tobytes())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, this version reads {FORMAT!r}")
    if meta["base_fingerprint"] != base_fingerprint(whisper):
        raise ValueError(f"{path}: made for other Whisper weights than the ones given (fingerprint differs)")
    bd = BlockDecoder(whisper, meta["text_layers"], meta["merger_layers"])
    state = bd.state_dict()
    for key in z.files:
        name, _, kind = key.partition("::")
        if kind == "q":
            d = z[key].astype(np.float32) * z[f"{name}::scale"]
        elif kind == "f16":
            d = z[key].astype(np.float32)
        else:
            continue
        if name not in state or tuple(state[name].shape) != d.shape:
            split = f"{meta['text_layers']}+{meta['merger_layers']}"
            raise ValueError(f"{path}: tensor {name} does not fit a {split} model")
        state[name] = state[name] + torch.from_numpy(d).to(state[name].dtype)
    bd.load_state_dict(state)
    return bd.eval()
