"""Whisper-style encoder-decoder on two ONNX graphs: encode once, decode with a KV cache.

The encoder returns every decoder layer's cross-attention K/V, so cross projections run
once per window; each decoder pass feeds only the new tokens plus the self-attention cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from edge_alm.runtime.kv_cache import KVCache
from edge_alm.runtime.logit_filters import (
    apply_begin_suppress,
    apply_suppress,
    apply_timestamp_rules,
    log_softmax,
    suppress_ids,
)
from edge_alm.runtime.manifest import Manifest, SpecialTokens
from edge_alm.runtime.session import GraphSession, SessionConfig


@dataclass(frozen=True)
class DecodeOptions:
    beam_size: int = 1  # 1 = greedy (or sampling when temperature > 0)
    temperature: float = 0.0  # > 0 samples from softmax(logits / T)
    max_new_tokens: int = 224  # token budget for this window
    timestamps: bool = True  # apply Whisper's timestamp rules (prompt has no <|notimestamps|>)
    suppress: bool = True  # apply the suppress and begin-suppress lists
    max_timestamp: int | None = None  # last allowed timestamp index (0.02 s units): the window end
    seed: int = 0  # sampling seed, for reproducible fallback
    block_size: int | None = None  # blockdecoder bundles: tokens per block, K (None: the bundle's own)


@dataclass
class DecodeResult:
    tokens: list[int]  # generated ids, without prompt or <|endoftext|>
    sum_logprob: float
    no_speech_prob: float  # P(<|nospeech|>) at the <|startoftranscript|> position
    temperature: float
    first_token_ms: float  # prefill + first pick
    decode_ms: float  # all decoder passes
    steps: int  # decoder passes
    finished: bool = True  # ended with <|endoftext|> rather than the budget

    @property
    def avg_logprob(self) -> float:
        return self.sum_logprob / (len(self.tokens) + 1)


def filter_logits(
    logits: np.ndarray, generated: list[list[int]], opts: DecodeOptions, special: SpecialTokens, suppress: np.ndarray
) -> None:
    """Whisper's logit rules for the next token of every row, in place."""
    if opts.suppress:
        apply_suppress(logits, suppress)
        apply_begin_suppress(logits, special, len(generated[0]))
    if opts.timestamps:
        apply_timestamp_rules(logits, generated, special, max_timestamp=opts.max_timestamp)


