"""BlockDecoder in PyTorch: a text-only *text encoder* plus a small *Merger*.

Wiring (this project's definition, after the BlockDecoder paper, NeurIPS 2025):
- Text encoder: the first `n_text` Whisper decoder layers without their cross-attention
  (causal self-attention + feed-forward over text tokens only), then a LayerNorm. Its state
  at position t summarises tokens 0..t.
- Merger: the last `n_merger` Whisper decoder layers. Each: causal self-attention over the
  tokens of the current block; cross-attention over [text states of the prefix ; audio
  states] (audio K/V use the layer's Whisper projections, frozen, so the Whisper encoder
  graph's cross K/V serve as they are; text K/V have their own projections); feed-forward.
  Token embedding, position table and output projection are Whisper's (tied).
- Decoding a block that starts at position s: the Merger reads x[s-1], then its own outputs,
  at positions s-1, s, ... and predicts x[s], x[s+1], ... up to K tokens, with the text
  context fixed to states 0..s-1. Then the text encoder runs once on the K new tokens.
- Training runs every position in one pass: with block starts drawn at random, Merger
  query i (block start b(i)) sees Merger inputs b(i)..i and text states < b(i). One model
  serves any K up to the largest block length seen in training.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from edge_alm.export.whisper_graphs import attend, merge_heads, split_heads
from torch import nn

NEG = float("-inf")


class TextLayer(nn.Module):
    def __init__(self, whisper_layer: nn.Module, n_heads: int) -> None:
        super().__init__()
        w = whisper_layer
        self.n_heads = n_heads
        self.ln1, self.ln2 = copy.deepcopy(w.self_attn_layer_norm), copy.deepcopy(w.final_layer_norm)
        self.q, self.k, self.v = (copy.deepcopy(getattr(w.self_attn, n)) for n in ("q_proj", "k_proj", "v_proj"))
        self.o = copy.deepcopy(w.self_attn.out_proj)
        self.fc1, self.fc2 = copy.deepcopy(w.fc1), copy.deepcopy(w.fc2)
        self.scale = w.self_attn.scaling

    def self_attend(self, x, past_k=None, past_v=None, mask=None):
        """Causal self-attention with an optional cache; returns x and the extended K/V."""
        h = self.ln1(x)
        q = split_heads(self.q(h) * self.scale, self.n_heads)
        k, v = split_heads(self.k(h), self.n_heads), split_heads(self.v(h), self.n_heads)
        if past_k is not None:
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        return x + self.o(merge_heads(attend(q, k, v, mask))), k, v

    def feed_forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    def forward(self, x, past_k=None, past_v=None, mask=None):
        x, k, v = self.self_attend(x, past_k, past_v, mask)
        return self.feed_forward(x), k, v


class MergerLayer(nn.Module):
    def __init__(self, whisper_layer: nn.Module, n_heads: int) -> None:
        super().__init__()
        w = whisper_layer
        self.self_part = TextLayer(w, n_heads)  # self-attention + FFN weights (FFN applied last)
        self.ln_x = copy.deepcopy(w.encoder_attn_layer_norm)
        c = w.encoder_attn
        self.cq, self.co = copy.deepcopy(c.q_proj), copy.deepcopy(c.out_proj)
        self.audio_k, self.audio_v = copy.deepcopy(c.k_proj), copy.deepcopy(c.v_proj)  # frozen
        self.text_k, self.text_v = copy.deepcopy(c.k_proj), copy.deepcopy(c.v_proj)
        for p in (*self.audio_k.parameters(), *self.audio_v.parameters()):
            p.requires_grad_(False)
        self.n_heads = n_heads
        self.scale = c.scaling

    def text_kv(self, text_states):
        return split_heads(self.text_k(text_states), self.n_heads), split_heads(self.text_v(text_states), self.n_heads)

    def audio_kv(self, audio_states):
        return split_heads(self.audio_k(audio_states), self.n_heads), split_heads(
            self.audio_v(audio_states), self.n_heads
        )

    def forward(self, x, ctx_k, ctx_v, past_k=None, past_v=None, self_mask=None, ctx_mask=None):
        x, k, v = self.self_part.self_attend(x, past_k, past_v, self_mask)
        q = split_heads(self.cq(self.ln_x(x)) * self.scale, self.n_heads)
        x = x + self.co(merge_heads(attend(q, ctx_k, ctx_v, ctx_mask)))
        return self.self_part.feed_forward(x), k, v


class BlockDecoder(nn.Module):
    """Text encoder + Merger built from a Hugging Face Whisper decoder (weights copied)."""

    def __init__(self, whisper: nn.Module, n_text: int, n_merger: int | None = None) -> None:
        super().__init__()
        dec = whisper.model.decoder
        layers = list(dec.layers)
        n_merger = n_merger if n_merger is not None else len(layers) - n_text
        if n_text < 1 or n_merger < 1 or n_text + n_merger > len(layers):
            raise ValueError(f"split {n_text}+{n_merger} does not fit a {len(layers)}-layer decoder")
        h = whisper.config.decoder_attention_heads
        self.n_heads = h
        self.embed = copy.deepcopy(dec.embed_tokens)
        self.pos = copy.deepcopy(dec.embed_positions)
        self.text_layers = nn.ModuleList(TextLayer(layer, h) for layer in layers[:n_text])
        self.text_norm = nn.LayerNorm(whisper.config.d_model)
        self.merger_layers = nn.ModuleList(MergerLayer(layer, h) for layer in layers[len(layers) - n_merger :])
        self.out_norm = copy.deepcopy(dec.layer_norm)
        # which Whisper decoder layers the Merger came from: their cross K/V are the audio K/V
        self.merger_source_layers = list(range(len(layers) - n_merger, len(layers)))

    def text_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T, C), causal."""
        t = tokens.shape[1]
        x = self.embed(tokens) + self.pos.weight[:t]
        mask = torch.full((t, t), NEG).triu(1)
        for layer in self.text_layers:
            x, _, _ = layer(x, mask=mask)
        return self.text_norm(x)

    def audio_kv(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states (B, S, C) -> every Merger layer's audio K/V, each (Lm, B, H, S, Dh)."""
        kv = [layer.audio_kv(audio) for layer in self.merger_layers]
        return torch.stack([k for k, _ in kv]), torch.stack([v for _, v in kv])

    def merger_logits(self, text: torch.Tensor, audio_kv, inputs: torch.Tensor, offset: int):
        """Logits for Merger inputs `inputs` (B, N) at positions offset.., text context `text` (B, P, C)."""
        n = inputs.shape[1]
        x = self.embed(inputs) + self.pos.weight[offset : offset + n]
        mask = torch.full((n, n), NEG).triu(1)
        for i, layer in enumerate(self.merger_layers):
            tk, tv = layer.text_kv(text)
            ak, av = audio_kv[0][i], audio_kv[1][i]
            x, _, _ = layer(x, torch.cat([tk, ak], 2), torch.cat([tv, av], 2), self_mask=mask)
        return self.project(x)

    @torch.no_grad()
    def greedy(
        self, audio: torch.Tensor | None, prompt: list[int], block: int, max_new: int, eot: int, audio_kv=None
    ) -> list[int]:
        """Reference block decoding by full recomputation (no caches): the parity oracle."""
        audio_kv = audio_kv if audio_kv is not None else self.audio_kv(audio)
        seq = list(prompt)
        out: list[int] = []
        while len(out) < max_new:
            s = len(seq)
            text = self.text_states(torch.tensor([seq]))
            inputs = [seq[-1]]
            for _ in range(block):
                logits = self.merger_logits(text, audio_kv, torch.tensor([inputs]), s - 1)[0, -1]
                tok = int(logits.argmax())
                if tok == eot:
                    return out
                out.append(tok)
                inputs.append(tok)
                if len(out) >= max_new:
                    return out
            seq += inputs[1:]
        return out

    @torch.no_grad()
    def beam(self, audio: torch.Tensor, prompt: list[int], block: int, max_new: int, eot: int, n: int) -> list[int]:
        """Reference block beam search by full recomputation: every hypothesis's logits come
        from its own text states (up to the block start) and in-block Merger inputs. The
        selection rules are the runtime's (select_beams, best_beam), so this checks the caches."""
        from edge_alm.runtime.decoding import Beam, best_beam, select_beams
        from edge_alm.runtime.logit_filters import log_softmax

        audio_kv = self.audio_kv(audio)
        beams = [Beam()] + [Beam(score=float("-inf")) for _ in range(n - 1)]
        finished: list[Beam] = []
        for i in range(max_new):
            start = i - i % block  # tokens before this block
            rows = []
            for b in beams:
                seq = prompt + b.tokens
                text = self.text_states(torch.tensor([seq[: len(prompt) + start]]))
                inputs = torch.tensor([seq[len(prompt) + start - 1 :]])
                rows.append(self.merger_logits(text, audio_kv, inputs, len(prompt) + start - 1)[0, -1])
            lp = log_softmax(torch.stack(rows).double().numpy())  # (n, V)
            nxt = select_beams(np.array([b.score for b in beams])[:, None] + lp, beams, eot, finished)
            if not nxt:
                return best_beam(finished, beams, False).tokens
            beams = nxt
        return best_beam(finished, beams, True).tokens

    def forward(
        self,
        audio: torch.Tensor | None,
        tokens: torch.Tensor,
        block_starts: list[int],
        audio_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        project: bool = True,
    ) -> torch.Tensor:
        """Training pass: logits (B, T, V) where row i predicts tokens[:, i] for i >= block_starts[0]
        (project=False: the final hidden states (B, T, C), for `project` on chosen rows).

        audio: encoder states (B, S, C); or audio_kv: the Merger layers' audio K/V, each
        (Lm, B, H, S, Dh), as the Whisper encoder graph returns them (cached for training).
        """
        t = tokens.shape[1]
        text = self.text_states(tokens)  # (B, T, C)
        inputs = torch.cat([tokens[:, :1], tokens[:, :-1]], dim=1)  # Merger input at i is x[i-1]
        x = self.embed(inputs) + self.pos.weight[torch.clamp(torch.arange(t) - 1, min=0)]
        starts = torch.tensor(sorted(block_starts))
        b = starts[torch.clamp(torch.searchsorted(starts, torch.arange(t), right=True) - 1, min=0)]  # b(i)
        j = torch.arange(t)
        b = torch.minimum(b, j)  # rows before the first block (the prompt) see only themselves
        self_mask = torch.where((j[None] >= b[:, None]) & (j[None] <= j[:, None]), 0.0, NEG)
        text_ok = j[None] < b[:, None]  # text states before the block
        s_audio = audio.shape[1] if audio_kv is None else audio_kv[0].shape[3]
        ctx_mask = torch.cat([torch.where(text_ok, 0.0, NEG), torch.zeros(t, s_audio)], dim=1)
        for i, layer in enumerate(self.merger_layers):
            tk, tv = layer.text_kv(text)
            ak, av = layer.audio_kv(audio) if audio_kv is None else (audio_kv[0][i], audio_kv[1][i])
            x, _, _ = layer(x, torch.cat([tk, ak], 2), torch.cat([tv, av], 2), self_mask=self_mask, ctx_mask=ctx_mask)
        return self.project(x) if project else x

    def project(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Final norm and the tied output projection: (..., C) -> (..., V), or only the
        vocabulary entries `ids` (..., len(ids)) (training's sampled softmax)."""
        w = self.embed.weight if ids is None else self.embed.weight[ids]
        return self.out_norm(x) @ w.t()
