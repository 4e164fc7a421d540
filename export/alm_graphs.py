"""Export-only torch modules that define the graphs of an `alm` bundle.

    audio_encoder: input_features (B, n_mels, T)  ->  hidden (B, T/2, C)
    adapter:       hidden (B, S, C) [, frame_stats (B, S, 3)]  ->  audio_embeds (B, S/p, D)
                   (pooling by p inside; frame_stats: level and pitch, runtime/frame_stats.py)
    embed:         input_ids (B, N)  ->  embeds (B, N, D)

The LM graph is written node by node with onnxruntime's fused ops (export/lm_onnx.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from edge_alm.export.whisper_graphs import whisper_encoder_hidden
from torch import nn


class AudioEncoderGraph(nn.Module):
    """A Whisper-style encoder; `final_norm=False` leaves the norm to the adapter (Qwen2-Audio
    pools before its final norm)."""

    def __init__(self, encoder: nn.Module, n_heads: int, final_norm: bool = True) -> None:
        super().__init__()
        self.enc, self.n_heads, self.final_norm = encoder, n_heads, final_norm

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        x = whisper_encoder_hidden(self.enc, input_features, self.n_heads)
        return self.enc.layer_norm(x) if self.final_norm else x


class PooledMLPAdapter(nn.Module):
    """edge-alm's adapter: average pooling by p (audio-token compression), then
    Linear(C [+ n_stats], D) -> GELU -> Linear(D, D) into the LM's embedding space. With
    n_stats > 0 each encoder frame comes with that many numbers (level, voicing, pitch) that
    the encoder's frames keep too little of."""

    def __init__(self, d_audio: int, d_model: int, pool: int, n_stats: int = 0) -> None:
        super().__init__()
        self.pool, self.n_stats = pool, n_stats
        self.fc1 = nn.Linear(d_audio + n_stats, d_model)
        self.fc2 = nn.Linear(d_model, d_model)

    def forward(self, hidden: torch.Tensor, frame_stats: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_stats:
            hidden = torch.cat([hidden, frame_stats], dim=-1)  # (B, S, C + n_stats)
        x = F.avg_pool1d(hidden.transpose(1, 2), self.pool, self.pool).transpose(1, 2)  # (B, S/p, C + n_stats)
        return self.fc2(F.gelu(self.fc1(x)))  # (B, S/p, D)


def adapter_inputs(n_stats: int, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The adapter's inputs for encoder frames alone (export and checks): the frames, and for an
    adapter that reads n_stats frame statistics, fixed pseudo-random ones (the same every call)."""
    if not n_stats:
        return (hidden,)
    g = torch.Generator().manual_seed(0)
    return hidden, torch.rand(hidden.shape[0], hidden.shape[1], n_stats, generator=g) * 2 - 1


class Qwen2AudioAdapter(nn.Module):
    """Qwen2-Audio's path after the encoder layers: average pooling by 2, the encoder's final
    norm, then the linear multi-modal projector."""

    def __init__(self, encoder: nn.Module, projector: nn.Module) -> None:
        super().__init__()
        self.pooler, self.norm, self.proj = encoder.avg_pooler, encoder.layer_norm, projector

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.pooler(hidden.transpose(1, 2)).transpose(1, 2)  # (B, S/2, C)
        return self.proj(self.norm(x))


class EmbedGraph(nn.Module):
    def __init__(self, embed_tokens: nn.Embedding) -> None:
        super().__init__()
        self.embed = embed_tokens

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embed(input_ids)  # (B, N, D)
