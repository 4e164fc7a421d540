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
from edge_alm.runtime.logit_filters import suppress_ids
from edge_alm.runtime.manifest import Manifest
from edge_alm.runtime.seq2seq import DecodeOptions, DecodeResult, filter_logits, pick_token
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

    def _text(self, tokens: list[int], cache: KVCache) -> tuple[np.ndarray, np.ndarray]:
        pk, pv, tk, tv = self.text_encoder.run(
            {"tokens": np.array([tokens], np.int64), "self_k": cache.k, "self_v": cache.v}
        )
        cache.update(pk, pv)
        return tk, tv  # (Lm, 1, H, N, Dh)

    def decode(
        self,
        audio: tuple[np.ndarray, np.ndarray],
        prompt: list[int],
        opts: DecodeOptions,
        block_size: int | None = None,
    ) -> DecodeResult:
        if opts.beam_size > 1:
            raise ValueError("beam search is not implemented for blockdecoder bundles yet; use beam_size=1")
        k_block = int(block_size or self.block_size)
        t0 = time.perf_counter()
        budget = min(opts.max_new_tokens, self.manifest.decoder.max_length - len(prompt))
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
                logits, bk, bv = self.merger.run(
                    {
                        "tokens": np.array([[tok]], np.int64),
                        "offset": np.array(len(seq) - 1 + j, np.int64),
                        "self_k": block_cache.k,
                        "self_v": block_cache.v,
                        "ctx_k": ctx_k,
                        "ctx_v": ctx_v,
                    }
                )
                block_cache.update(bk, bv)
                steps += 1
                last = logits[:, -1].astype(np.float64)
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
