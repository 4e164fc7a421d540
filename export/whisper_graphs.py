"""Export-only torch modules that define the edge-alm Whisper graphs.

They reuse the parameters of a Hugging Face `WhisperForConditionalGeneration` but spell the
attention out, so the ONNX graphs have exactly the interface the runtime expects:

    encoder:  input_features (B, n_mels, T)  ->  cross_k.i, cross_v.i (B, H, T/2, Dh) for each decoder layer i
    decoder:  tokens (B, N), self_k, self_v (L, B, H, P, Dh), logits_from (1,), cross_k.i, cross_v.i (B, H, S, Dh)
              for each layer i
              ->  logits (B, N - logits_from, V), present_k, present_v (L, B, H, P+N, Dh)
              (the interface of older bundles; new ones have the fused decoder of whisper_fused.py)

The encoder runs on any even number of frames up to the model's 30 s window (it slices
the position table), and the decoder's position offset is the cache length P. The decoder
projects to the vocabulary only from position `logits_from` on: a prompt with 200 tokens of
previous text would otherwise make (N, 51865) logits (40 MB, and as much again in int32) that
nobody reads.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, t, c = x.shape
    return x.view(b, t, n_heads, c // n_heads).transpose(1, 2)  # (B, H, T, Dh)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)  # (B, T, C)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    # q is pre-scaled by Dh^-0.5, as in Hugging Face Whisper
    w = q @ k.transpose(-1, -2)  # (B, H, Tq, Tk)
    if mask is not None:
        w = w + mask
    return torch.softmax(w.float(), dim=-1).to(q.dtype) @ v  # (B, H, Tq, Dh)


class FusedSelfAttention(torch.autograd.Function):
    """Unmasked multi-head attention over (B, S, C) projections (q pre-scaled), exported as one
    onnxruntime MultiHeadAttention node. Its CPU kernel runs flash attention: at a 30 s window
    (S = 1500, whisper-base) 3.6x faster than MatMul-Softmax-MatMul and without the
    (B, H, S, S) score tensors (72 MB each)."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_heads: int) -> torch.Tensor:
        return merge_heads(attend(split_heads(q, n_heads), split_heads(k, n_heads), split_heads(v, n_heads)))

    @staticmethod
    def symbolic(g, q, k, v, n_heads: int):
        return g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=n_heads, scale_f=1.0)


