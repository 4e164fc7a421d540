"""Audio-language models on four ONNX graphs: audio encoder -> adapter -> causal LM.

A clip becomes audio embeddings once (encoder, then the adapter's pooling and projection);
the prompt template places them between text embeddings (the embed graph); the LM reads
the whole prefix once and then one token per step with a grouped-query KV cache. A `Chat`
keeps that cache across turns, so a follow-up question prefills only its own text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
from edge_alm.runtime.alm_audio import clip_features, clip_level_db
from edge_alm.runtime.decoding import DecodeResult, TokenGenerator, beam_search
from edge_alm.runtime.errors import EdgeALMError
from edge_alm.runtime.frame_stats import frame_stats
from edge_alm.runtime.kv_cache import KVBuffers
from edge_alm.runtime.manifest import AlmConfig, Manifest
from edge_alm.runtime.sampling import SamplingOptions, log_softmax
from edge_alm.runtime.session import GraphSession, SessionConfig
from tokenizers import Tokenizer

SLOT = re.compile(r"\{audio(\d+)\}|\{id:(\d+)\}|(\{question\})")


class PromptError(EdgeALMError):
    """A request does not fit the model: wrong number of clips, or longer than its context."""


@dataclass(frozen=True)
class AskOptions:
    max_new_tokens: int | None = None  # answer budget (None: the bundle's default)
    temperature: float | None = None  # 0: greedy (None: the bundle's default)
    top_k: int | None = None  # sample among the k likeliest (None: the bundle's default)
    top_p: float | None = None  # nucleus mass (None: the bundle's default)
    repetition_penalty: float | None = None  # > 1 discourages repeats (None: the bundle's default)
    beam_size: int = 1  # > 1: beam search (greedy scoring; sampling options ignored)
    seed: int = 0  # sampling seed


@dataclass
class Answer:
    text: str
    tokens: list[int]  # generated ids, without the stop token
    finished: bool  # ended at a stop token or string, not at the budget
    timings: dict[str, float] = field(default_factory=dict)  # encode_ms, prefill_ms, first_token_ms, ms_per_token


MAX_BEAM = 16


def check_ask_options(o: AskOptions) -> None:
    """One-line ValueErrors for values that would crash, hang or be silently ignored."""
    checks = [
        (
            o.max_new_tokens is None or (isinstance(o.max_new_tokens, int) and o.max_new_tokens >= 1),
            "max_new_tokens must be 1 or more",
        ),
        (o.temperature is None or 0 <= o.temperature <= 5, "temperature must be from 0 to 5"),
        (o.top_p is None or 0 < o.top_p <= 1, "top_p must be in (0, 1]"),
        (o.top_k is None or (isinstance(o.top_k, int) and o.top_k >= 0), "top_k must be 0 (no limit) or more"),
        (o.repetition_penalty is None or o.repetition_penalty > 0, "repetition_penalty must be positive"),
        (isinstance(o.beam_size, int) and 1 <= o.beam_size <= MAX_BEAM, f"beam size must be 1 to {MAX_BEAM}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


class AlmState:
    """One conversation's LM state: the KV cache and what the cache holds, behind the
    common decoding interface (step, reorder)."""

    def __init__(self, model: AlmModel) -> None:
        lm = model.config.lm
        self.model = model
        self.cache = KVBuffers(lm.n_layers, 1, lm.n_kv_heads, lm.head_dim)
        self.history: list[int] = []  # text token ids fed so far (for the repetition penalty)

    @property
    def length(self) -> int:
        return self.cache.length

    def feed(self, embeds: np.ndarray) -> np.ndarray:
        """Embeddings (B, N, D) at the next positions -> last-position logits (B, V), float64."""
        cache, n = self.cache, embeds.shape[1]
        cache.reserve(n)
        binding = cache.bind(self.model.lm.session)
        total = cache.length + n
        binding.bind_cpu_input("inputs_embeds", np.ascontiguousarray(embeds, np.float32))
        binding.bind_cpu_input("seqlens_k", np.full(cache.batch, total - 1, np.int32))
        binding.bind_cpu_input("total_sequence_length", np.array(total, np.int32))
        self.model.lm.session.run_with_iobinding(binding)
        cache.length = total
        return binding.get_outputs()[-1].numpy()[:, -1].astype(np.float64)  # logits (B, V)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        return self.feed(self.model.embed(tokens[:, None]))  # (n, 1, D)

    def reorder(self, rows: np.ndarray) -> None:
        self.cache.reorder(rows)


class AlmModel:
    """The sessions and tokenizer of one alm bundle; stateless between requests."""

    def __init__(self, manifest: Manifest, config: SessionConfig) -> None:
        self.manifest = manifest
        self.config: AlmConfig = manifest.config
        g = manifest.graphs
        # Arenas: none for the audio encoder, the others their own. A 7 s question peaked 25 MB
        # higher with one arena shared by all (a 29 s one 15-40 MB lower): the LM's prefill
        # and steps do not fit the holes the encoder leaves.
        own = replace(config, arena="own")
        self.audio_encoder = GraphSession(
            manifest.graph_path("audio_encoder"), g["audio_encoder"].sha256, replace(config, arena="off")
        )
        self.adapter = GraphSession(manifest.graph_path("adapter"), g["adapter"].sha256, own)
        self.embed_graph = GraphSession(manifest.graph_path("embed"), g["embed"].sha256, own)
        # the decode step is ~1,000 small kernels: with 2+ threads, waking them for each costs
        # more than it gains (SmolLM2 int4, 2 threads: 5.9 ms/token sleeping, 4.4 ms spinning)
        lm_config = replace(own, spinning=config.threads != 1)
        self.lm = GraphSession(manifest.graph_path("lm"), g["lm"].sha256, lm_config)
        self.tokenizer = Tokenizer.from_file(str(manifest.path / manifest.tokenizer))
        self.params = manifest.features

    @property
    def max_clips(self) -> int:
        return max(int(n) for n in self.config.prompt.templates)

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """Token ids (B, N) -> embeddings (B, N, D)."""
        (out,) = self.embed_graph.run({"input_ids": np.asarray(ids, np.int64)})
        return out

    def features(self, samples: np.ndarray) -> np.ndarray:
        return clip_features(samples, self.params, self.config.audio)

    def encode_clip(self, samples: np.ndarray) -> np.ndarray:
        """Mono float samples at the model's rate -> audio embeddings (S/p, D)."""
        (hidden,) = self.audio_encoder.run({"input_features": self.features(samples)})  # (1, S, C)
        feeds = {"hidden": hidden}
        if "frame_stats" in self.adapter.inputs:  # an adapter that also reads level and pitch
            feeds["frame_stats"] = self.frame_stats(samples, hidden.shape[1])[None]  # (1, S, 3)
        (emb,) = self.adapter.run(feeds)  # (1, S/p, D)
        return emb[0]

    def clip_facts(self, samples: np.ndarray) -> str:
        """The text the prompt places after this clip's audio (prompt.clip_facts; "" for none)."""
        if not self.config.prompt.clip_facts:
            return ""
        return self.facts_text(clip_level_db(samples, self.params, self.config.audio))

    def facts_text(self, level_db: float) -> str:
        return self.config.prompt.clip_facts.replace("{level_db}", str(round(level_db)))

    def frame_stats(self, samples: np.ndarray, n_frames: int) -> np.ndarray:
        """Level, voicing and pitch per encoder frame (n_frames, 3); an encoder frame is two mel hops."""
        return frame_stats(samples, n_frames, 2 * self.params.hop_length, self.params.sample_rate)

    def question_ids(self, question: str) -> list[int]:
        """A fixed-length question (prompt.question_tokens > 0): tokenized with the tokenizer's
        special tokens, cut, then padded with pad_token, as the model saw it in training."""
        n, pad = self.config.prompt.question_tokens, self.config.prompt.pad_token
        ids = self.tokenizer.encode(question, add_special_tokens=True).ids[:n]
        return ids + [pad] * (n - len(ids))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def prompt_parts(
        self, question: str, n_clips: int, first_turn: bool, facts: list[str] | None = None
    ) -> list[list[int] | int]:
        """The turn's template as text token lists and clip indices (0-based), in order; each
        clip followed by its facts' tokens (clip_facts) when given."""
        prompt = self.config.prompt
        if not first_turn:
            if n_clips:
                raise PromptError("clips go with the first question of a chat")
            if not prompt.continue_template:
                raise PromptError("this model answers one question per chat: start a new chat for the next")
            return [self.encode(prompt.continue_template.replace("{question}", question))]
        if n_clips == 0:
            raise PromptError(f"this model answers questions about audio: give 1 to {self.max_clips} clip(s), got none")
        template = prompt.templates.get(str(n_clips))
        if template is None:
            counts = " or ".join(sorted(prompt.templates))
            raise PromptError(f"this model's prompt takes {counts} clip(s), got {n_clips}")
        # text between slots is tokenized whole (the question inside it), unless the question
        # has a fixed length: then it is a slot of its own
        fixed = prompt.question_tokens > 0
        parts: list[list[int] | int] = []
        pos = 0
        for m in SLOT.finditer(template):
            audio, token, q = m.groups()
            if q and not fixed:
                continue
            parts.append(self.encode(template[pos : m.start()].replace("{question}", question)))
            parts.append(int(audio) - 1 if audio else [int(token)] if token else self.question_ids(question))
            if audio and facts:
                parts.append(self.encode(facts[int(audio) - 1]))
            pos = m.end()
        parts.append(self.encode(template[pos:].replace("{question}", question)))
        return [p for p in parts if not isinstance(p, list) or p]

    def sampling(self, opts: AskOptions) -> tuple[SamplingOptions, int]:
        d = self.config.sampling
        check_ask_options(opts)

        def pick(value, default):
            return default if value is None else value

        s = SamplingOptions(
            temperature=pick(opts.temperature, d.temperature),
            top_k=pick(opts.top_k, d.top_k),
            top_p=pick(opts.top_p, d.top_p),
            repetition_penalty=pick(opts.repetition_penalty, d.repetition_penalty),
            seed=opts.seed,
        )
        return s, pick(opts.max_new_tokens, d.max_new_tokens)


