"""Block-wise Merger decoding over three ONNX graphs (see export/blockdecoder_model.py).

Per block of K tokens: the Merger runs K cheap steps over a fixed context ([text K/V of the
prefix ; audio K/V], concatenated once per block) with its own small in-block cache; then
the text encoder runs once on the K new tokens, extending its cache and the text K/V.
Same interface as Seq2SeqModel (encode / decode), so the Transcriber drives either.
"""

from __future__ import annotations

import time

import numpy as np
from edge_alm.runtime.kv_cache import KVCache
from edge_alm.runtime.logit_filters import log_softmax, suppress_ids
from edge_alm.runtime.manifest import Manifest
from edge_alm.runtime.seq2seq import (
    Beam,
    DecodeOptions,
    DecodeResult,
    best_beam,
    filter_logits,
    pick_token,
    select_beams,
)
from edge_alm.runtime.session import GraphSession, SessionConfig


class BlockDecoderModel:
    def __init__(self, manifest: Manifest, config: SessionConfig, block_size: int | None = None) -> None:
        self.manifest = manifest
        g = manifest.graphs
        self.encoder = GraphSession(manifest.graph_path("encoder"), g["encoder"].sha256, config)
        self.text_encoder = GraphSession(manifest.graph_path("text_encoder"), g["text_encoder"].sha256, config)
        self.merger = GraphSession(manifest.graph_path("merger"), g["merger"].sha256, config)
        self.special = manifest.tokens
        self._suppress = suppress_ids(manifest.tokens)
        self.block_size = int(block_size or manifest.extra["block_size"])
        d = manifest.decoder
        self._lt, self._lm = int(manifest.extra["text_layers"]), int(manifest.extra["merger_layers"])
        self._h, self._dh = d.n_heads, d.head_dim

    def encode(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n_mels, T) -> audio K/V of every Merger layer, each (Lm, 1, H, T/2, Dh)."""
        if features.ndim == 2:
            features = features[None]
        k, v = self.encoder.run({"input_features": np.ascontiguousarray(features, np.float32)})
        return k, v

    def detect_language(self, audio) -> str:
        raise ValueError("language detection needs a seq2seq bundle; pass a language")

    def _text(self, tokens: list[int] | np.ndarray, cache: KVCache) -> tuple[np.ndarray, np.ndarray]:
        """The text encoder on new tokens (B, N): extends `cache`, returns their text K/V."""
        pk, pv, tk, tv = self.text_encoder.run(
            {"tokens": np.array(tokens, np.int64).reshape(cache.k.shape[1], -1), "self_k": cache.k, "self_v": cache.v}
        )
        cache.update(pk, pv)
        return tk, tv  # (Lm, B, H, N, Dh)

    def _merger(self, tokens: np.ndarray, offset: int, cache: KVCache, ctx_k, ctx_v) -> np.ndarray:
        """One Merger step for every row: tokens (B, 1) -> logits (B, V) (float64)."""
        logits, k, v = self.merger.run(
            {
                "tokens": tokens.astype(np.int64),
                "offset": np.array(offset, np.int64),
                "self_k": cache.k,
                "self_v": cache.v,
                "ctx_k": ctx_k,
                "ctx_v": ctx_v,
            }
        )
        cache.update(k, v)
        return logits[:, -1].astype(np.float64)

    def decode(
        self,
        audio: tuple[np.ndarray, np.ndarray],
        prompt: list[int],
        opts: DecodeOptions,
        block_size: int | None = None,
    ) -> DecodeResult:
        k_block = int(block_size or opts.block_size or self.block_size)
        budget = min(opts.max_new_tokens, self.manifest.decoder.max_length - len(prompt))
        if opts.beam_size > 1:
            return self._beam(audio, prompt, opts, budget, k_block)
        t0 = time.perf_counter()
        rng = np.random.default_rng(opts.seed)
        text_cache = KVCache(self._lt, 1, self._h, self._dh)
        text_k, text_v = self._text(prompt, text_cache)
        seq, out = list(prompt), []
        total, steps, first_ms, finished = 0.0, 1, 0.0, False
        while not finished and len(out) < budget:
            ctx_k = np.concatenate([text_k, audio[0]], axis=3)  # (Lm, 1, H, P+S, Dh), once per block
            ctx_v = np.concatenate([text_v, audio[1]], axis=3)
            block_cache = KVCache(self._lm, 1, self._h, self._dh)
            tok, new = seq[-1], []
            for j in range(k_block):
                last = self._merger(np.array([[tok]]), len(seq) - 1 + j, block_cache, ctx_k, ctx_v)
                steps += 1
                filter_logits(last, [out + new], opts, self.special, self._suppress)
                tok, lp = pick_token(last[0], opts.temperature, rng)
                if not first_ms:
                    first_ms = (time.perf_counter() - t0) * 1000
                total += lp
                if tok == self.special.eot:
                    finished = True
                    break
                new.append(tok)
                if len(out) + len(new) >= budget:
                    break
            out += new
            seq += new
            if new and not finished and len(out) < budget:
                tk, tv = self._text(new, text_cache)  # the text encoder: once per block
                text_k, text_v = np.concatenate([text_k, tk], axis=3), np.concatenate([text_v, tv], axis=3)
                steps += 1
        return DecodeResult(
            out, total, 0.0, opts.temperature, first_ms, (time.perf_counter() - t0) * 1000, steps, finished
        )

    def _beam(
        self, audio: tuple[np.ndarray, np.ndarray], prompt: list[int], opts: DecodeOptions, budget: int, k_block: int
    ) -> DecodeResult:
        """Beam search with the beams on the batch axis. Live beams always hold the same number
        of tokens, so blocks stay aligned: K Merger steps (reordering the block cache and each
        row's context as beams move), then one batched text-encoder run on the K new tokens."""
        t0 = time.perf_counter()
        n = opts.beam_size
        text_cache = KVCache(self._lt, 1, self._h, self._dh)
        text_k, text_v = self._text(prompt, text_cache)
        text_cache.reorder(np.zeros(n, np.int64))
        text_k, text_v = np.repeat(text_k, n, axis=1), np.repeat(text_v, n, axis=1)  # (Lm, n, H, P, Dh)
        audio_k, audio_v = np.repeat(audio[0], n, axis=1), np.repeat(audio[1], n, axis=1)
        beams = [Beam()] + [Beam(score=-np.inf) for _ in range(n - 1)]  # identical rows: expand only the first
        finished: list[Beam] = []
        steps, first_ms, hit_budget, done = 1, 0.0, True, False
        while not done:
            start = len(beams[0].tokens)
            ctx_k = np.concatenate([text_k, audio_k], axis=3)  # (Lm, n, H, P+S, Dh)
            ctx_v = np.concatenate([text_v, audio_v], axis=3)
            block_cache = KVCache(self._lm, n, self._h, self._dh)
            perm = np.arange(n)  # row of the block-start state each beam descends from
            for j in range(k_block):
                if start + j >= budget:
                    done = True
                    break
                last_tokens = np.array([[b.tokens[-1] if b.tokens else prompt[-1]] for b in beams])  # (n, 1)
                last = self._merger(last_tokens, len(prompt) + start - 1 + j, block_cache, ctx_k, ctx_v)
                steps += 1
                first_ms = first_ms or (time.perf_counter() - t0) * 1000
                filter_logits(last, [b.tokens for b in beams], opts, self.special, self._suppress)
                total = np.array([b.score for b in beams])[:, None] + log_softmax(last)  # (n, V)
                nxt = select_beams(total, beams, self.special.eot, finished)
                if not nxt:
                    hit_budget, done = False, True
                    break
                src = np.array([b.src for b in nxt])
                beams, perm = nxt, perm[src]
                block_cache.reorder(src)
                ctx_k, ctx_v = np.take(ctx_k, src, axis=1), np.take(ctx_v, src, axis=1)
            if done:
                break
            text_cache.reorder(perm)
            text_k, text_v = np.take(text_k, perm, axis=1), np.take(text_v, perm, axis=1)
            tk, tv = self._text(np.array([b.tokens[start:] for b in beams]), text_cache)  # (n, K): once per block
            text_k, text_v = np.concatenate([text_k, tk], axis=3), np.concatenate([text_v, tv], axis=3)
            steps += 1
        best = best_beam(finished, beams, hit_budget)
        return DecodeResult(
            best.tokens,
            best.score,
            0.0,
            0.0,
            first_ms,
            (time.perf_counter() - t0) * 1000,
            steps,
            best in finished,
        )
