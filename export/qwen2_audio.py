"""Qwen2-Audio (transformers `Qwen2AudioForConditionalGeneration`) as alm bundle parts.

Its audio tower is a Whisper-style encoder whose layers feed an average pooling by 2 and
then the final norm; the multi-modal projector is one linear layer; the LM is Qwen2. The
exported encoder stops after the layers; the adapter graph does pool -> norm -> projector.

One difference from transformers: it always pads features to the full 30 s window and masks
the padding in the encoder's attention; edge-alm encodes the clip's real length instead (far
less compute). The two agree exactly on full-length clips; on shorter ones only the
convolutions at the clip's end see different padding.
"""

from __future__ import annotations

from pathlib import Path

import torch
from edge_alm.export.alm_export import AlmParts
from edge_alm.export.alm_graphs import AudioEncoderGraph, Qwen2AudioAdapter

# The chat layout of Qwen2-Audio-Instruct: each clip between <|audio_bos|> and <|audio_eos|>
QWEN2_AUDIO_TEMPLATES = {
    "1": "<|im_start|>user\nAudio 1: <|audio_bos|>{audio1}<|audio_eos|>\n{question}<|im_end|>\n<|im_start|>assistant\n",
    "2": "<|im_start|>user\nAudio 1: <|audio_bos|>{audio1}<|audio_eos|>\nAudio 2: <|audio_bos|>{audio2}"
    "<|audio_eos|>\n{question}<|im_end|>\n<|im_start|>assistant\n",
}
QWEN2_AUDIO_CONTINUE = "<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def qwen2_audio_parts(source: Path, tokenizer_json: Path | None = None) -> AlmParts:
    """Load a local Qwen2-Audio checkpoint directory. tokenizer_json: the directory's own
    tokenizer.json unless given."""
    from transformers import Qwen2AudioForConditionalGeneration

    source = Path(source)
    model = Qwen2AudioForConditionalGeneration.from_pretrained(
        str(source), dtype=torch.float32, attn_implementation="eager"
    ).eval()
    tok = Path(tokenizer_json) if tokenizer_json else source / "tokenizer.json"
    if not tok.is_file():
        raise FileNotFoundError(f"{tok}: tokenizer.json not found in the Qwen2-Audio directory")
    acfg = model.config.audio_config
    eos = model.generation_config.eos_token_id if model.generation_config else None
    eos = model.config.text_config.eos_token_id if eos is None else eos
    stops = [int(t) for t in (eos if isinstance(eos, list) else [eos]) if t is not None]
    return AlmParts(
        encoder=AudioEncoderGraph(model.audio_tower, acfg.encoder_attention_heads, final_norm=False),
        adapter=Qwen2AudioAdapter(model.audio_tower, model.multi_modal_projector),
        lm=model.language_model,
        tokenizer_json=tok,
        n_mels=acfg.num_mel_bins,
        encoder_dim=acfg.d_model,
        max_frames=2 * acfg.max_source_positions,
        pool=2,
        pool_kind="mean",
        templates=dict(QWEN2_AUDIO_TEMPLATES),
        continue_template=QWEN2_AUDIO_CONTINUE,
        stop_tokens=stops,
        source=str(source),
        adapter_trained=True,
        min_seconds=0.0,
    )
