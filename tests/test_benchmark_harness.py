"""The benchmark harness and `edge-alm bench` on the tiny model (one engine, two clips)."""

import json
import os
import subprocess
import sys

import numpy as np
import soundfile as sf

from benchmarks.compare import run_engines
from benchmarks.report import metrics, write_report


def _clips(tmp_path):
    rng = np.random.default_rng(0)
    index = []
    for i, kind in enumerate(("clean", "nospeech")):
        x = (rng.standard_normal(16000 + 8000 * i) * (0.1 if kind == "clean" else 0.0)).astype(np.float32)
        sf.write(tmp_path / f"c{i}.wav", x, 16000)
        index.append(
            {
                "file": f"c{i}.wav",
                "text": "hello world" if kind == "clean" else "",
                "kind": kind,
                "duration": len(x) / 16000,
            }
        )
    (tmp_path / "index.json").write_text(json.dumps(index))
    return index


def test_compare_harness_runs_one_engine(tiny_bundle, tmp_path):
    clips = _clips(tmp_path)
    spec = {"tiny": {"kind": "edge-alm", "model": str(tiny_bundle), "threads": 1}}
    run = run_engines(spec, clips, tmp_path, repeats=2)
    rows = run["tiny"]["clips"]
    assert len(rows) == 2 and all(len(r["walls"]) == 2 for r in rows)
    assert rows[0]["wall_min_ms"] <= rows[0]["wall_median_ms"]
    assert run["tiny"]["peak_rss_mb"] > 10 and run["tiny"]["size_mb"] > 0
    m = metrics(run, clips)["tiny"]
    assert m["rtf"] > 0 and m["nospeech_with_text"] == 0 and m["wer"] >= 0
    data = {
        "machine": {"cpu": "x", "cores": 1, "machine": "x", "python": "3", "versions": {}},
        "repeats": 2,
        "baseline": "tiny",
        "clips": clips,
        "runs": {"1": run},
    }
    text = write_report(data, tmp_path)
    assert "| tiny |" in text and (tmp_path / "latency_1t.png").stat().st_size > 1000


def test_bench_cli_device_only(tiny_bundle, tmp_path):
    _clips(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_alm.cli",
            "bench",
            str(tiny_bundle),
            "--clips",
            str(tmp_path),
            "--threads",
            "1",
            "--json",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    s = report["runs"][0]
    assert s["clips"] == 2 and s["rtf"] > 0 and s["wer"] is not None and s["threads"] == 1
    assert report["machine"]["cores"] >= 1 and report["machine"]["onnxruntime"]
    written = sorted(p.suffix for p in (tmp_path / "out").iterdir())
    assert written == [".json", ".md"]


def test_bench_with_no_clips_argument_uses_the_packaged_clips(tiny_bundle, tmp_path):
    """On a bare device install `edge-alm bench BUNDLE` must work: 4 clips ship in the package,
    and it runs 1 thread and every core, writing a report with the machine's identity."""
    proc = subprocess.run(
        [sys.executable, "-m", "edge_alm.cli", "bench", str(tiny_bundle), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (js,) = tmp_path.glob("bench-*-*.json")
    report = json.loads(js.read_text())
    assert [r["clips"] for r in report["runs"]] == [4] * len(report["runs"])
    assert report["runs"][0]["threads"] == 1 and report["runs"][-1]["threads"] == os.cpu_count()
    assert report["runs"][0]["wer"] is not None  # references come with the clips
    md = js.with_suffix(".md").read_text()
    assert "| threads |" in md and report["machine"]["cpu"] in md


def test_bench_cli_missing_dir(tiny_bundle, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "edge_alm.cli", "bench", str(tiny_bundle), "--clips", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "clips directory not found" in proc.stderr and "Traceback" not in proc.stderr


def test_board_reports_merge_into_one_table(tiny_bundle, tmp_path):
    from benchmarks.boards import rows, table

    proc = subprocess.run(
        [sys.executable, "-m", "edge_alm.cli", "bench", str(tiny_bundle), "--threads", "1", "--json", "--out", ""],
        capture_output=True,
        text=True,
    )
    a = json.loads(proc.stdout)
    b = json.loads(proc.stdout)
    b["machine"].update(board="Raspberry Pi 5 Model B Rev 1.0", arch="aarch64")
    text = table(rows([a, b]))
    assert "Raspberry Pi 5" in text and "aarch64" in text and text.count("\n") == 4
