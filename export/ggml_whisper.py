"""A Hugging Face Whisper directory -> whisper.cpp's ggml model file (for the peer benchmark).

The layout whisper.cpp reads (facts from its models/convert-h5-to-ggml.py): int32 magic
"ggml", eleven int32 hyper-parameters and the float type, the mel filterbank (n_mels x
n_fft/2+1, float32), the byte-level BPE vocabulary in id order without <|endoftext|> (the
special tokens follow from n_vocab), then every tensor as (n_dims, name length, type), its dims
innermost first, its name and its data: float16 (or q8_0 blocks) for matrices, float16 for the
convolutions, float32 for vectors, the convolution biases (reshaped to (n, 1)) and the
positional embeddings (tensor types as src/whisper.cpp creates them).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

# Hugging Face sub-module names -> openai/whisper's, which whisper.cpp uses
LAYER_NAMES = {
    "self_attn.q_proj": "attn.query",
    "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln",
    "encoder_attn.q_proj": "cross_attn.query",
    "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.v_proj": "cross_attn.value",
    "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}
OTHER_NAMES = {
    "encoder.layer_norm": "encoder.ln_post",
    "decoder.layer_norm": "decoder.ln",
    "encoder.embed_positions.weight": "encoder.positional_embedding",
    "decoder.embed_positions.weight": "decoder.positional_embedding",
    "decoder.embed_tokens.weight": "decoder.token_embedding.weight",
}
F32_NAMES = {"encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding", "decoder.positional_embedding"}


def ggml_name(hf: str) -> str | None:
    """`model.encoder.layers.0.self_attn.k_proj.weight` -> `encoder.blocks.0.attn.key.weight`."""
    if not hf.startswith("model."):
        return None  # proj_out is tied to the token embedding
    parts = hf[len("model.") :].split(".")
    if parts[1] == "layers":
        return ".".join([parts[0], "blocks", parts[2], LAYER_NAMES[".".join(parts[3:-1])], parts[-1]])
    name = ".".join(parts)
    for old, new in OTHER_NAMES.items():
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def byte_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable-character table, reversed: BPE token text -> raw bytes."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    chars = {b: chr(b) for b in keep} | {b: chr(256 + i) for i, b in enumerate(extra)}
    return {c: b for b, c in chars.items()}


QK8_0 = 32  # values per q8_0 block: one float16 scale, then 32 int8
FTYPES = {"f16": (1, 1), "q8_0": (7 + 2 * 1000, 8)}  # header ftype (+ quantization version 2 x 1000), matrix type


def q8_0(x: np.ndarray) -> np.ndarray:
    """ggml's q8_0 along the innermost axis: per 32 values d = max|x| / 127 and round(x / d)."""
    blocks = x.astype(np.float32).reshape(-1, QK8_0)
    d = np.abs(blocks).max(axis=1) / 127
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    out = np.empty(len(blocks), dtype=[("d", "<f2"), ("qs", "i1", QK8_0)])
    out["d"], out["qs"] = d, np.round(blocks * inv[:, None])
    return out


def write_ggml(hf_dir: Path, out: Path, ftype: str = "f16") -> Path:
    """Write `out` from a Hugging Face Whisper directory; ftype: f16 | q8_0 (the matrices;
    convolutions stay float16, vectors and positional embeddings float32)."""
    from edge_alm.runtime.features import mel_filters
    from safetensors.numpy import load_file

    hf_dir = Path(hf_dir)
    cfg = json.loads((hf_dir / "config.json").read_text())
    vocab = json.loads((hf_dir / "tokenizer.json").read_text())["model"]["vocab"]
    vocab.pop("<|endoftext|>", None)
    weights = load_file(str(hf_dir / "model.safetensors"))
    n_mels = cfg["num_mel_bins"]
    filters = mel_filters(16000, 400, n_mels).T.astype(np.float32)  # (n_mels, 201), librosa's Slaney filters
    decode = byte_decoder()
    with open(out, "wb") as f:
        hparams = [
            0x67676D6C,
            cfg["vocab_size"],
            cfg["max_source_positions"],
            cfg["d_model"],
            cfg["encoder_attention_heads"],
            cfg["encoder_layers"],
            cfg.get("max_length") or cfg["max_target_positions"],
            cfg["d_model"],
            cfg["decoder_attention_heads"],
            cfg["decoder_layers"],
            n_mels,
            FTYPES[ftype][0],
        ]
        f.write(struct.pack(f"{len(hparams)}i", *hparams))
        f.write(struct.pack("ii", *filters.shape))
        f.write(filters.tobytes())
        f.write(struct.pack("i", len(vocab)))
        for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
            raw = bytes(decode[c] for c in token)
            f.write(struct.pack("i", len(raw)) + raw)
        for hf_name, tensor in weights.items():
            name = ggml_name(hf_name)
            if name is None:
                continue
            data = tensor.squeeze()
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                data = data.reshape(-1, 1)
            f32 = data.ndim < 2 or name in F32_NAMES
            kind = 0 if f32 else FTYPES[ftype][1] if data.ndim == 2 else 1
            shape = data.shape
            data = q8_0(data) if kind == 8 else data.astype(np.float32 if f32 else np.float16)
            key = name.encode()
            f.write(struct.pack("iii", len(shape), len(key), kind))
            f.write(struct.pack(f"{len(shape)}i", *reversed(shape)))
            f.write(key)
            f.write(np.ascontiguousarray(data).tobytes())
    return out
