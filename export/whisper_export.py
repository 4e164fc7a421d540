"""Build a seq2seq (Whisper) bundle: ONNX export, parity check, quantization, manifest."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from edge_alm.export.graph_export import MIN_QUANT_COSINE, export_onnx, logit_cosine, require_cosine, with_vad
from edge_alm.export.quantize import quantize_graph
from edge_alm.export.whisper_fused import build_whisper_decoder_onnx
from edge_alm.export.whisper_graphs import WhisperEncoderGraph, export_stacked_decoder
from edge_alm.runtime.manifest import DecoderShape, FeatureParams, SpecialTokens, write_manifest
from edge_alm.runtime.seq2seq import cross_feeds, cross_input_names, split_cross
from tqdm import tqdm


def load_hf_whisper(source: str | Path) -> torch.nn.Module:
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(str(source), attn_implementation="eager")
    return model.float().eval()


DECODER_GRAPHS = ("stacked", "fused")


def export_fp32_graphs(
    model: torch.nn.Module, out: Path, untie_output: bool, decoder_graph: str = "stacked"
) -> tuple[Path, Path]:
    """decoder_graph: "stacked" (torch.onnx export; one (L, B, H, T, Dh) cache in and out) or
    "fused" (onnxruntime's fused ops, per-layer buffers appended in place; whisper_fused.py)."""
    if decoder_graph not in DECODER_GRAPHS:
        raise ValueError(f"decoder_graph must be one of {DECODER_GRAPHS}, got {decoder_graph!r}")
    cfg = model.config
    enc_path, dec_path = out / "encoder.onnx", out / "decoder.onnx"
    feats = torch.randn(1, cfg.num_mel_bins, 200)
    cross_names = cross_input_names(cfg.decoder_layers)
    # distinct axis names: onnxruntime assumes equal names mean equal sizes
    cross_axes = {name: {0: "batch", 2: "audio_positions"} for name in cross_names}
    export_onnx(
        WhisperEncoderGraph(model, per_layer=True),
        (feats,),
        enc_path,
        ["input_features"],
        cross_names,
        {"input_features": {0: "batch", 2: "frames"}, **cross_axes},
    )
    if decoder_graph == "fused":
        build_whisper_decoder_onnx(model, dec_path, untie_output)
    else:
        export_stacked_decoder(model, dec_path, untie_output)
    return enc_path, dec_path


def decoder_passes(dec_s, chunks: list[np.ndarray], cross: dict[str, np.ndarray], logits_from: int = 0) -> np.ndarray:
    """Feed the token chunks (B, n_i) one decoder call after another through the decoder's cache
    (past in, present out), either interface; logits_from applies to the first call.
    -> (B, sum n_i - logits_from, V)."""
    inputs = [i.name for i in dec_s.get_inputs()]
    n_layers = sum(name.startswith("cross_k.") for name in inputs)
    b, h, _, dh = cross["cross_k.0"].shape
    fused = "past_k.0" in inputs
    if fused:
        past = {f"past_{kv}.{i}": np.zeros((b, h, 0, dh), np.float32) for i in range(n_layers) for kv in "kv"}
    else:
        past = {f"self_{kv}": np.zeros((n_layers, b, h, 0, dh), np.float32) for kv in "kv"}
    names = [o.name for o in dec_s.get_outputs()]
    out, total = [], 0
    for j, toks in enumerate(chunks):
        total += toks.shape[1]
        feeds = {"tokens": toks.astype(np.int64), "logits_from": np.array([logits_from if j == 0 else 0], np.int64)}
        if fused:
            feeds.update(seqlens_k=np.full(b, total - 1, np.int32), total_sequence_length=np.array(total, np.int32))
        res = dict(zip(names, dec_s.run(None, {**feeds, **past, **cross})))
        if fused:
            past = {f"past_{k[len('present_') :]}": v for k, v in res.items() if k.startswith("present_")}
        else:
            past = {"self_k": res["present_k"], "self_v": res["present_v"]}
        out.append(res["logits"])
    return np.concatenate(out, axis=1)


def check_parity(model: torch.nn.Module, enc_path: Path, dec_path: Path, tol: float, seed: int = 0) -> float:
    """Run ONNX and PyTorch on random audio features; raise past `tol`. Returns max abs error."""
    import onnxruntime as ort

    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    # HF Whisper insists on the full window, so parity runs at 2 * max_source_positions frames
    feats = torch.randn(1, cfg.num_mel_bins, 2 * cfg.max_source_positions, generator=g) * 0.5
    tokens = torch.tensor([[cfg.decoder_start_token_id, 5, 7, 9]])
    with torch.no_grad():
        enc = model.model.encoder(feats).last_hidden_state
        ref = model(encoder_outputs=(enc,), decoder_input_ids=tokens).logits.numpy()
    enc_s = ort.InferenceSession(str(enc_path), providers=["CPUExecutionProvider"])
    dec_s = ort.InferenceSession(str(dec_path), providers=["CPUExecutionProvider"])
    cross = cross_feeds(*split_cross(enc_s.run(None, {"input_features": feats.numpy()}), _names(enc_s)))
    # two passes (3 tokens, then 1 with the cache) exercise the cache path too
    got = decoder_passes(dec_s, [tokens[:, :3].numpy(), tokens[:, 3:].numpy()], cross)
    # logits_from: the same rows, only the later ones
    tail = decoder_passes(dec_s, [tokens[:, :3].numpy()], cross, logits_from=1)
    if tail.shape[1] != 2 or not np.allclose(tail, got[:, 1:3], atol=1e-5):
        raise RuntimeError(f"decoder logits_from returns other rows than the full pass ({dec_path})")
    err = float(np.abs(got - ref).max())
    if not np.isfinite(err) or err > tol:
        raise RuntimeError(f"ONNX/PyTorch parity failed: max |logit diff| {err:.2e} > {tol:.0e} ({dec_path})")
    return err


def _names(session) -> list[str]:
    return [o.name for o in session.get_outputs()]


def _logits(enc: Path, dec: Path, feats: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    enc_s = ort.InferenceSession(str(enc), providers=["CPUExecutionProvider"])
    cross = cross_feeds(*split_cross(enc_s.run(None, {"input_features": feats}), _names(enc_s)))
    dec_s = ort.InferenceSession(str(dec), providers=["CPUExecutionProvider"])
    return decoder_passes(dec_s, [tokens], cross).reshape(-1)


def check_quantized(fp32: tuple[Path, Path], quant: tuple[Path, Path], sot: int, min_cosine: float) -> float:
    """Cosine similarity of quantized and fp32 logits on random audio; raise below `min_cosine`."""
    feats = (np.random.default_rng(1).standard_normal((1, 80, 1000)) * 0.5).astype(np.float32)
    tokens = np.array([[sot, sot + 1, sot + 2]], np.int64)
    a, b = _logits(*fp32, feats, tokens), _logits(*quant, feats, tokens)
    return require_cosine(logit_cosine(a, b), min_cosine, quant[1])


def _tokens_section(gen: dict, tokenizer_path: Path) -> dict:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    no_speech = tok.token_to_id("<|nospeech|>")
    if no_speech is None:
        no_speech = tok.token_to_id("<|nocaptions|>")
    langs = {k.strip("<|>"): int(v) for k, v in (gen.get("lang_to_id") or {}).items()}
    tokens = SpecialTokens(
        sot=int(gen["decoder_start_token_id"]),
        eot=int(gen["eos_token_id"] if not isinstance(gen["eos_token_id"], list) else gen["eos_token_id"][0]),
        transcribe=int(gen.get("task_to_id", {}).get("transcribe", tok.token_to_id("<|transcribe|>"))),
        translate=int(gen.get("task_to_id", {}).get("translate", tok.token_to_id("<|translate|>"))),
        no_timestamps=int(gen["no_timestamps_token_id"]),
        no_speech=no_speech,
        timestamp_begin=int(gen["no_timestamps_token_id"]) + 1,
        languages=langs,
        suppress=tuple(int(t) for t in gen.get("suppress_tokens") or []),
        begin_suppress=tuple(int(t) for t in gen.get("begin_suppress_tokens") or []),
    )
    return asdict(tokens)  # the manifest is written from the dataclass the runtime reads


def common_sections(cfg, gen: dict, out: Path, n_layers: int) -> dict:
    """Manifest sections every Whisper-derived bundle shares: features, tokenizer, tokens, decoder.

    n_layers: layers of the graph that holds the cross-attention (L of the cross K/V).
    """
    decoder = DecoderShape(
        n_layers=n_layers,
        n_heads=cfg.decoder_attention_heads,
        head_dim=cfg.d_model // cfg.decoder_attention_heads,
        vocab_size=cfg.vocab_size,
        max_length=cfg.max_target_positions,
    )
    return {
        "features": asdict(FeatureParams(n_mels=cfg.num_mel_bins)),
        "tokenizer": "tokenizer.json",
        "tokens": _tokens_section(gen, out / "tokenizer.json"),
        "decoder": asdict(decoder),
    }


# The encoder's second MLP matmuls read GELU outputs with outliers that one int8 scale per tensor
# cannot hold: kept fp32, dev-set WER 13.6 -> 12.1 % (fp32 encoder: 12.0 %; quiet / noisy / long
# clips gain most) for about 1 s more encoder time over 591 s of audio
ENCODER_KEEP_FP32 = ("fc2",)


def build_whisper_bundle(
    source: str | Path,
    out: str | Path,
    quantize: str = "int8",
    decoder_quantize: str | None = None,
    check: bool = True,
    vad: Path | None = None,
    decoder_graph: str = "stacked",
) -> Path:
    """Export `source` (HF Whisper dir or id) into the bundle directory `out`.

    quantize: fp32 | int8 for both graphs; decoder_quantize (int8 | int4) overrides the decoder.
    vad: a silero_vad.onnx to ship in the bundle (the runtime falls back to an energy gate).
    decoder_graph: stacked | fused (see export_fp32_graphs).
    """
    out = Path(out)
    dec_q = decoder_quantize or quantize
    steps = tqdm(total=5, desc="export", unit="step", bar_format="{desc}: {n}/{total} {postfix} [{elapsed}]")
    steps.set_postfix_str("loading weights")
    model = load_hf_whisper(source)
    src = Path(str(source))
    gen_path = src / "generation_config.json"
    if gen_path.is_file():
        gen = json.loads(gen_path.read_text())
    else:
        gen = model.generation_config.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    tok_src = src / "tokenizer.json"
    if not tok_src.is_file():
        from transformers import WhisperTokenizerFast

        WhisperTokenizerFast.from_pretrained(str(source)).save_pretrained(str(out / "_tok"))
        tok_src = out / "_tok" / "tokenizer.json"
    from edge_alm.export.whisper_weights import whisper_tokenizer_json

    whisper_tokenizer_json(tok_src, out / "tokenizer.json")
    shutil.rmtree(out / "_tok", ignore_errors=True)
    steps.update()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        steps.set_postfix_str("exporting ONNX")
        enc32, dec32 = export_fp32_graphs(model, tmp, untie_output=dec_q != "fp32", decoder_graph=decoder_graph)
        steps.update()
        if check:
            steps.set_postfix_str("checking ONNX against PyTorch")
            check_parity(model, enc32, dec32, tol=1e-3)
        steps.update()
        steps.set_postfix_str(f"quantizing (encoder {quantize}, decoder {dec_q})")
        quantize_graph(enc32, out / "encoder.onnx", quantize, keep_fp32=ENCODER_KEEP_FP32)
        # the int8 decoder's token table (Gather; the output projection is its own int8 MatMul) in
        # 4-bit blocks: 10 MB less on disk and in memory, dev-set WER 11.7 -> 11.3 % greedy and
        # 10.5 -> 10.3 % beam 5 (15 of 57 texts changed, within the noise of this set)
        quantize_graph(dec32, out / "decoder.onnx", dec_q, embedding_bits=4)
        if check and (quantize, dec_q) != ("fp32", "fp32"):
            cos = check_quantized(
                (enc32, dec32),
                (out / "encoder.onnx", out / "decoder.onnx"),
                model.config.decoder_start_token_id,
                MIN_QUANT_COSINE,
            )
            steps.set_postfix_str(f"quantized logits vs fp32: cosine {cos:.4f}")
        steps.update()
    graphs = {
        "encoder": {"file": "encoder.onnx", "precision": quantize},
        "decoder": {"file": "decoder.onnx", "precision": dec_q},
    }
    manifest = {
        "kind": "seq2seq",
        "source": str(source),
        "graphs": with_vad(graphs, vad, out),
        **common_sections(model.config, gen, out, n_layers=model.config.decoder_layers),
        "extra": {
            "alignment_heads": gen.get("alignment_heads"),
            "kv_layout": {
                "self": "per layer B,H,T,Dh (in place)" if decoder_graph == "fused" else "L,B,H,T,Dh",
                "cross": "per layer B,H,S,Dh",
            },
        },
    }
    write_manifest(out, manifest)
    steps.set_postfix_str(f"done: {out}")
    steps.update()
    steps.close()
    return out
