"""Training data for BlockDecoder distillation, made offline.

Text: Debian's `fortunes` collections (tens of thousands of varied English lines). Audio:
espeak-ng and flite voices at random speeds, volumes and noise levels. Labels: what the
teacher whisper bundle decodes (greedy, timestamp mode: exactly the runtime's task). The
teacher encoder's audio K/V for the Merger's layers are cached per clip (fp16 .npz), so
training never runs the audio encoder.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

FORTUNES = Path("/usr/share/games/fortunes")
ESPEAK_VOICES = ["en-us", "en-gb", "en-us+f3", "en-us+klatt2", "en-us+m1", "en-us+m3", "en-gb+f2", "en-us+f2"]
FLITE_VOICES = ["slt", "rms", "awb", "kal"]
MAX_SECONDS = 9.0  # clips up to 9 s share the 10 s encoder window (500 audio positions)


def fortune_sentences(min_words: int = 4, max_words: int = 22) -> list[str]:
    if not FORTUNES.is_dir():
        raise FileNotFoundError(f"{FORTUNES} missing: apt-get install fortunes fortunes-min")
    out = []
    for f in sorted(FORTUNES.iterdir()):
        if f.suffix or not f.is_file():
            continue
        for entry in f.read_text(errors="ignore").split("\n%\n"):
            lines = [ln for ln in entry.splitlines() if not ln.strip().startswith(("--", "-- "))]
            text = re.sub(r"\s+", " ", " ".join(lines)).strip()
            words = text.split()
            if min_words <= len(words) <= max_words and re.fullmatch(r"[A-Za-z0-9 ,.'?!;:\-]+", text):
                out.append(text)
    return sorted(set(out))


def synth(text: str, rng: random.Random, tmp: Path) -> np.ndarray:
    wav = tmp / "t.wav"
    if shutil.which("flite") and rng.random() < 0.3:
        cmd = ["flite", "-voice", rng.choice(FLITE_VOICES), "-t", text, "-o", str(wav)]
    else:
        cmd = ["espeak-ng", "-v", rng.choice(ESPEAK_VOICES), "-s", str(rng.randint(125, 185)), "-w", str(wav), text]
    subprocess.run(cmd, check=True, capture_output=True)
    x, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    x = soxr.resample(x.mean(axis=1), sr, 16000).astype(np.float32)
    x *= rng.uniform(0.3, 1.0) / max(1e-3, float(np.abs(x).max()))  # volume
    if rng.random() < 0.5:  # noise at 10-30 dB SNR
        noise = np.random.default_rng(rng.randrange(1 << 30)).standard_normal(len(x)).astype(np.float32)
        snr = rng.uniform(10, 30)
        x += noise * np.sqrt(np.mean(x**2) / 10 ** (snr / 10))
    lead = np.zeros(int(16000 * rng.uniform(0.05, 0.5)), np.float32)
    return np.concatenate([lead, x, np.zeros(4000, np.float32)])


def build_corpus(teacher_bundle: str | Path, out: str | Path, n_clips: int, layers: list[int], seed: int = 0) -> Path:
    """Synthesise, label with the teacher and cache audio K/V; resumes where it stopped."""
    from edge_alm.runtime.features import log_mel
    from edge_alm.runtime.seq2seq import DecodeOptions
    from edge_alm.runtime.transcribe import TranscribeOptions

    from edge_alm import EdgeALM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "index.jsonl"
    done = index_path.read_text().count("\n") if index_path.is_file() else 0
    teacher = EdgeALM.load(teacher_bundle)
    tr, m = teacher.transcriber, teacher.model
    prompt = teacher.tokenizer.prompt("en", "transcribe", timestamps=True)
    sentences = fortune_sentences()
    rng = random.Random(seed)
    rng.shuffle(sentences)
    with tempfile.TemporaryDirectory() as tmp, open(index_path, "a") as index:
        bar = tqdm(total=n_clips, initial=done, desc="corpus", unit="clip")
        i = done
        while i < n_clips and i < len(sentences):
            text = sentences[i]
            crng = random.Random(seed * 1_000_003 + i)
            audio = synth(text, crng, Path(tmp))[: int(MAX_SECONDS * 16000)]
            win = tr.window_samples(len(audio), TranscribeOptions())
            cross = m.encode(log_mel(audio, tr.params, n_samples=win))
            r = m.decode(
                cross,
                prompt,
                DecodeOptions(max_new_tokens=int(7 * MAX_SECONDS) + 24, max_timestamp=round(win / 16000 / 0.02)),
            )
            name = f"c{i:06d}.npz"
            np.savez(out / name, k=cross[0][layers, 0].astype(np.float16), v=cross[1][layers, 0].astype(np.float16))
            row = {
                "file": name,
                "text": text,
                "tokens": prompt + r.tokens + [m.special.eot],
                "ok": r.finished,
                "teacher": teacher.tokenizer.decode(r.tokens).strip(),
            }
            index.write(json.dumps(row) + "\n")
            index.flush()
            i += 1
            bar.update()
        bar.close()
    return out


def load_corpus(path: str | Path) -> list[dict]:
    rows = [json.loads(line) for line in (Path(path) / "index.jsonl").read_text().splitlines()]
    return [r for r in rows if r["ok"] and len(r["tokens"]) > 4]