def whisper_encoder_hidden(enc: nn.Module, input_features: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The Whisper-style encoder stack without its final norm: (B, n_mels, T) -> (B, T/2, C).
    Runs on any even number of frames up to the position table (it slices the table)."""
    x = F.gelu(enc.conv1(input_features))
    x = F.gelu(enc.conv2(x)).transpose(1, 2)  # (B, S, C), S = T/2
    x = x + enc.embed_positions.weight[: x.shape[1]]
    for layer in enc.layers:
        a = layer.self_attn
        h = layer.self_attn_layer_norm(x)
        att = FusedSelfAttention.apply(a.q_proj(h) * a.scaling, a.k_proj(h), a.v_proj(h), n_heads)  # (B, S, C)
        x = x + a.out_proj(att)
        h = layer.final_layer_norm(x)
        x = x + layer.fc2(F.gelu(layer.fc1(h)))
    return x


class WhisperEncoderGraph(nn.Module):
    """Audio encoder plus every decoder layer's cross-attention K/V projections.

    per_layer: one output per layer and K/V (cross_k.i, cross_v.i, each (B, H, S, Dh)), as the
    decoder reads them; else two stacked outputs (L, B, H, S, Dh), as the BlockDecoder's encoder
    keeps. Stacking kept the per-layer tensors and their stacked copy alive together: per-layer
    outputs lowered whisper-base's encoder peak on a 16 s clip from 57 to 49 MB above its resting
    level (one measurement each)."""

    def __init__(self, hf_model: nn.Module, per_layer: bool = False) -> None:
        super().__init__()
        self.enc = hf_model.model.encoder
        self.dec_layers = hf_model.model.decoder.layers
        self.n_heads = hf_model.config.encoder_attention_heads
        self.n_dec_heads = hf_model.config.decoder_attention_heads
        self.per_layer = per_layer

    def forward(self, input_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.enc.layer_norm(whisper_encoder_hidden(self.enc, input_features, self.n_heads))  # (B, S, C)
        ks = [split_heads(layer.encoder_attn.k_proj(x), self.n_dec_heads) for layer in self.dec_layers]
        vs = [split_heads(layer.encoder_attn.v_proj(x), self.n_dec_heads) for layer in self.dec_layers]
        if self.per_layer:
            return (*ks, *vs)  # 2L tensors (B, H, S, Dh)
        return torch.stack(ks), torch.stack(vs)  # (L, B, H, S, Dh) each


class WhisperDecoderGraph(nn.Module):
    """One decoder pass over N new tokens with a self-attention KV cache of length P, the stacked
    interface above. Bundles are now exported with the fused decoder (whisper_fused.py); this
    one stays so that tests can build a decoder as older bundles have it (export_stacked_decoder)
    and check that the runtime still runs them."""

    def __init__(self, hf_model: nn.Module, untie_output: bool = False) -> None:
        super().__init__()
        self.dec = hf_model.model.decoder
        self.n_heads = hf_model.config.decoder_attention_heads
        emb = self.dec.embed_tokens.weight
        # An untied copy of the output projection is its own MatMul initializer, which
        # the weight quantizers can then compress (they skip Transpose(embedding)).
        self.proj = nn.Parameter(emb.detach().t().contiguous()) if untie_output else None

    def forward(
        self,
        tokens: torch.Tensor,  # (B, N) int64
        self_k: torch.Tensor,  # (L, B, H, P, Dh)
        self_v: torch.Tensor,
        logits_from: torch.Tensor,  # (1,) int64: logits only for positions >= this (the prompt's rest is context)
        *cross: torch.Tensor,  # L cross K, then L cross V, each (B, H, S, Dh)
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # One input per layer: slicing a stacked (L, ...) input copies it every step (a Split that
        # took 27 % of a step at S = 1500), while per-layer inputs are views of the encoder's output.
        d = self.dec
        cross_k, cross_v = cross[: len(d.layers)], cross[len(d.layers) :]
        past = self_k.shape[3]
        n = tokens.shape[1]
        x = d.embed_tokens(tokens) + d.embed_positions.weight[past : past + n]  # (B, N, C)
        q_pos = torch.arange(n, device=tokens.device) + past
        k_pos = torch.arange(past + n, device=tokens.device)
        mask = torch.where(k_pos[None, :] > q_pos[:, None], float("-inf"), 0.0)  # (N, P+N)
        new_k, new_v = [], []
        for i, layer in enumerate(d.layers):
            a = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            q = split_heads(a.q_proj(h) * a.scaling, self.n_heads)
            k = torch.cat([self_k[i], split_heads(a.k_proj(h), self.n_heads)], dim=2)  # (B, H, P+N, Dh)
            v = torch.cat([self_v[i], split_heads(a.v_proj(h), self.n_heads)], dim=2)
            new_k.append(k)
            new_v.append(v)
            x = x + a.out_proj(merge_heads(attend(q, k, v, mask)))
            c = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(x)
            q = split_heads(c.q_proj(h) * c.scaling, self.n_heads)
            x = x + c.out_proj(merge_heads(attend(q, cross_k[i], cross_v[i], None)))
            h = layer.final_layer_norm(x)
            x = x + layer.fc2(F.gelu(layer.fc1(h)))
        x = d.layer_norm(x[:, logits_from[0] :])  # (B, N - logits_from, C)
        logits = x @ (self.proj if self.proj is not None else d.embed_tokens.weight.t())  # (B, N, V)
        return logits, torch.stack(new_k), torch.stack(new_v)


def export_stacked_decoder(model: nn.Module, path: Path, untie_output: bool = False) -> None:
    """Write the decoder with the stacked-cache interface that bundles had before the fused one."""
    from edge_alm.export.graph_export import export_onnx

    cfg = model.config
    n_layers, n_heads = cfg.decoder_layers, cfg.decoder_attention_heads
    dh = cfg.d_model // n_heads
    cross_names = [f"cross_{kv}.{i}" for kv in "kv" for i in range(n_layers)]
    past_axes, present_axes = {1: "batch", 3: "past"}, {1: "batch", 3: "past_plus_new"}
    past = torch.zeros(n_layers, 1, n_heads, 2, dh)
    cross = [torch.randn(1, n_heads, 100, dh) for _ in range(2 * n_layers)]
    axes = {
        "tokens": {0: "batch", 1: "new"},
        "self_k": past_axes,
        "self_v": past_axes,
        **{name: {0: "batch", 2: "audio_positions"} for name in cross_names},
        "logits": {0: "batch", 1: "new_logits"},
        "present_k": present_axes,
        "present_v": present_axes,
    }
    export_onnx(
        WhisperDecoderGraph(model, untie_output),
        (torch.tensor([[1, 2, 3]]), past, past, torch.tensor([1]), *cross),
        path,
        ["tokens", "self_k", "self_v", "logits_from", *cross_names],
        ["logits", "present_k", "present_v"],
        axes,
    )
