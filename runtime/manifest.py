"""The bundle manifest: the one contract between export and runtime.

A bundle is a directory holding `manifest.json`, the ONNX graphs it names (each with its
sha256) and `tokenizer.json`. Loading validates the version, the kind and every file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_alm.runtime.errors import BundleError

FORMAT = "edge-alm-bundle"
VERSION = 1
KINDS = ("seq2seq", "blockdecoder")
GRAPHS_BY_KIND = {"seq2seq": ("encoder", "decoder"), "blockdecoder": ("encoder", "text_encoder", "merger")}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class GraphEntry:
    file: str  # file name inside the bundle
    sha256: str  # hex digest of that file
    precision: str  # fp32 | int8 | int4


@dataclass(frozen=True)
class FeatureParams:
    sample_rate: int = 16000  # Hz the model expects
    n_fft: int = 400  # STFT window (25 ms)
    hop_length: int = 160  # STFT hop (10 ms): one mel frame
    n_mels: int = 80  # mel bins
    chunk_seconds: int = 30  # the model's training window
    frames_per_position: int = 2  # encoder stride: mel frames per encoder position


@dataclass(frozen=True)
class SpecialTokens:
    sot: int  # <|startoftranscript|>
    eot: int  # <|endoftext|>
    transcribe: int  # <|transcribe|>
    translate: int  # <|translate|>
    no_timestamps: int  # <|notimestamps|>
    no_speech: int | None  # <|nospeech|> / <|nocaptions|>, for the no-speech probability
    timestamp_begin: int  # id of <|0.00|>; timestamps step 0.02 s from there
    languages: dict[str, int]  # "en" -> id of <|en|>
    suppress: tuple[int, ...]  # never sampled
    begin_suppress: tuple[int, ...]  # not sampled as the first text token


@dataclass(frozen=True)
class DecoderShape:
    n_layers: int  # decoder layers (L in the KV layout)
    n_heads: int  # attention heads (H)
    head_dim: int  # Dh
    vocab_size: int  # logits width
    max_length: int  # decoder positions (prompt + generated tokens)


@dataclass(frozen=True)
class Manifest:
    path: Path  # the bundle directory
    kind: str  # seq2seq | blockdecoder
    graphs: dict[str, GraphEntry]
    features: FeatureParams
    tokenizer: str  # tokenizer file name
    tokens: SpecialTokens
    decoder: DecoderShape
    source: str = ""  # where the weights came from, for `edge-alm info`
    extra: dict[str, Any] = field(default_factory=dict)

    def graph_path(self, name: str) -> Path:
        return self.path / self.graphs[name].file


def write_manifest(bundle: Path, data: dict[str, Any]) -> Path:
    """Write manifest.json, filling in sha256 of every graph file named in it."""
    data = {"format": FORMAT, "version": VERSION, **data}
    for entry in data["graphs"].values():
        entry["sha256"] = sha256_file(Path(bundle) / entry["file"])
    out = Path(bundle) / "manifest.json"
    out.write_text(json.dumps(data, indent=2))
    return out


def load_manifest(bundle: str | Path, verify: bool = True) -> Manifest:
    """Read and validate `bundle/manifest.json`; `verify` also checks graph checksums."""
    bundle = Path(bundle)
    path = bundle / "manifest.json"
    if not bundle.is_dir():
        raise BundleError(f"{bundle}: model bundle directory not found")
    if not path.is_file():
        raise BundleError(f"{path}: manifest.json missing; is {bundle} an edge-alm bundle?")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: not valid JSON ({e})") from None
    if data.get("format") != FORMAT:
        raise BundleError(f"{path}: format {data.get('format')!r}, expected {FORMAT!r}")
    if data.get("version") != VERSION:
        raise BundleError(f"{path}: manifest version {data.get('version')!r}, this runtime reads version {VERSION}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise BundleError(f"{path}: model kind {kind!r}, expected one of {KINDS}")
    try:
        graphs = {name: GraphEntry(**g) for name, g in data["graphs"].items()}
        for name in GRAPHS_BY_KIND[kind]:
            if name not in graphs:
                raise BundleError(f"{path}: graph {name!r} missing from the manifest")
        tok = dict(data["tokens"])
        tok["suppress"] = tuple(tok["suppress"])
        tok["begin_suppress"] = tuple(tok["begin_suppress"])
        manifest = Manifest(
            path=bundle,
            kind=kind,
            graphs=graphs,
            features=FeatureParams(**data["features"]),
            tokenizer=data["tokenizer"],
            tokens=SpecialTokens(**tok),
            decoder=DecoderShape(**data["decoder"]),
            source=data.get("source", ""),
            extra=data.get("extra", {}),
        )
    except (KeyError, TypeError) as e:
        raise BundleError(f"{path}: malformed manifest ({type(e).__name__}: {e})") from None
    for name in (*graphs, "tokenizer"):
        file = bundle / (manifest.tokenizer if name == "tokenizer" else graphs[name].file)
        if not file.is_file():
            raise BundleError(f"{file}: {name} file missing from the bundle")
    if verify:
        for name, g in graphs.items():
            digest = sha256_file(bundle / g.file)
            if digest != g.sha256:
                raise BundleError(f"{bundle / g.file}: checksum mismatch for {name} graph (corrupt or replaced file)")
    return manifest
