"""The public Python API: `EdgeALM.load(bundle).transcribe(audio)`."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge_alm.audio import AudioFile, AudioInput, load_audio, open_audio
from edge_alm.runtime.alm import AlmModel, Answer, AskOptions, Chat
from edge_alm.runtime.blockdecoder import BlockDecoderModel
from edge_alm.runtime.manifest import Manifest, load_manifest
from edge_alm.runtime.seq2seq import Seq2SeqModel
from edge_alm.runtime.session import GraphSession, SessionConfig, release_free_heap
from edge_alm.runtime.stream import Final, Partial, Stream, StreamOptions
from edge_alm.runtime.tokenizer import TextTokenizer
from edge_alm.runtime.transcribe import Segment, TranscribeOptions, Transcriber, Transcription, check_options
from edge_alm.runtime.turn_lm import TurnLM
from edge_alm.runtime.vad import EnergyVAD, SileroVAD

__all__ = [
    "Answer",
    "AskOptions",
    "Chat",
    "EdgeALM",
    "Final",
    "Partial",
    "Segment",
    "Stream",
    "StreamOptions",
    "TranscribeOptions",
    "Transcription",
]


def check_threads(threads) -> int:
    """0 (all cores) up to 4 threads per core: more only adds switching (5,000 took 16 s on a 4 s clip)."""
    limit = max(8, 4 * (os.cpu_count() or 1))
    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= limit:
        raise ValueError(f"threads must be 0 (all cores) to {limit}, got {threads!r}")
    return threads


class EdgeALM:
    """One loaded bundle: sessions and tokenizer, shared by every request."""

    def __init__(self, manifest: Manifest, session_config: SessionConfig, block_size: int | None = None) -> None:
        self.manifest = manifest
        self.alm: AlmModel | None = None
        if manifest.kind == "alm":
            if block_size is not None:
                raise ValueError(f"block_size applies to blockdecoder bundles; {manifest.path} is alm")
            self.alm = AlmModel(manifest, session_config)
            return
        if manifest.kind == "blockdecoder":
            self.model = BlockDecoderModel(manifest, session_config, block_size)
        elif block_size is not None:
            raise ValueError(f"block_size applies to blockdecoder bundles; {manifest.path} is {manifest.kind}")
        else:
            self.model = Seq2SeqModel(manifest, session_config)
        self.tokenizer = TextTokenizer(manifest.path / manifest.tokenizer, manifest.tokens)
        if "vad" in manifest.graphs:
            vad = SileroVAD(
                GraphSession(
                    manifest.graph_path("vad"), manifest.graphs["vad"].sha256, replace(session_config, threads=1)
                ),
                manifest.features.sample_rate,
            )
        else:
            vad = EnergyVAD(sample_rate=manifest.features.sample_rate)
        self.vad = vad
        self.transcriber = Transcriber(self.model, self.tokenizer, vad)

    @classmethod
    def load(
        cls,
        bundle: str | Path,
        threads: int = 0,
        verify: bool = True,
        cache_optimized: bool = True,
        block_size: int | None = None,
    ) -> EdgeALM:
        """Load a bundle directory. threads=0 lets onnxruntime use every core; block_size
        overrides a blockdecoder bundle's K."""
        manifest = load_manifest(bundle, verify=verify)
        model = cls(
            manifest,
            SessionConfig(threads=check_threads(threads), cache_optimized=cache_optimized, verify_cache=verify),
            block_size,
        )
        release_free_heap()
        return model

    @property
    def sample_rate(self) -> int:
        return self.manifest.features.sample_rate

    def require_alm(self, what: str) -> AlmModel:
        if self.alm is None:
            raise ValueError(f"{what} needs an alm bundle; {self.manifest.path} is {self.manifest.kind}")
        return self.alm

    def _require_transcriber(self, what: str) -> None:
        if self.alm is not None:
            raise ValueError(f"{what} needs a transcription bundle; {self.manifest.path} is alm (use ask)")

    def chat(self, audio: AudioInput | list[AudioInput] | None = None) -> Chat:
        """A conversation about one or two clips: the clips are encoded once and the KV cache
        is kept across questions."""
        alm = self.require_alm("chat")
        clips = [] if audio is None else audio if isinstance(audio, list) else [audio]
        return Chat(alm, [np.ascontiguousarray(load_audio(c, self.sample_rate)) for c in clips])

    def ask(
        self, question: str, audio: AudioInput | list[AudioInput] | None = None, options: AskOptions | None = None, **kw
    ) -> Answer:
        """Answer one question about `audio` (a clip or a list of clips: path, bytes,
        (samples, rate)). Keyword overrides set AskOptions fields (max_new_tokens,
        temperature, top_p, top_k, repetition_penalty, beam_size, seed)."""
        return self.chat(audio).ask(question, options, **kw)

    def stream(self, options: StreamOptions | None = None, turn_lm: TurnLM | None = None, **overrides) -> Stream:
        """A new streaming session (one per audio source); the model is shared. turn_lm: an LM
        that judges whether the words end the turn (TurnLM over an alm bundle; default: the
        decoder's full stop and the packaged end-of-turn text model).

        Keyword overrides set TranscribeOptions fields used for partials and finals.
        """
        self._require_transcriber("stream")
        topts = replace(TranscribeOptions(), **overrides)
        check_options(topts)
        return Stream(self.transcriber, self.vad.stepper(), options or StreamOptions(), topts, turn_lm=turn_lm)

    def transcribe(self, audio: AudioInput, options: TranscribeOptions | None = None, **overrides) -> Transcription:
        """Transcribe a path, bytes, (samples, sample_rate) or 16 kHz samples.

        Keyword overrides set TranscribeOptions fields, e.g. beam_size=5, window="30s".
        """
        self._require_transcriber("transcribe")
        opts = replace(options or TranscribeOptions(), **overrides)
        check_options(opts)
        samples = open_audio(audio, self.sample_rate)  # a long file is read a block at a time
        if isinstance(samples, AudioFile):
            with samples:
                return self.transcriber.transcribe(samples, opts)
        return self.transcriber.transcribe(samples, opts)
