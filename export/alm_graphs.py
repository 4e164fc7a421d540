"""Export-only torch modules that define the graphs of an `alm` bundle.

    audio_encoder: input_features (B, n_mels, T)  ->  hidden (B, T/2, C)
    adapter:       hidden (B, S, C)  ->  audio_embeds (B, S/p, D)      (pooling by p inside)
    embed:         input_ids (B, N)  ->  embeds (B, N, D)
    lm:            inputs_embeds (B, N, D), past_k, past_v (L, B, KVH, P, Dh)
                   ->  logits (B, 1, V) of the last position, present_k, present_v (L, B, KVH, P+N, Dh)

The LM is any Hugging Face Llama/Qwen2-style causal LM (RMSNorm, rotary positions,
grouped-query attention, gated MLP); its modules are reused, the attention is spelled out so
the cache layout is ours. Positions are P, P+1, ...: the cache length is the offset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from edge_alm.export.whisper_graphs import attend, merge_heads, split_heads
from torch import nn


def whisper_encoder_hidden(enc: nn.Module, input_features: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The Whisper-style encoder stack without its final norm: (B, n_mels, T) -> (B, T/2, C).
    Runs on any even number of frames up to the position table (it slices the table)."""
    x = F.gelu(enc.conv1(input_features))
    x = F.gelu(enc.conv2(x)).transpose(1, 2)  # (B, S, C), S = T/2
    x = x + enc.embed_positions.weight[: x.shape[1]]
    for layer in enc.layers:
        a = layer.self_attn
        h = layer.self_attn_layer_norm(x)
        q = split_heads(a.q_proj(h) * a.scaling, n_heads)
        k, v = split_heads(a.k_proj(h), n_heads), split_heads(a.v_proj(h), n_heads)
        x = x + a.out_proj(merge_heads(attend(q, k, v, None)))
        h = layer.final_layer_norm(x)
        x = x + layer.fc2(F.gelu(layer.fc1(h)))
    return x


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


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class CausalLMGraph(nn.Module):
    """One pass of a Llama/Qwen2-style LM over N new embeddings with a grouped-query KV cache.

    Only the last position's logits leave the graph: prefill needs no others, and the
    output projection over every prompt position would dominate prefill."""

    def __init__(self, hf_lm: nn.Module) -> None:
        super().__init__()
        cfg = hf_lm.config
        self.model = hf_lm.model
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        # an untied copy of the output projection is its own MatMul weight, which the
        # quantizers can compress (they skip Transpose(embedding))
        self.proj = nn.Parameter(hf_lm.lm_head.weight.detach().t().contiguous())

    def forward(
        self,
        inputs_embeds: torch.Tensor,  # (B, N, D)
        past_k: torch.Tensor,  # (L, B, KVH, P, Dh)
        past_v: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, _ = inputs_embeds.shape
        past = past_k.shape[3]
        pos = (torch.arange(n) + past)[None].expand(b, n)  # (B, N)
        cos, sin = self.model.rotary_emb(inputs_embeds, pos)  # (B, N, Dh)
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, N, Dh)
        k_pos = torch.arange(past + n)
        mask = torch.where(k_pos[None, :] > pos[0][:, None], float("-inf"), 0.0)  # (N, P+N)
        groups = self.n_heads // self.n_kv
        x = inputs_embeds
        new_k, new_v = [], []
        for i, layer in enumerate(self.model.layers):
            a = layer.self_attn
            h = layer.input_layernorm(x)
            q = a.q_proj(h).view(b, n, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, N, Dh)
            k = a.k_proj(h).view(b, n, self.n_kv, self.head_dim).transpose(1, 2)  # (B, KVH, N, Dh)
            v = a.v_proj(h).view(b, n, self.n_kv, self.head_dim).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = torch.cat([past_k[i], k], dim=2)  # (B, KVH, P+N, Dh)
            v = torch.cat([past_v[i], v], dim=2)
            new_k.append(k)
            new_v.append(v)
            # grouped-query attention: each KV head serves `groups` query heads
            qg = q.reshape(b, self.n_kv, groups * n, self.head_dim) * self.head_dim**-0.5  # (B, KVH, G*N, Dh)
            w = qg @ k.transpose(-1, -2)  # (B, KVH, G*N, P+N)
            w = w.view(b, self.n_kv, groups, n, past + n) + mask
            w = torch.softmax(w.float(), dim=-1).view(b, self.n_kv, groups * n, past + n)
            o = (w @ v).view(b, self.n_heads, n, self.head_dim)  # (B, H, N, Dh)
            x = x + a.o_proj(o.transpose(1, 2).reshape(b, n, self.n_heads * self.head_dim))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        x = self.model.norm(x[:, -1:])  # (B, 1, D)
        return x @ self.proj, torch.stack(new_k), torch.stack(new_v)  # (B, 1, V)