def pick_token(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> tuple[int, float]:
    """Argmax (temperature 0) or a sample of softmax(logits / T) from filtered (V,) logits;
    returns the token and its log-probability."""
    lp = log_softmax(logits[None])[0]
    if temperature > 0:
        p = np.exp(lp / temperature - (lp / temperature).max())
        tok = int(rng.choice(len(p), p=p / p.sum()))
    else:
        tok = int(np.argmax(lp))
    return tok, float(lp[tok])


@dataclass
class Beam:
    tokens: list[int] = field(default_factory=list)
    score: float = 0.0  # summed log-probability
    src: int = 0  # the row this hypothesis extends (after a step)


def select_beams(total: np.ndarray, beams: list[Beam], eot: int, finished: list[Beam]) -> list[Beam]:
    """One beam-search step. total: (n, V) summed log-probs of every continuation. Returns
    the n best continuations that do not end (padded with -inf copies so the batch stays
    full), each with `src`, the row it extends; a top-n continuation ending in EOT joins
    `finished`. An empty list ends the search."""
    n, vocab = total.shape
    nxt: list[Beam] = []
    for rank, idx in enumerate(np.argsort(-total, axis=None)[: 2 * n]):
        b, tok = divmod(int(idx), vocab)
        score = float(total[b, tok])
        if not np.isfinite(score):
            break
        if tok == eot:
            if rank < n:
                finished.append(Beam(list(beams[b].tokens), score))
            continue
        nxt.append(Beam(beams[b].tokens + [tok], score, src=b))
        if len(nxt) == n:
            break
    if len(finished) >= n or not nxt:
        return []
    while len(nxt) < n:  # padding rows never win
        nxt.append(Beam(list(nxt[0].tokens), -np.inf, src=nxt[0].src))
    return nxt


def best_beam(finished: list[Beam], live: list[Beam], hit_budget: bool) -> Beam:
    """Best by mean log-prob; out of budget, unfinished beams compete too (as in transformers)."""
    pool = finished + ([b for b in live if np.isfinite(b.score)] if hit_budget else [])
    return max(pool, key=lambda b: b.score / (len(b.tokens) + 1))


class Seq2SeqModel:
    """Holds the encoder and decoder sessions of one bundle; stateless between calls."""

    def __init__(self, manifest: Manifest, config: SessionConfig) -> None:
        self.manifest = manifest
        self.encoder = GraphSession(manifest.graph_path("encoder"), manifest.graphs["encoder"].sha256, config)
        self.decoder = GraphSession(manifest.graph_path("decoder"), manifest.graphs["decoder"].sha256, config)
        self.special = manifest.tokens
        self._suppress = suppress_ids(manifest.tokens)
        d = manifest.decoder
        self._shape = (d.n_layers, d.n_heads, d.head_dim)

    def encode(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n_mels, T) or (B, n_mels, T) log-mel -> cross K/V, each (L, B, H, T/2, Dh)."""
        if features.ndim == 2:
            features = features[None]
        k, v = self.encoder.run({"input_features": np.ascontiguousarray(features, np.float32)})
        return k, v

    def step(self, tokens: np.ndarray, cache: KVCache, cross: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Run the decoder on new tokens (B, N), extend the cache, return logits (B, N, V)."""
        logits, k, v = self.decoder.run(
            {
                "tokens": tokens.astype(np.int64),
                "self_k": cache.k,
                "self_v": cache.v,
                "cross_k": cross[0],
                "cross_v": cross[1],
            }
        )
        cache.update(k, v)
        return logits

    def detect_language(self, cross: tuple[np.ndarray, np.ndarray]) -> str:
        """The language code whose token is likeliest right after <|startoftranscript|>."""
        s = self.special
        cache = KVCache(self._shape[0], 1, self._shape[1], self._shape[2])
        logits = self.step(np.array([[s.sot]]), cache, cross)[0, -1]
        codes = list(s.languages)
        return codes[int(np.argmax(logits[[s.languages[c] for c in codes]]))]

    def _filter(self, logits: np.ndarray, generated: list[list[int]], opts: DecodeOptions) -> None:
        filter_logits(logits, generated, opts, self.special, self._suppress)

    def _no_speech_prob(self, logits: np.ndarray, prompt: list[int]) -> float:
        if self.special.no_speech is None or self.special.sot not in prompt:
            return 0.0
        row = logits[0, prompt.index(self.special.sot)].astype(np.float64)
        return float(np.exp(log_softmax(row[None])[0, self.special.no_speech]))

    def decode(self, cross: tuple[np.ndarray, np.ndarray], prompt: list[int], opts: DecodeOptions) -> DecodeResult:
        if opts.block_size is not None:
            raise ValueError("block_size applies to blockdecoder bundles; this bundle is seq2seq")
        budget = min(opts.max_new_tokens, self.manifest.decoder.max_length - len(prompt))
        if opts.beam_size > 1:
            return self._beam(cross, prompt, opts, budget)
        return self._greedy(cross, prompt, opts, budget)

    def _greedy(self, cross, prompt: list[int], opts: DecodeOptions, budget: int) -> DecodeResult:
        t0 = time.perf_counter()
        cache = KVCache(self._shape[0], 1, self._shape[1], self._shape[2])
        rng = np.random.default_rng(opts.seed)
        logits = self.step(np.array([prompt]), cache, cross)
        no_speech = self._no_speech_prob(logits, prompt)
        out: list[int] = []
        total, steps, first_ms, finished = 0.0, 1, 0.0, False
        while True:
            last = logits[:, -1].astype(np.float64)  # (1, V)
            self._filter(last, [out], opts)
            tok, lp = pick_token(last[0], opts.temperature, rng)
            if not first_ms:
                first_ms = (time.perf_counter() - t0) * 1000
            total += lp
            if tok == self.special.eot:
                finished = True
                break
            out.append(tok)
            if len(out) >= budget:
                break
            logits = self.step(np.array([[tok]]), cache, cross)
            steps += 1
        return DecodeResult(
            out, total, no_speech, opts.temperature, first_ms, (time.perf_counter() - t0) * 1000, steps, finished
        )

    def _beam(self, cross, prompt: list[int], opts: DecodeOptions, budget: int) -> DecodeResult:
        """Beam search over the batch axis; finished hypotheses ranked by mean log-prob."""
        t0 = time.perf_counter()
        n = opts.beam_size
        cache = KVCache(self._shape[0], 1, self._shape[1], self._shape[2])
        logits = self.step(np.array([prompt]), cache, cross)
        no_speech = self._no_speech_prob(logits, prompt)
        first_ms = (time.perf_counter() - t0) * 1000
        cache.reorder(np.zeros(n, np.int64))
        cross_n = (np.repeat(cross[0], n, axis=1), np.repeat(cross[1], n, axis=1))
        logits = np.repeat(logits[:, -1:], n, axis=0)
        beams = [Beam()] + [Beam(score=-np.inf) for _ in range(n - 1)]  # identical rows: expand only the first
        finished: list[Beam] = []
        steps, hit_budget = 1, True
        for _ in range(budget):
            last = logits[:, -1].astype(np.float64)  # (n, V)
            self._filter(last, [b.tokens for b in beams], opts)
            total = np.array([b.score for b in beams])[:, None] + log_softmax(last)  # (n, V)
            nxt = select_beams(total, beams, self.special.eot, finished)
            if not nxt:
                hit_budget = False
                break
            beams = nxt
            cache.reorder(np.array([b.src for b in beams]))
            logits = self.step(np.array([b.tokens[-1:] for b in beams]), cache, cross_n)
            steps += 1
        best = best_beam(finished, beams, hit_budget)
        return DecodeResult(
            best.tokens,
            best.score,
            no_speech,
            0.0,
            first_ms,
            (time.perf_counter() - t0) * 1000,
            steps,
            best in finished,
        )
