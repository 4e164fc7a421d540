"""The bundle manifest: the one contract between export and runtime.

A bundle is a directory holding `manifest.json`, the ONNX graphs it names (each with its
sha256) and `tokenizer.json`. Loading validates the version, the kind and every file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_alm.runtime.errors import BundleError

FORMAT = "edge-alm-bundle"
VERSION = 1


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
    kind: str = "whisper"  # "whisper": normalised log10 mel (n_mels, T) | "power-db": 10*log10 mel (T, n_mels)
    fmin: float = 0.0  # lowest filter edge, Hz
    fmax: float = 0.0  # highest filter edge, Hz (0: Nyquist)


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
class BlockDecoderConfig:
    block_size: int  # K: tokens the Merger predicts per block
    text_layers: int  # layers of the text encoder
    merger_layers: int  # layers of the Merger (L of the audio K/V)
    merger_source_layers: list[int] = field(default_factory=list)  # teacher layers the Merger started from
    max_block_size: int = 8  # largest K training covered (random block boundaries up to this)


@dataclass(frozen=True)
class AlmLM:
    n_layers: int  # LM layers (L in the KV layout)
    n_kv_heads: int  # grouped-query KV heads (KVH)
    head_dim: int  # Dh
    hidden_size: int  # embedding width D
    vocab_size: int  # logits width
    context_length: int  # positions the LM was trained for: prompt + answer must fit


@dataclass(frozen=True)
class AlmAudio:
    encoder_dim: int  # width C of the audio encoder's frames
    pool: int  # encoder frames averaged into one audio embedding (audio-token compression)
    pool_kind: str  # "mean"
    max_frames: int  # longest input the encoder takes, in mel frames (its position table)
    min_seconds: float = 1.0  # shorter clips are padded with silence to this
    adapter_trained: bool = True  # False: a random adapter; answers ignore the audio
    segment_seconds: float = 0.0  # > 0: every clip is repeated (shorter) or cut (longer) to exactly this


@dataclass(frozen=True)
class AlmPrompt:
    templates: dict[str, str]  # clip count -> first turn: text, {audio1}.. slots, {question}, {id:N} (token N)
    continue_template: str  # a later turn; it closes the previous answer first ("": one question per chat)
    stop_tokens: list[int]  # generation ends at any of these (not fed back)
    stop_strings: list[str] = field(default_factory=list)  # ... or when the text ends with one
    question_tokens: int = 0  # > 0: the question is tokenized alone (with the tokenizer's special
    #   tokens), cut and padded with pad_token to exactly this many tokens
    pad_token: int = -1  # id that pads the question (question_tokens > 0)
    clip_facts: str = ""  # text placed after each clip's audio; {level_db}: the clip's measured
    #   level in dBFS, a whole number ("": none). The LM reads a number it cannot hear from pooled frames


@dataclass(frozen=True)
class AlmSampling:
    max_new_tokens: int = 128  # answer budget
    temperature: float = 0.0  # 0: greedy
    top_k: int = 0  # 0: no limit
    top_p: float = 1.0  # 1: no limit
    repetition_penalty: float = 1.0  # 1: none


@dataclass(frozen=True)
class AlmConfig:
    lm: AlmLM
    audio: AlmAudio
    prompt: AlmPrompt
    sampling: AlmSampling = field(default_factory=AlmSampling)


@dataclass(frozen=True)
class ModelKind:
    graphs: tuple[str, ...]  # graphs a bundle of this kind must have
    whisper: bool  # carries Whisper's special tokens and decoder shape
    section: str | None = None  # manifest key of the kind's own config
    config: type | None = None  # dataclass that section is parsed into


KINDS = {
    "seq2seq": ModelKind(("encoder", "decoder"), whisper=True),
    "blockdecoder": ModelKind(("encoder", "text_encoder", "merger"), True, "extra", BlockDecoderConfig),
    "alm": ModelKind(("audio_encoder", "adapter", "embed", "lm"), False, "alm", AlmConfig),
}


def parse_section(cls: type, data: Any, where: str) -> Any:
    """Build dataclass `cls` from a manifest dict, recursing into nested dataclasses. A missing
    field or a wrong type is a one-line BundleError that names it."""
    if not isinstance(data, dict):
        raise BundleError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise BundleError(f"{where}: missing field {f.name!r}")
            continue
        value, kind = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(kind):
            value = parse_section(kind, value, f"{where}.{f.name}")
        elif kind in (int, float) and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise BundleError(f"{where}.{f.name}: expected a number, got {value!r}")
        values[f.name] = value
    return cls(**values)


@dataclass(frozen=True)
class Manifest:
    path: Path  # the bundle directory
    kind: str  # a key of KINDS
    graphs: dict[str, GraphEntry]
    features: FeatureParams
    tokenizer: str  # tokenizer file name
    tokens: SpecialTokens | None  # Whisper kinds: special token ids
    decoder: DecoderShape | None  # Whisper kinds: decoder shape
    source: str = ""  # where the weights came from, for `edge-alm info`
    extra: dict[str, Any] = field(default_factory=dict)
    config: Any = None  # the kind's typed config (KINDS[kind].config), if it has one

    def graph_path(self, name: str) -> Path:
        return self.path / self.graphs[name].file


def write_manifest(bundle: Path, data: dict[str, Any]) -> Path:
    """Write manifest.json, filling in sha256 of every graph file named in it."""
    data = {"format": FORMAT, "version": VERSION, **data}
    for entry in data["graphs"].values():
        entry["sha256"] = sha256_file(Path(bundle) / entry["file"])
    data["tokenizer_sha256"] = sha256_file(Path(bundle) / data["tokenizer"])
    out = Path(bundle) / "manifest.json"
    out.write_text(json.dumps(data, indent=2))
    return out


def load_manifest(bundle: str | Path, verify: bool = True) -> Manifest:
    """Read and validate `bundle/manifest.json`; `verify` also checks graph checksums."""
    bundle = Path(bundle)
    path = bundle / "manifest.json"
    if bundle.is_file():
        raise BundleError(f"{bundle}: is a file; a model bundle is a directory holding manifest.json")
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
        raise BundleError(f"{path}: model kind {kind!r}, expected one of {tuple(KINDS)}")
    spec = KINDS[kind]
    try:
        graphs = {name: GraphEntry(**g) for name, g in data["graphs"].items()}
        for name in spec.graphs:
            if name not in graphs:
                raise BundleError(f"{path}: graph {name!r} missing from the manifest")
        tokens = decoder = None
        if spec.whisper:
            tok = dict(data["tokens"])
            tok["suppress"] = tuple(tok["suppress"])
            tok["begin_suppress"] = tuple(tok["begin_suppress"])
            tokens, decoder = SpecialTokens(**tok), DecoderShape(**data["decoder"])
        config = None
        if spec.config is not None:
            if spec.section not in data:
                raise BundleError(f"{path}: {kind} bundle without its {spec.section!r} section")
            config = parse_section(spec.config, data[spec.section], f"{path}: {spec.section}")
        manifest = Manifest(
            path=bundle,
            kind=kind,
            graphs=graphs,
            features=FeatureParams(**data["features"]),
            tokenizer=data["tokenizer"],
            tokens=tokens,
            decoder=decoder,
            source=data.get("source", ""),
            extra=data.get("extra", {}),
            config=config,
        )
    except (KeyError, TypeError) as e:
        raise BundleError(f"{path}: malformed manifest ({type(e).__name__}: {e})") from None
    root = bundle.resolve()
    for name in (*graphs, "tokenizer"):
        file = bundle / (manifest.tokenizer if name == "tokenizer" else graphs[name].file)
        if not file.resolve().is_relative_to(root):
            raise BundleError(f"{path}: {name} file {file.name!r} lies outside the bundle directory; refused")
        if not file.is_file():
            raise BundleError(f"{file}: {name} file missing from the bundle")
    if verify:
        want = data.get("tokenizer_sha256")
        if want is not None and sha256_file(bundle / manifest.tokenizer) != want:
            raise BundleError(
                f"{bundle / manifest.tokenizer}: checksum mismatch for the tokenizer (corrupt or replaced)"
            )
        for name, g in graphs.items():
            digest = sha256_file(bundle / g.file)
            if digest != g.sha256:
                raise BundleError(f"{bundle / g.file}: checksum mismatch for {name} graph (corrupt or replaced file)")
    return manifest