class Chat:
    """A conversation about one or more clips. The first question prefills the template with
    the clips' embeddings; each later question prefills only its own turn on top of the
    cache (the clips are never re-encoded)."""

    def __init__(self, model: AlmModel, clips: list[np.ndarray]) -> None:
        self.model = model
        self.clips = clips
        self.state = AlmState(model)
        self.turns: list[tuple[str, Answer]] = []
        self._audio: list[np.ndarray] | None = None
        self._facts = [model.clip_facts(c) for c in clips]  # text after each clip's audio (often "")

    def _prefill(self, question: str) -> tuple[np.ndarray, dict[str, float]]:
        m, t0 = self.model, time.perf_counter()
        first = not self.turns
        parts = m.prompt_parts(question, len(self.clips) if first else 0, first, self._facts if first else None)
        encode_ms = 0.0
        if first and self._audio is None:
            self._audio = [m.encode_clip(c) for c in self.clips]
            encode_ms = (time.perf_counter() - t0) * 1000
        t1 = time.perf_counter()
        chunks, ids = [], []
        for part in parts:
            if isinstance(part, int):
                chunks.append(self._audio[part])
            else:
                chunks.append(m.embed(np.array([part]))[0])
                ids += part
        x = np.concatenate(chunks)[None]  # (1, N, D)
        ctx = m.config.lm.context_length
        if self.state.length + x.shape[1] >= ctx:
            raise PromptError(
                f"prompt is {self.state.length + x.shape[1]} tokens; this model's context is {ctx} tokens"
            )
        self.state.history += ids
        logits = self.state.feed(x)
        t2 = time.perf_counter()
        return logits, {"encode_ms": encode_ms, "prefill_ms": (t2 - t1) * 1000, "prompt_tokens": x.shape[1]}

    def stream(self, question: str, options: AskOptions | None = None) -> Iterator[str]:
        """Answer `question`, yielding text as it is generated; the full Answer is then in
        `self.turns[-1]`."""
        opts = options or AskOptions()
        m, t_start = self.model, time.perf_counter()
        logits, timings = self._prefill(question)
        sampling, max_new = m.sampling(opts)
        budget = min(max_new, m.config.lm.context_length - self.state.length)
        stops = m.config.prompt.stop_strings
        start = self.state.length
        if opts.beam_size > 1:
            result = beam_search(
                self.state, logits, budget, m.config.prompt.stop_tokens[0], opts.beam_size, started=t_start
            )
            # the rows hold the last live beams, not necessarily the best: keep one row and let
            # _finish cut it back to the prompt and feed the chosen answer
            self.state.reorder(np.zeros(1, np.int64))
            self.state.cache.rewind_to(start)
            text = m.decode(result.tokens)
            self._finish(question, result, text, timings, start)
            yield text
            return
        gen = TokenGenerator(
            self.state,
            logits,
            budget,
            m.config.prompt.stop_tokens,
            sampling=sampling,
            history=self.state.history,
            stop_text=(lambda toks: any(m.decode(toks).endswith(s) for s in stops)) if stops else None,
            started=t_start,
        )
        shown = ""
        while not gen.is_done():
            if gen.generate_next_token() is None:
                break
            text = m.decode(gen.tokens)
            if not text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the rest
                yield text[len(shown) :]
                shown = text
        text = m.decode(gen.tokens)
        for s in stops:
            if text.endswith(s):
                text = text[: -len(s)]
        if len(text) > len(shown):
            yield text[len(shown) :]
        self._finish(question, gen.result(), text, timings, start)

    def _finish(self, question: str, r: DecodeResult, text: str, timings: dict[str, float], start: int) -> None:
        # the cache must hold the whole answer for the next turn: the loop does not feed a token
        # that ended generation by budget or stop string
        fed = self.state.length - start
        if fed < len(r.tokens):
            self.state.feed(self.model.embed(np.array([r.tokens[fed:]])))
        n = len(r.tokens)
        decode_ms = r.decode_ms - timings["prefill_ms"] - timings["encode_ms"]
        timings = {
            **timings,
            "first_token_ms": r.first_token_ms,
            "tokens": n,
            "ms_per_token": (r.decode_ms - r.first_token_ms) / max(n - 1, 1) if n > 1 else 0.0,
            "decode_ms": max(decode_ms, 0.0),
            "total_ms": r.decode_ms,
        }
        self.state.history += r.tokens
        self.turns.append((question, Answer(text, list(r.tokens), r.finished, timings)))

    def expect_number(self, question: str, branches: int = 3, min_digit_mass: float = 0.5) -> float:
        """The answer to a question answered as "D.D" (a 1-5 rating), as the mean over the LM's
        probabilities of its digits rather than its likeliest text: an LM torn between 2.8 and
        3.4 answers near their weighted mean instead of at one of them. The units digit is
        weighed over its `branches` likeliest values, each followed by "." and the expected tenths
        digit. ValueError when the LM gives its digits less than `min_digit_mass` as the answer's
        first token (it does not answer with a number). The conversation is left as it was."""
        m = self.model
        digits, point = [m.encode(str(d)) for d in range(10)], m.encode(".")
        if any(len(d) != 1 for d in digits) or len(point) != 1:
            raise ValueError("this model's tokenizer does not write digits and '.' as single tokens")
        ids = np.array([d[0] for d in digits])
        start, n_history = self.state.length, len(self.state.history)
        try:
            logits, _ = self._prefill(question)  # (1, V)
            after = self.state.length
            if np.exp(log_softmax(logits[0])[ids]).sum() < min_digit_mass:
                raise ValueError(f"the model does not answer {question!r} with a number")
            units = np.exp(log_softmax(logits[0, ids]))  # (10,)
            top = np.argsort(units)[::-1][:branches]
            total = 0.0
            for d in top:
                self.state.cache.rewind_to(after)
                z = self.state.feed(m.embed(np.array([[ids[d], point[0]]])))[0, ids]  # logits of the tenths digit
                total += units[d] * (d + float(np.exp(log_softmax(z)) @ np.arange(10)) / 10)
            return total / float(units[top].sum())
        finally:  # nothing of this question stays in the conversation
            self.state.cache.rewind_to(start)
            del self.state.history[n_history:]

    def ask(self, question: str, options: AskOptions | None = None, **overrides) -> Answer:
        """Answer `question` (keyword overrides set AskOptions fields)."""
        opts = replace(options or AskOptions(), **overrides)
        for _ in self.stream(question, opts):
            pass
        return self.turns[-1][1]
