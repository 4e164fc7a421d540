"""Long files: Whisper's seek windows against VAD-packed windows (TranscribeOptions.long_form).

Each file joins the 12 test sentences twice, in four espeak-ng voices at random speeds and
levels (-14 to 0 dB), with 0.3-5 s pauses and a -50 dBFS noise floor (about 2 minutes).
Reported per mode: pooled WER, sentences lost (under half their words found), time.

    python -m benchmarks.long_form --files 8 --out benchmarks/results/x86-2core
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import jiwer
import numpy as np
import soundfile as sf
import soxr
from whisper_normalizer.english import EnglishTextNormalizer

from edge_alm.model import EdgeALM

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import SENTENCES  # noqa: E402

VOICES = ["en-us+f3", "en-us+klatt2", "en-gb", "en-us+m1"]
SR = 16000


def long_file(seed: int, tmp: Path) -> tuple[np.ndarray, list[str]]:
    g = np.random.default_rng(seed)
    sentences = SENTENCES * 2
    parts = []
    for i, s in enumerate(sentences):
        wav = tmp / f"{seed}-{i}.wav"
        voice, speed = VOICES[(i + seed) % 4], int(g.uniform(120, 190))
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), s], check=True)
        x, sr = sf.read(str(wav), dtype="float32")
        parts += [soxr.resample(x, sr, SR).astype(np.float32) * g.uniform(0.2, 1.0)]
        parts += [np.zeros(int(g.uniform(0.3, 5.0) * SR), np.float32)]
    audio = np.concatenate(parts)
    return audio + 0.003 * g.standard_normal(len(audio)).astype(np.float32), sentences


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/whisper-base-int8")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    norm = EnglishTextNormalizer()
    model = EdgeALM.load(args.model, threads=args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.files):
            audio, sentences = long_file(seed, Path(tmp))
            for mode in ("seek", "vad"):
                r = model.transcribe((audio, SR), long_form=mode)
                got = norm(r.text).split()
                lost = sum(sum(w in got for w in norm(s).split()) < 0.5 * len(norm(s).split()) for s in sentences)
                row = {
                    "file": seed,
                    "seconds": round(len(audio) / SR, 1),
                    "mode": mode,
                    "ref": norm(" ".join(sentences)),
                    "hyp": norm(r.text),
                    "lost": int(lost),
                    "ms": r.timings["total_ms"],
                    "windows": r.timings["windows"],
                }
                rows.append(row)
                wer = 100 * jiwer.wer(row["ref"], row["hyp"])
                print(f"file {seed} ({row['seconds']} s) {mode:4s}: WER {wer:5.1f} %, lost {lost}, {row['ms']:.0f} ms")
    lines = ["| long_form | WER (pooled) | sentences lost | time s | files |", "|---|---|---|---|---|"]
    for mode in ("seek", "vad"):
        rs = [r for r in rows if r["mode"] == mode]
        wer = 100 * jiwer.wer([r["ref"] for r in rs], [r["hyp"] for r in rs])
        lost = sum(r["lost"] for r in rs)
        lines.append(
            f"| {mode} | {wer:.1f} % | {lost} of {24 * len(rs)} | {sum(r['ms'] for r in rs) / 1000:.1f} | {len(rs)} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "long_form.md").write_text("\n".join(lines) + "\n")
    (args.out / "long_form.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
