"""Whisper-style encoder-decoder on two ONNX graphs: encode once, decode with a KV cache.

The encoder returns every decoder layer's cross-attention K/V, so cross projections run
once per window; each decoder pass feeds only the new tokens plus the self-attention cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from edge_alm.runtime.decoding import DecodeResult, beam_search, generate
from edge_alm.runtime.kv_cache import KVBuffers, KVCache
from edge_alm.runtime.logit_filters import apply_begin_suppress, apply_suppress, apply_timestamp_rules, suppress_ids
from edge_alm.runtime.manifest import Manifest, SpecialTokens
from edge_alm.runtime.sampling import LogitFilter, SamplingOptions, log_softmax
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


def filter_logits(
    logits: np.ndarray, generated: list[list[int]], opts: DecodeOptions, special: SpecialTokens, suppress: np.ndarray
) -> None:
    """Whisper's logit rules for the next token of every row, in place."""
    if opts.suppress:
        apply_suppress(logits, suppress)
        apply_begin_suppress(logits, special, len(generated[0]))
    if opts.timestamps:
        apply_timestamp_rules(logits, generated, special, max_timestamp=opts.max_timestamp)


def whisper_filter(opts: DecodeOptions, special: SpecialTokens, suppress: np.ndarray) -> LogitFilter:
    """Whisper's logit rules as one filter for the decoding loops."""
    return lambda logits, generated: filter_logits(logits, generated, opts, special, suppress)


def cross_input_names(n_layers: int) -> list[str]:
    """The decoder graph's cross-attention inputs, one per layer: cross_k.0 .. cross_k.{L-1}, then cross_v.*"""
    return [f"cross_{kv}.{i}" for kv in "kv" for i in range(n_layers)]


# A window's cross K/V: per layer, K then V. Each is a list of L arrays (B, H, S, Dh) or, from
# bundles exported before the encoder's per-layer outputs, one stacked array (L, B, H, S, Dh).
CrossKV = tuple[Sequence[np.ndarray], Sequence[np.ndarray]]


def split_cross(outputs: list[np.ndarray], names: list[str]) -> CrossKV:
    """The encoder's outputs, named `names`, as (K, V): 2L per-layer arrays, or the two stacked
    ones (cross_k, cross_v) of old bundles."""
    if names == ["cross_k", "cross_v"]:
        return outputs[0], outputs[1]
    n = len(outputs) // 2
    return outputs[:n], outputs[n:]


