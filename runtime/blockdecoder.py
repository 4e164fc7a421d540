"""Block-wise Merger decoding over three ONNX graphs (see export/blockdecoder_model.py).

Per block of K tokens: the Merger runs K cheap steps over a fixed context ([text K/V of the
prefix ; audio K/V], concatenated once per block) with its own small in-block cache; then
the text encoder runs once on the K new tokens, extending its cache and the text K/V.
Same interface as Seq2SeqModel (encode / decode), so the Transcriber drives either.
"""

from __future__ import annotations

import time

import numpy as np
from edge_alm.runtime.decoding import DecodeResult, beam_search, generate
from edge_alm.runtime.kv_cache import KVCache
from edge_alm.runtime.logit_filters import suppress_ids
from edge_alm.runtime.manifest import Manifest
from edge_alm.runtime.sampling import SamplingOptions
from edge_alm.runtime.seq2seq import DecodeOptions, whisper_filter
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
        cfg = manifest.config  # BlockDecoderConfig
        self.max_block_size = cfg.max_block_size
        self.block_size = self.check_block_size(cfg.block_size if block_size is None else block_size)
        d = manifest.decoder
        self._lt, self._lm = cfg.text_layers, cfg.merger_layers
        self._h, self._dh = d.n_heads, d.head_dim

    def check_block_size(self, k) -> int:
        """K must be a whole number from 1 to the largest block the Merger was trained on."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.max_block_size:
            raise ValueError(f"block_size must be 1 to {self.max_block_size} (the trained maximum), got {k!r}")
        return int(k)

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
        k = block_size if block_size is not None else opts.block_size
        k_block = self.block_size if k is None else self.check_block_size(k)
        budget = min(opts.max_new_tokens, self.manifest.decoder.max_length - len(prompt))
        t0 = time.perf_counter()
        state = BlockDecoderState(self, audio, k_block)
        first = state.prefill(prompt)
        filters = [whisper_filter(opts, self.special, self._suppress)]
        if opts.beam_size > 1:
            return beam_search(state, first, budget, self.special.eot, opts.beam_size, filters, started=t0)
        sampling = SamplingOptions(temperature=opts.temperature, seed=opts.seed)
        return generate(state, first, budget, [self.special.eot], sampling=sampling, filters=filters, started=t0)


class BlockDecoderState:
    """One request's block-decoding state behind the common step interface.

    Per block of K tokens the Merger runs K steps over a context fixed for the block
    ([text K/V of the prefix ; audio K/V]) with its own in-block cache. When a step arrives
    with the block full, the text encoder first runs once on the block's K tokens (the last of
    which is the token being fed), extending the text cache, and a new block starts. Rows
    (beams) always hold the same number of tokens, so blocks stay aligned across rows.
    """

    def __init__(self, model: BlockDecoderModel, audio: tuple[np.ndarray, np.ndarray], block_size: int) -> None:
        self.m = model
        self.k_block = block_size
        self.audio_k, self.audio_v = audio  # (Lm, B, H, S, Dh)
        self.text_cache = KVCache(model._lt, 1, model._h, model._dh)

    def prefill(self, prompt: list[int]) -> np.ndarray:
        """Text encoder over the prompt, then the first Merger step on its last token: (1, V)."""
        self.text_k, self.text_v = self.m._text(prompt, self.text_cache)  # (Lm, 1, H, P, Dh)
        self.pos = len(prompt) - 1  # position of the token the next Merger step reads
        self.block: list[list[int]] = [[]]  # each row's tokens in the current block
        self.perm = np.arange(1)  # row of the block-start state each row descends from
        self._start_block()
        return self._merger(np.array([prompt[-1]], np.int64))

    def _start_block(self) -> None:
        n = self.text_k.shape[1]
        if self.audio_k.shape[1] != n:  # every row reads the same audio: repeat it once for the beams
            self.audio_k = np.repeat(self.audio_k[:, :1], n, axis=1)
            self.audio_v = np.repeat(self.audio_v[:, :1], n, axis=1)
        self.ctx_k = np.concatenate([self.text_k, self.audio_k], axis=3)  # (Lm, n, H, P+S, Dh), once per block
        self.ctx_v = np.concatenate([self.text_v, self.audio_v], axis=3)
        self.block_cache = KVCache(self.m._lm, n, self.m._h, self.m._dh)
        self.j = 0

    def _merger(self, tokens: np.ndarray) -> np.ndarray:
        logits = self.m._merger(tokens[:, None], self.pos, self.block_cache, self.ctx_k, self.ctx_v)
        self.pos += 1
        self.j += 1
        return logits

    def step(self, tokens: np.ndarray) -> np.ndarray:
        for row, tok in zip(self.block, tokens):
            row.append(int(tok))
        if self.j == self.k_block:  # block full: the text encoder runs once on its K tokens
            self.text_cache.reorder(self.perm)
            self.text_k, self.text_v = np.take(self.text_k, self.perm, axis=1), np.take(self.text_v, self.perm, axis=1)
            tk, tv = self.m._text(np.array(self.block), self.text_cache)  # (Lm, n, H, K, Dh)
            self.text_k = np.concatenate([self.text_k, tk], axis=3)
            self.text_v = np.concatenate([self.text_v, tv], axis=3)
            self.block = [[] for _ in self.block]
            self.perm = np.arange(len(self.block))
            self._start_block()
        return self._merger(tokens)

    def reorder(self, rows: np.ndarray) -> None:
        self.block = [list(self.block[r]) for r in rows]
        self.perm = self.perm[rows]
        self.block_cache.reorder(rows)
        self.ctx_k, self.ctx_v = np.take(self.ctx_k, rows, axis=1), np.take(self.ctx_v, rows, axis=1)
