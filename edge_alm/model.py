"""The public Python API: `EdgeALM.load(bundle).transcribe(audio)`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from edge_alm.audio import AudioInput, load_audio
from edge_alm.runtime.blockdecoder import BlockDecoderModel
from edge_alm.runtime.manifest import Manifest, load_manifest
from edge_alm.runtime.seq2seq import Seq2SeqModel
from edge_alm.runtime.session import GraphSession, SessionConfig
from edge_alm.runtime.stream import Final, Partial, Stream, StreamOptions
from edge_alm.runtime.tokenizer import TextTokenizer
from edge_alm.runtime.transcribe import Segment, TranscribeOptions, Transcriber, Transcription
from edge_alm.runtime.vad import EnergyVAD, SileroVAD

__all__ = ["EdgeALM", "Final", "Partial", "Segment", "Stream", "StreamOptions", "TranscribeOptions", "Transcription"]


class EdgeALM:
    """One loaded bundle: sessions and tokenizer, shared by every transcription."""

    def __init__(self, manifest: Manifest, session_config: SessionConfig, block_size: int | None = None) -> None:
        self.manifest = manifest
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
        return cls(manifest, SessionConfig(threads=threads, cache_optimized=cache_optimized), block_size)

    @property
    def sample_rate(self) -> int:
        return self.manifest.features.sample_rate

    def stream(self, options: StreamOptions | None = None, **overrides) -> Stream:
        """A new streaming session (one per audio source); the model is shared.

        Keyword overrides set TranscribeOptions fields used for partials and finals.
        """
        topts = replace(TranscribeOptions(), **overrides)
        return Stream(self.transcriber, self.vad.stepper(), options or StreamOptions(), topts)

    def transcribe(self, audio: AudioInput, options: TranscribeOptions | None = None, **overrides) -> Transcription:
        """Transcribe a path, bytes, (samples, sample_rate) or 16 kHz samples.

        Keyword overrides set TranscribeOptions fields, e.g. beam_size=5, window="30s".
        """
        opts = replace(options or TranscribeOptions(), **overrides)
        samples = load_audio(audio, self.sample_rate)
        return self.transcriber.transcribe(np.ascontiguousarray(samples), opts)
