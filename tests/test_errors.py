"""Bad input gives one clear line, through the API and through the CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from edge_alm import AudioError, BundleError, EdgeALM


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edge_alm.cli", *map(str, args)], capture_output=True, text=True)


def assert_one_line_error(proc, *needles):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def tiny_model(tiny_bundle):
    return EdgeALM.load(tiny_bundle, threads=1)


def test_empty_audio_gives_empty_result(tiny_model):
    r = tiny_model.transcribe((np.zeros(0, np.float32), 16000))
    assert r.text == "" and r.segments == [] and r.duration == 0.0


def test_nan_audio_is_rejected(tiny_model, tmp_path):
    x = np.zeros(16000, np.float32)
    x[100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        tiny_model.transcribe((x, 16000))


def test_bad_shape_is_rejected(tiny_model):
    with pytest.raises(AudioError, match="shaped"):
        tiny_model.transcribe((np.zeros((2, 3, 4), np.float32), 16000))


def test_unreadable_file(tiny_model, tmp_path, tiny_bundle):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio")
    with pytest.raises(AudioError, match="bad.wav: cannot read audio"):
        tiny_model.transcribe(bad)
    assert_one_line_error(cli("transcribe", bad, "--model", tiny_bundle), "bad.wav", "cannot read audio")


def test_missing_file_cli(tiny_bundle, tmp_path):
    assert_one_line_error(cli("transcribe", tmp_path / "nope.wav", "--model", tiny_bundle), "nope.wav", "not found")


def test_nan_file_cli(tiny_bundle, tmp_path):
    x = np.zeros(8000, np.float32)
    x[5] = np.inf
    sf.write(tmp_path / "inf.wav", x, 16000, subtype="FLOAT")
    assert_one_line_error(cli("transcribe", tmp_path / "inf.wav", "--model", tiny_bundle), "inf.wav", "NaN or Inf")


def test_missing_graph(bundle_copy):
    (bundle_copy / "decoder.onnx").unlink()
    with pytest.raises(BundleError, match="decoder.onnx: decoder file missing"):
        EdgeALM.load(bundle_copy)
    assert_one_line_error(cli("info", bundle_copy), "decoder.onnx", "missing")


def test_corrupt_graph(bundle_copy, tmp_path):
    p = bundle_copy / "encoder.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="encoder.onnx: checksum mismatch"):
        EdgeALM.load(bundle_copy)
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    assert_one_line_error(cli("transcribe", wav, "--model", bundle_copy), "encoder.onnx", "checksum")


def test_unknown_manifest_version(bundle_copy):
    m = json.loads((bundle_copy / "manifest.json").read_text())
    m["version"] = 99
    (bundle_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="manifest version 99"):
        EdgeALM.load(bundle_copy)
    assert_one_line_error(cli("info", bundle_copy), "manifest version 99")


def test_not_a_bundle(tmp_path):
    assert_one_line_error(cli("info", tmp_path), "manifest.json missing")
    assert_one_line_error(cli("info", tmp_path / "absent"), "not found")


def test_unknown_language(tiny_bundle, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1, 16000)
    assert_one_line_error(cli("transcribe", wav, "--model", tiny_bundle, "--language", "xx"), "language 'xx'")


def test_many_files_one_bad_keeps_going(tiny_bundle, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros(1600, np.float32), 16000)
    proc = cli("transcribe", good, tmp_path / "missing.wav", good, "--model", tiny_bundle, "--format", "jsonl")
    assert proc.returncode == 1
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["file"] for r in rows] == [str(good), str(good)]
    assert {"file", "text", "segments", "timings"} <= set(rows[0])
    assert "missing.wav" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_training_init_weights_cli(tmp_path):
    """`export alm-qa --qa-init` names the missing file before any corpus is built."""
    proc = cli(
        "export", "alm-qa", "--qa-init", tmp_path / "v4.npz", "--work-alm", tmp_path / "work", "--out", tmp_path / "b"
    )
    assert_one_line_error(proc, "v4.npz", "not found")
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("spec", ["loudness", "loudness=x", "volume=4", "louder=0"])
def test_bad_task_weight_cli(tmp_path, spec):
    """`export alm-qa --qa-task-weight` takes TASK=W with a known task and W > 0, checked first."""
    proc = cli("export", "alm-qa", "--qa-task-weight", spec, "--work-alm", tmp_path / "work", "--out", tmp_path / "b")
    assert_one_line_error(proc, spec, "TASK=W" if "=" not in spec or spec.endswith("x") else "task must be")
    assert not (tmp_path / "work").exists()


def test_bad_lora_targets_cli(tmp_path):
    proc = cli(
        "export", "alm-qa", "--qa-lora-targets", "q_proj,ffn", "--work-alm", tmp_path / "work", "--out", tmp_path / "b"
    )
    assert_one_line_error(proc, "--qa-lora-targets", "'ffn'")
    assert not (tmp_path / "work").exists()
