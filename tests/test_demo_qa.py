"""The audio-QA demo asks only what the evaluation report says the model answers well, and prints
each answer with its held-out score (run on the tiny random alm bundle)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import soundfile as sf


def test_demo_asks_the_well_scored_tasks_only(tiny_alm, tmp_path):
    _, bundle = tiny_alm
    t = np.arange(32000) / 16000
    sf.write(tmp_path / "clip.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    scores = {"with_audio": {"sound": {"accuracy": 0.97}, "gender": {"accuracy": 0.55}, "mos_expected": {"mae": 0.3}}}
    scores["with_audio"]["quality_ref_expected"] = {"mae": 0.9}  # the double-ended rating: labelled by PESQ
    scores["with_audio"]["noisiness_expected"] = {"mae": 0.4}  # DNSMOS BAK, asked of the clip and its noisy copy
    scores["with_audio"]["intelligibility"] = {"mae": 0.2}  # STOI: 0-1, so an error of 0.2 is poor
    (tmp_path / "s.json").write_text(json.dumps(scores))
    cmd = [sys.executable, "-m", "edge_alm.demo_qa", str(bundle), str(tmp_path / "clip.wav")]
    out = subprocess.run(cmd + ["--scores", str(tmp_path / "s.json")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    asked = [line for line in out.stdout.splitlines() if line.startswith("[")]
    assert len(asked) == 5  # the sound question, and two overall and two noise ratings
    assert "held-out accuracy 97 %" in out.stdout and "held-out MAE 0.30 against DNSMOS OVRL" in out.stdout
    assert "held-out MAE 0.40 against DNSMOS BAK" in out.stdout
    assert "intelligibility (held-out MAE 0.20 against STOI)" in out.stdout
    assert "Is the speaker male or female?" not in out.stdout
    assert "not asked" in out.stdout and "gender (held-out accuracy 55 %)" in out.stdout
    assert "quality_ref_expected (held-out MAE 0.90 against wide-band PESQ)" in out.stdout
