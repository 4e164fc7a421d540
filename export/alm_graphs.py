"""Export-only torch modules that define the graphs of an `alm` bundle.

    audio_encoder: input_features (B, n_mels, T)  ->  hidden (B, T/2, C)
    adapter:       hidden (B, S, C)  ->  audio_embeds (B, S/p, D)      (pooling by p inside)
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
    Linear(C, D) -> GELU -> Linear(D, D) into the LM's embedding space."""

    def __init__(self, d_audio: int, d_model: int, pool: int) -> None:
        super().__init__()
        self.pool = pool
        self.fc1 = nn.Linear(d_audio, d_model)
        self.fc2 = nn.Linear(d_model, d_model)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool1d(hidden.transpose(1, 2), self.pool, self.pool).transpose(1, 2)  # (B, S/p, C)
        return self.fc2(F.gelu(self.fc1(x)))  # (B, S/p, D)


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
