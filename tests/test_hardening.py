"""Bad inputs, options and bundle faults found by trying edge-alm as a new user would: each gets
one clear line (API: an exception; CLI: `error: ...`, exit 1), nothing hangs, nothing is lost
silently, and a bundle cannot reach outside its own directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from edge_alm import AudioError, BundleError, EdgeALM, StreamOptions
from edge_alm.audio import TruncatedAudioWarning, load_audio
from tests.test_errors import assert_one_line_error, cli


def sine(seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_model(tiny_bundle):
    return EdgeALM.load(tiny_bundle, threads=1)


# --- one normaliser for arrays, files and streams ----------------------------------------------

LAYOUTS = [
    ("int16 (N, 2)", lambda x: np.stack([x, x], 1), np.int16, 32767),
    ("int16 (2, N)", lambda x: np.stack([x, x], 0), np.int16, 32767),
    ("int16 (N, 1)", lambda x: x[:, None], np.int16, 32767),
    ("int32 (N, 2)", lambda x: np.stack([x, x], 1), np.int32, 2**31 - 1),
    ("uint8 (N,)", lambda x: x, np.uint8, None),
    ("float32 (2, N)", lambda x: np.stack([x, x], 0), np.float32, 1),
]


@pytest.mark.parametrize("name,shape,dtype,scale", LAYOUTS, ids=[x[0] for x in LAYOUTS])
def test_integer_and_multichannel_arrays_are_scaled_like_files(name, shape, dtype, scale):
    x = sine()
    ints = np.round(x * 127 + 128).astype(np.uint8) if dtype == np.uint8 else (x * scale).astype(dtype)
    got = load_audio((shape(ints), 16000))
    assert got.shape == x.shape and np.abs(got - x).max() < 1e-2, name


@pytest.mark.parametrize("rate", [None, "abc", 0, -5, 44100.5, True])
def test_bad_sample_rates_are_audio_errors(tiny_model, rate):
    with pytest.raises(AudioError, match="sample rate"):
        tiny_model.transcribe((sine(), rate))


def test_bad_audio_arguments(tiny_model, tmp_path, tiny_bundle):
    with pytest.raises(AudioError, match="audio must be a path"):
        tiny_model.transcribe(None)
    with pytest.raises(AudioError, match="is a directory"):
        tiny_model.transcribe(tmp_path)
    with pytest.raises(AudioError, match="unsupported sample type complex"):
        tiny_model.transcribe((sine().astype(np.complex64), 16000))
    assert_one_line_error(cli("transcribe", tmp_path, "--model", tiny_bundle), "is a directory")
    assert_one_line_error(cli("info", tiny_bundle / "manifest.json"), "is a file")


def test_empty_and_truncated_wavs(tiny_model, tmp_path, tiny_bundle):
    sf.write(tmp_path / "full.wav", sine(2.0), 16000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "header.wav").write_bytes(data[:44])
    r = tiny_model.transcribe(tmp_path / "header.wav")
    assert r.duration == 0 and r.timings["rtf"] == 0.0  # was 43,774
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    with pytest.warns(TruncatedAudioWarning, match="announces 2.00 s, the file holds 1.00 s"):
        tiny_model.transcribe(tmp_path / "cut.wav")
    proc = cli("transcribe", tmp_path / "cut.wav", "--model", tiny_bundle)
    assert proc.returncode == 0 and "warning: " in proc.stderr and "truncated WAV" in proc.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny_model.transcribe(tmp_path / "full.wav")  # an intact file warns nothing


# --- option ranges -----------------------------------------------------------------------------

BAD_OPTIONS = [
    ({"beam_size": 0}, "beam size must be 1 to 16"),
    ({"beam_size": -1}, "beam size"),
    ({"beam_size": 1000}, "beam size"),
    ({"task": "bogus"}, "task must be"),
    ({"window": "5s"}, "window must be"),
    ({"temperatures": ()}, "temperatures must be"),
]


@pytest.mark.parametrize("opts,needle", BAD_OPTIONS, ids=[str(o) for o, _ in BAD_OPTIONS])
def test_bad_transcribe_options(tiny_model, opts, needle):
    with pytest.raises(ValueError, match=needle):
        tiny_model.transcribe((sine(), 16000), **opts)
    with pytest.raises(ValueError, match=needle):
        tiny_model.stream(**opts)


def test_bad_options_in_the_cli(tiny_bundle, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, sine(), 16000)
    assert_one_line_error(cli("transcribe", wav, "--model", tiny_bundle, "--beam", "1000"), "beam size")
    assert_one_line_error(cli("transcribe", wav, "--model", tiny_bundle, "--beam", "0"), "beam size")
    assert_one_line_error(cli("transcribe", wav, "--model", tiny_bundle, "--threads", "5000"), "threads must be")
    for flag, value, needle in [
        ("--min-silence", "0", "min_silence_s must be positive"),
        ("--min-silence", "-1", "min_silence_s"),
        ("--partial-interval", "-1", "partial_interval_s"),
        ("--end-confidence", "1.5", "end_confidence must be from 0 to 1"),
        ("--text-end-confidence", "2", "text_end_confidence must be from 0 to 1"),
        ("--text-weight", "-0.5", "text_weight must be from 0 to 1"),
    ]:
        proc = cli("listen", "--model", tiny_bundle, "--input", wav, flag, value)
        assert_one_line_error(proc, needle)


def test_stream_options_are_checked():
    with pytest.raises(ValueError, match="min_silence_s"):
        StreamOptions(min_silence_s=0)
    with pytest.raises(ValueError, match="re-decodes on every chunk"):
        StreamOptions(partial_interval_s=0.01)


@pytest.mark.slow
def test_block_size_out_of_range_is_an_error_not_a_hang(default_blockdecoder, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, sine(), 16000)
    for k in ("-1", "0", "9", "100"):
        for beam in ("1", "2"):
            proc = subprocess.run(
                [sys.executable, "-m", "edge_alm.cli", "transcribe", str(wav), "--model", str(default_blockdecoder)]
                + ["--block-size", k, "--beam", beam],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert_one_line_error(proc, "block_size must be 1 to 8")
    with pytest.raises(ValueError, match="block_size must be 1 to 8"):
        EdgeALM.load(default_blockdecoder, block_size=0)


# --- bundles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../outside/enc.onnx", "/etc/passwd"])
def test_manifest_paths_outside_the_bundle_are_refused(bundle_copy, tmp_path, path):
    (tmp_path / "outside").mkdir(exist_ok=True)
    shutil.copy(bundle_copy / "encoder.onnx", tmp_path / "outside" / "enc.onnx")
    m = json.loads((bundle_copy / "manifest.json").read_text())
    m["graphs"]["encoder"]["file"] = path
    (bundle_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="lies outside the bundle directory"):
        EdgeALM.load(bundle_copy)
    assert not (tmp_path / "outside" / ".cache").exists()


def test_tokenizer_is_checksummed(bundle_copy):
    tok = json.loads((bundle_copy / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    a, b = list(vocab)[100:102]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (bundle_copy / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(BundleError, match="tokenizer.json: checksum mismatch"):
        EdgeALM.load(bundle_copy)


def test_optimized_graph_cache_is_verified_and_rebuilt(bundle_copy, tiny_model):
    want = tiny_model.transcribe((sine(), 16000)).text
    EdgeALM.load(bundle_copy, threads=1)  # writes the cache
    cache = bundle_copy / ".cache"
    enc = next(cache.glob("encoder.*.optimized.onnx"))
    dec = next(cache.glob("decoder.*.optimized.onnx"))
    shutil.copy(dec, enc)  # another graph's cache in the encoder's place
    assert EdgeALM.load(bundle_copy, threads=1).transcribe((sine(), 16000)).text == want
    enc.write_bytes(enc.read_bytes()[:1000])  # truncated
    assert EdgeALM.load(bundle_copy, threads=1).transcribe((sine(), 16000)).text == want
    assert EdgeALM.load(bundle_copy, threads=1, verify=False).transcribe((sine(), 16000)).text == want
    src = bundle_copy / "decoder.onnx"
    src.write_bytes(src.read_bytes()[: src.stat().st_size // 2])  # cut in half: the cache must not hide it
    with pytest.raises(BundleError, match="decoder.onnx"):
        EdgeALM.load(bundle_copy, threads=1, verify=False)


# --- bench -------------------------------------------------------------------------------------


def test_bench_input_errors(tiny_bundle, tmp_path):
    sf.write(tmp_path / "a.wav", sine(), 16000)
    (tmp_path / "index.json").write_text(json.dumps([{"text": "hello"}]))
    assert_one_line_error(cli("bench", tiny_bundle, "--clips", tmp_path), "index.json", "'file'")
    (tmp_path / "index.json").write_text("{not json")
    assert_one_line_error(cli("bench", tiny_bundle, "--clips", tmp_path), "index.json", "not valid JSON")
    (tmp_path / "index.json").unlink()
    assert_one_line_error(cli("bench", tiny_bundle, "--clips", tmp_path, "--repeats", "0", "--out", ""), "repeats must")


# --- the alm kind --------------------------------------------------------------------------------

ALM_BAD = [
    ({"temperature": -1}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"top_k": -2}, "top_k"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"beam_size": 100}, "beam size"),
]


@pytest.mark.parametrize("opts,needle", ALM_BAD, ids=[str(o) for o, _ in ALM_BAD])
def test_alm_option_ranges(tiny_alm, opts, needle):
    model = EdgeALM.load(tiny_alm[1], threads=1)
    with pytest.raises(ValueError, match=needle):
        model.ask("Why?", audio=(sine(), 16000), **opts)


def test_alm_bad_options_and_audio_in_the_cli(tiny_alm, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, sine(), 16000)
    assert_one_line_error(cli("ask", "--model", tiny_alm[1], "--audio", wav, "--top-p", "2", "Why?"), "top_p")
    assert_one_line_error(cli("ask", "--model", tiny_alm[1], "--audio", tmp_path, "Why?"), "is a directory")
