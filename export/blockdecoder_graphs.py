"""Export-only modules for the BlockDecoder graphs.

encoder:       the Whisper encoder graph restricted to the layers the Merger came from
               (their audio K/V projections stay frozen), so cross_k/cross_v (Lm, ...)
text_encoder:  tokens (B, N), self_k, self_v (Lt, B, H, P, Dh)
               -> present_k, present_v (Lt, B, H, P+N, Dh), text_k, text_v (Lm, B, H, N, Dh)
merger:        tokens (B, N), offset (), self_k, self_v (Lm, B, H, Q, Dh),
               ctx_k, ctx_v (Lm, B, H, P+S, Dh)  [text K/V of the prefix ; audio K/V]
               -> logits (B, N, V), present_k, present_v (Lm, B, H, Q+N, Dh)
"""

from __future__ import annotations

import torch
from edge_alm.export.blockdecoder_model import NEG, BlockDecoder
from torch import nn


def _causal(n: int, past: torch.Tensor, device) -> torch.Tensor:
    q = torch.arange(n, device=device) + past
    k = torch.arange(past + n, device=device)
    return torch.where(k[None, :] > q[:, None], NEG, 0.0)  # (N, P+N)


class TextEncoderGraph(nn.Module):
    def __init__(self, bd: BlockDecoder) -> None:
        super().__init__()
        self.bd = bd

    def forward(self, tokens, self_k, self_v):
        bd = self.bd
        past, n = self_k.shape[3], tokens.shape[1]
        x = bd.embed(tokens) + bd.pos.weight[past : past + n]
        mask = _causal(n, past, tokens.device)
        ks, vs = [], []
        for i, layer in enumerate(bd.text_layers):
            x, k, v = layer(x, self_k[i], self_v[i], mask)
            ks.append(k)
            vs.append(v)
        states = bd.text_norm(x)
        tkv = [m.text_kv(states) for m in bd.merger_layers]
        return torch.stack(ks), torch.stack(vs), torch.stack([k for k, _ in tkv]), torch.stack([v for _, v in tkv])


class MergerGraph(nn.Module):
    def __init__(self, bd: BlockDecoder, untie_output: bool = False) -> None:
        super().__init__()
        self.bd = bd
        w = bd.embed.weight
        self.proj = nn.Parameter(w.detach().t().contiguous()) if untie_output else None

    def forward(self, tokens, offset, self_k, self_v, ctx_k, ctx_v):
        bd = self.bd
        past, n = self_k.shape[3], tokens.shape[1]
        x = bd.embed(tokens) + bd.pos.weight[offset : offset + n]
        mask = _causal(n, past, tokens.device)
        ks, vs = [], []
        for i, layer in enumerate(bd.merger_layers):
            x, k, v = layer(x, ctx_k[i], ctx_v[i], self_k[i], self_v[i], self_mask=mask)
            ks.append(k)
            vs.append(v)
        x = bd.out_norm(x)
        logits = x @ (self.proj if self.proj is not None else bd.embed.weight.t())
        return logits, torch.stack(ks), torch.stack(vs)
