"""Build a `blockdecoder` bundle: encoder, text_encoder and merger graphs plus manifest."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from edge_alm.export.blockdecoder_graphs import MergerGraph, TextEncoderGraph
from edge_alm.export.blockdecoder_model import BlockDecoder
from edge_alm.export.graph_export import export_onnx, with_vad
from edge_alm.export.quantize import quantize_graph
from edge_alm.export.whisper_export import common_sections
from edge_alm.export.whisper_graphs import WhisperEncoderGraph
from edge_alm.export.whisper_weights import whisper_tokenizer_json
from edge_alm.runtime.manifest import BlockDecoderConfig, write_manifest
from torch import nn


def export_blockdecoder_graphs(whisper: nn.Module, bd: BlockDecoder, out: Path, untie: bool) -> dict[str, Path]:
    cfg = whisper.config
    h, dh = cfg.decoder_attention_heads, cfg.d_model // cfg.decoder_attention_heads
    lt, lm = len(bd.text_layers), len(bd.merger_layers)
    enc = WhisperEncoderGraph(whisper)
    enc.dec_layers = nn.ModuleList(whisper.model.decoder.layers[i] for i in bd.merger_source_layers)
    paths = {n: out / f"{n}.onnx" for n in ("encoder", "text_encoder", "merger")}
    cross = {1: "batch", 3: "audio_positions"}
    export_onnx(
        enc,
        (torch.randn(1, cfg.num_mel_bins, 200),),
        paths["encoder"],
        ["input_features"],
        ["cross_k", "cross_v"],
        {"input_features": {0: "batch", 2: "frames"}, "cross_k": cross, "cross_v": cross},
    )
    past, present = {1: "batch", 3: "past"}, {1: "batch", 3: "past_plus_new"}
    new = {1: "batch", 3: "new"}
    z = torch.zeros(lt, 1, h, 2, dh)
    export_onnx(
        TextEncoderGraph(bd),
        (torch.tensor([[1, 2, 3]]), z, z),
        paths["text_encoder"],
        ["tokens", "self_k", "self_v"],
        ["present_k", "present_v", "text_k", "text_v"],
        {
            "tokens": {0: "batch", 1: "new"},
            "self_k": past,
            "self_v": past,
            "present_k": present,
            "present_v": present,
            "text_k": new,
            "text_v": new,
        },
    )
    zb = torch.zeros(lm, 1, h, 1, dh)
    ctx = torch.randn(lm, 1, h, 50, dh)
    ctx_axes = {1: "batch", 3: "context"}
    export_onnx(
        MergerGraph(bd, untie),
        (torch.tensor([[4, 5]]), torch.tensor(3), zb, zb, ctx, ctx),
        paths["merger"],
        ["tokens", "offset", "self_k", "self_v", "ctx_k", "ctx_v"],
        ["logits", "present_k", "present_v"],
        {
            "tokens": {0: "batch", 1: "new"},
            "self_k": past,
            "self_v": past,
            "ctx_k": ctx_axes,
            "ctx_v": ctx_axes,
            "logits": {0: "batch", 1: "new"},
            "present_k": present,
            "present_v": present,
        },
    )
    return paths


def build_blockdecoder_bundle(
    whisper: nn.Module,
    bd: BlockDecoder,
    whisper_dir: str | Path,
    out: str | Path,
    block_size: int = 4,
    quantize: str = "int8",
    vad: Path | None = None,
) -> Path:
    """Export `bd` (built on `whisper`, whose directory holds tokenizer and generation config);
    `vad`: a silero_vad.onnx to ship in the bundle."""
    out, whisper_dir = Path(out), Path(whisper_dir)
    out.mkdir(parents=True, exist_ok=True)
    whisper_tokenizer_json(whisper_dir / "tokenizer.json", out / "tokenizer.json")
    gen = json.loads((whisper_dir / "generation_config.json").read_text())
    bd.eval()
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_blockdecoder_graphs(whisper, bd, Path(tmp), untie=quantize != "fp32")
        for src in paths.values():
            quantize_graph(src, out / src.name, quantize)
    graphs = {n: {"file": f"{n}.onnx", "precision": quantize} for n in paths}
    write_manifest(
        out,
        {
            "kind": "blockdecoder",
            "source": str(whisper_dir),
            "graphs": with_vad(graphs, vad, out),
            **common_sections(whisper.config, gen, out, n_layers=len(bd.merger_layers)),
            "extra": asdict(
                BlockDecoderConfig(
                    block_size=block_size,
                    text_layers=len(bd.text_layers),
                    merger_layers=len(bd.merger_layers),
                    merger_source_layers=list(bd.merger_source_layers),
                )
            ),
        },
    )
    return out
