"""Shared fixtures: tiny random Whisper bundles (seconds to build), the default bundle,
and speech synthesised with espeak-ng from known sentences."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = ROOT / "models" / "whisper-base-int8"
DEFAULT_BD_BUNDLE = ROOT / "models" / "whisper-base-blockdecoder-int8"
DEFAULT_BD_WEIGHTS = ROOT / "weights" / "whisper-base-blockdecoder-4+2.npz"

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get home tonight.",
    "The weather is cold and the wind is strong today.",
    "She bought three apples and a loaf of bread.",
    "We will meet at the station at nine o'clock.",
    "Open the window and let the fresh air in.",
    "My brother plays the guitar every evening.",
    "The train to London leaves in ten minutes.",
    "Water boils at one hundred degrees.",
    "Turn off the lights before you leave the room.",
    "The children are playing in the garden.",
    "I would like a cup of coffee with milk.",
]
# espeak-ng variants whisper-base reads best (measured: plain en-us / en-gb give 16-20 % WER
# on these sentences with either window, +f3 and +klatt2 give 3-4 %)
VOICES = ["en-us+f3", "en-us+klatt2"]


def tiny_whisper_dir(out: Path, seed: int = 0, **overrides) -> Path:
    """A randomly initialised small Whisper with the real tokenizer and special ids."""
    import torch
    from edge_alm.export.whisper_weights import (
        PART_PACKAGES,
        _package_data,
        generation_config_from_ct2,
        whisper_tokenizer_json,
    )
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    data = _package_data(PART_PACKAGES[0])
    out.mkdir(parents=True, exist_ok=True)
    whisper_tokenizer_json(data / "tokenizer.json", out / "tokenizer.json")
    gen = generation_config_from_ct2(json.loads((data / "config.json").read_text()), out / "tokenizer.json")
    cfg = dict(
        vocab_size=51865,
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=64,
        decoder_start_token_id=gen["decoder_start_token_id"],
        eos_token_id=gen["eos_token_id"],
        pad_token_id=gen["eos_token_id"],
        bos_token_id=gen["eos_token_id"],
    )
    cfg.update(overrides)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(WhisperConfig(**cfg))
    model.save_pretrained(out)
    (out / "generation_config.json").write_text(json.dumps(gen))
    return out


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> Path:
    return tiny_whisper_dir(tmp_path_factory.mktemp("tiny_hf"))


@pytest.fixture(scope="session")
def tiny_bundle(tiny_hf, tmp_path_factory) -> Path:
    from edge_alm.export.whisper_export import build_whisper_bundle

    return build_whisper_bundle(tiny_hf, tmp_path_factory.mktemp("tiny_bundle"), quantize="fp32")


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    """A private copy of the tiny bundle that a test may break."""
    dst = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, dst, ignore=shutil.ignore_patterns(".cache"))
    return dst


@pytest.fixture(scope="session")
def default_bundle() -> Path:
    """The default whisper-base int8 bundle; built here when `make` has not built it."""
    if not (DEFAULT_BUNDLE / "manifest.json").is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_alm.cli",
                "export",
                "whisper",
                "--out",
                str(DEFAULT_BUNDLE),
                "--cache",
                str(ROOT / ".cache"),
            ],
            check=True,
            cwd=ROOT,
        )
    return DEFAULT_BUNDLE


@pytest.fixture(scope="session")
def default_blockdecoder(default_bundle) -> Path:
    """The BlockDecoder student bundle, built from the committed weights when `make` has not."""
    if not (DEFAULT_BD_BUNDLE / "manifest.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "edge_alm.cli", "export", "blockdecoder", "--student", str(DEFAULT_BD_WEIGHTS)]
            + ["--out", str(DEFAULT_BD_BUNDLE), "--cache", str(ROOT / ".cache")],
            check=True,
            cwd=ROOT,
        )
    return DEFAULT_BD_BUNDLE


@pytest.fixture(scope="session")
def default_model(default_bundle):
    from edge_alm import EdgeALM

    return EdgeALM.load(default_bundle, threads=2)


def espeak(text: str, path: Path, voice: str = VOICES[0], speed: int = 140) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


@pytest.fixture(scope="session")
def speech_clips(tmp_path_factory) -> list[tuple[Path, str]]:
    """(wav, reference text) for every sentence, alternating voices."""
    d = tmp_path_factory.mktemp("speech")
    return [(espeak(s, d / f"s{i:02d}.wav", VOICES[i % 2]), s) for i, s in enumerate(SENTENCES)]


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32")
    return data, sr


def tiny_llama_dir(out: Path, seed: int = 0, **overrides) -> Path:
    """A randomly initialised small Llama with grouped-query heads and SmolLM2's vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = dict(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rope_theta=10000.0,
        tie_word_embeddings=True,
    )
    cfg.update(overrides)
    torch.manual_seed(seed)
    LlamaForCausalLM(LlamaConfig(**cfg)).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def smollm2_tokenizer() -> Path:
    from edge_alm.export.alm_export import smollm2_tokenizer_json

    return smollm2_tokenizer_json(ROOT / ".cache")


@pytest.fixture(scope="session")
def tiny_alm(tiny_hf, smollm2_tokenizer, tmp_path_factory):
    """(parts, bundle): a tiny whisper encoder + pooled adapter (p=2) + tiny Llama, fp32."""
    from edge_alm.export.alm_export import build_alm_bundle, whisper_alm_parts

    lm = tiny_llama_dir(tmp_path_factory.mktemp("tiny_llama"))
    parts = whisper_alm_parts(tiny_hf, lm, smollm2_tokenizer, pool=2)
    return parts, build_alm_bundle(parts, tmp_path_factory.mktemp("tiny_alm"), quantize="fp32")


DEFAULT_ALM_BUNDLE = ROOT / "models" / "smollm2-whisper-alm-int8"


@pytest.fixture(scope="session")
def default_alm() -> Path:
    """The default alm bundle (whisper-base encoder + adapter + SmolLM2-135M-Instruct, int8),
    built here when `make` has not built it."""
    if not (DEFAULT_ALM_BUNDLE / "manifest.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "edge_alm.cli", "export", "alm", "--out", str(DEFAULT_ALM_BUNDLE)]
            + ["--cache", str(ROOT / ".cache")],
            check=True,
            cwd=ROOT,
        )
    return DEFAULT_ALM_BUNDLE


QA_WEIGHTS = ROOT / "weights" / "alm-qa-smollm2-whisper-base.npz"
QA_BUNDLE = ROOT / "models" / "smollm2-whisper-qa-int8"