def cross_feeds(cross_k: Sequence[np.ndarray], cross_v: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Cross K/V, per layer or stacked, as the decoder's per-layer inputs: no copy."""
    return dict(zip(cross_input_names(len(cross_k)), [*cross_k, *cross_v]))


class Seq2SeqState:
    """One request's decoder state: the self-attention cache and the window's cross K/V."""

    def __init__(self, model: Seq2SeqModel, cross: CrossKV) -> None:
        self.model = model
        self.cross = cross
        self.cache = model.new_cache()

    def prefill(self, prompt: list[int], logits_from: int = 0) -> np.ndarray:
        """Prompt tokens -> logits of the prompt's positions from `logits_from` on (1, N - logits_from, V)."""
        return self.model.step(np.array([prompt]), self.cache, self.cross, logits_from)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        return self.model.step(tokens[:, None], self.cache, self.cross)[:, -1].astype(np.float64)

    def reorder(self, rows: np.ndarray) -> None:
        self.cache.reorder(rows)
        # Every row reads the same audio, and the decoder's cross-attention MatMuls broadcast a
        # batch of one over the beams: one copy serves them all (a copy per beam was 5 x 34 MB at
        # a 30 s window, and copying it made beam 5 about 15 % slower). Old bundles' stacked input
        # goes through a Split first, so it is still copied.
        if self.model._stacked_cross and self.cross[0].shape[1] != len(rows):
            self.cross = (np.take(self.cross[0], rows, axis=1), np.take(self.cross[1], rows, axis=1))


class Seq2SeqModel:
    """Holds the encoder and decoder sessions of one bundle; stateless between calls."""

    def __init__(self, manifest: Manifest, config: SessionConfig) -> None:
        self.manifest = manifest
        self.encoder = GraphSession(manifest.graph_path("encoder"), manifest.graphs["encoder"].sha256, config)
        self.decoder = GraphSession(manifest.graph_path("decoder"), manifest.graphs["decoder"].sha256, config)
        # bundles exported before the decoder's logits_from input return every position's logits
        self._sliced_logits = "logits_from" in self.decoder.inputs
        # bundles exported before the per-layer cross inputs take the stacked (L, ...) tensors
        self._stacked_cross = "cross_k" in self.decoder.inputs
        # fused decoders (export/whisper_fused.py) append to per-layer buffers in place; older
        # ones take and return the whole stacked cache every step
        self._fused = "past_k.0" in self.decoder.inputs
        self.special = manifest.tokens
        self._suppress = suppress_ids(manifest.tokens)
        d = manifest.decoder
        self._shape = (d.n_layers, d.n_heads, d.head_dim)

    def encode(self, features: np.ndarray) -> CrossKV:
        """(n_mels, T) or (B, n_mels, T) log-mel -> cross K/V, L arrays (B, H, T/2, Dh) each."""
        if features.ndim == 2:
            features = features[None]
        outputs = self.encoder.run({"input_features": np.ascontiguousarray(features, np.float32)})
        return split_cross(outputs, self.encoder.outputs)

    def new_cache(self) -> KVCache | KVBuffers:
        """An empty self-attention cache of the kind this bundle's decoder reads (batch 1)."""
        return (KVBuffers if self._fused else KVCache)(self._shape[0], 1, self._shape[1], self._shape[2])

    def step(self, tokens: np.ndarray, cache: KVCache | KVBuffers, cross: CrossKV, logits_from: int = 0) -> np.ndarray:
        """Run the decoder on new tokens (B, N), extend the cache, return the logits of positions
        logits_from.. (B, N - logits_from, V)."""
        if self._fused:
            return self._fused_step(tokens, cache, cross, logits_from)
        feeds = {"tokens": tokens.astype(np.int64), "self_k": cache.k, "self_v": cache.v}
        if self._stacked_cross:
            feeds.update(cross_k=cross[0], cross_v=cross[1])
        else:
            feeds.update(cross_feeds(*cross))
        if self._sliced_logits:
            feeds["logits_from"] = np.array([logits_from], np.int64)
        logits, k, v = self.decoder.run(feeds)
        cache.update(k, v)
        return logits if self._sliced_logits else logits[:, logits_from:]

    def _fused_step(self, tokens: np.ndarray, cache: KVBuffers, cross: CrossKV, logits_from: int) -> np.ndarray:
        n = tokens.shape[1]
        cache.reserve(n)
        fresh = cache.binding is None  # a new binding (first step, grown or reordered buffers)
        binding = cache.bind(self.decoder.session)
        if fresh:  # the audio's K/V stay bound for the whole decode: no per-step feeds
            for name, a in cross_feeds(*cross).items():
                binding.bind_cpu_input(name, a)
        total = cache.length + n
        binding.bind_cpu_input("tokens", np.ascontiguousarray(tokens, np.int64))
        binding.bind_cpu_input("seqlens_k", np.full(cache.batch, total - 1, np.int32))
        binding.bind_cpu_input("total_sequence_length", np.array(total, np.int32))
        binding.bind_cpu_input("logits_from", np.array([logits_from], np.int64))
        binding.bind_output("logits")  # its row count changes from call to call
        self.decoder.session.run_with_iobinding(binding)
        cache.length = total
        return binding.get_outputs()[-1].numpy()  # (B, N - logits_from, V)

    def detect_language(self, cross: CrossKV) -> str:
        """The language code whose token is likeliest right after <|startoftranscript|>."""
        s = self.special
        cache = self.new_cache()
        logits = self.step(np.array([[s.sot]]), cache, cross)[0, -1]
        codes = list(s.languages)
        return codes[int(np.argmax(logits[[s.languages[c] for c in codes]]))]

    def _first_read_position(self, prompt: list[int]) -> int:
        """The first prompt position whose logits are read: <|startoftranscript|> (the no-speech
        probability) or else the last; previous-text tokens before it need none."""
        return prompt.index(self.special.sot) if self.special.sot in prompt else len(prompt) - 1

    def _no_speech_prob(self, logits: np.ndarray, prompt: list[int], start: int) -> float:
        if self.special.no_speech is None or self.special.sot not in prompt:
            return 0.0
        row = logits[0, prompt.index(self.special.sot) - start].astype(np.float64)
        return float(np.exp(log_softmax(row[None])[0, self.special.no_speech]))

    def decode(self, cross: CrossKV, prompt: list[int], opts: DecodeOptions) -> DecodeResult:
        if opts.block_size is not None:
            raise ValueError("block_size applies to blockdecoder bundles; this bundle is seq2seq")
        budget = min(opts.max_new_tokens, self.manifest.decoder.max_length - len(prompt))
        t0 = time.perf_counter()
        state = Seq2SeqState(self, cross)
        start = self._first_read_position(prompt)
        logits = state.prefill(prompt, start)  # (1, N - start, V)
        no_speech = self._no_speech_prob(logits, prompt, start)
        first = logits[:, -1].astype(np.float64)
        filters = [whisper_filter(opts, self.special, self._suppress)]
        if opts.beam_size > 1:
            result = beam_search(state, first, budget, self.special.eot, opts.beam_size, filters, started=t0)
        else:
            sampling = SamplingOptions(temperature=opts.temperature, seed=opts.seed)
            result = generate(state, first, budget, [self.special.eot], sampling=sampling, filters=filters, started=t0)
        result.no_speech_prob = no_speech
        return result
