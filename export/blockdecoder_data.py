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


TOP_K = 8  # teacher log-probs kept per label position (soft targets for distillation)
_worker: dict = {}


def _init_worker(teacher_bundle: str, layers: list[int], seed: int, sentences: list[str]) -> None:
    from edge_alm import EdgeALM

    teacher = EdgeALM.load(teacher_bundle, threads=1)  # one thread per worker process
    _worker.update(teacher=teacher, layers=layers, seed=seed, sentences=sentences, tmp=tempfile.mkdtemp())


def _make_clip(i: int) -> tuple[str, dict, dict]:
    """Clip i: synthesise, encode, label greedily, and keep the teacher's top-K log-probs."""
    from edge_alm.runtime.features import log_mel
    from edge_alm.runtime.kv_cache import KVCache
    from edge_alm.runtime.logit_filters import log_softmax
    from edge_alm.runtime.seq2seq import DecodeOptions
    from edge_alm.runtime.transcribe import TranscribeOptions

    w = _worker
    teacher = w["teacher"]
    tr, m = teacher.transcriber, teacher.model
    prompt = teacher.tokenizer.prompt("en", "transcribe", timestamps=True)
    text = w["sentences"][i % len(w["sentences"])]  # past the end: same text, another voice
    crng = random.Random(w["seed"] * 1_000_003 + i)
    audio = synth(text, crng, Path(w["tmp"]))[: int(MAX_SECONDS * 16000)]
    win = tr.window_samples(len(audio), TranscribeOptions())
    cross = m.encode(log_mel(audio, tr.params, n_samples=win))
    r = m.decode(
        cross,
        prompt,
        DecodeOptions(max_new_tokens=int(7 * MAX_SECONDS) + 24, max_timestamp=round(win / 16000 / 0.02)),
    )
    tokens = prompt + r.tokens + [m.special.eot]
    shape = cross[0].shape  # (L, 1, H, S, Dh)
    cache = KVCache(shape[0], 1, shape[2], shape[4])
    logits = m.step(np.array([tokens[:-1]]), cache, cross)[0, len(prompt) - 1 :]  # rows predict labels
    lp = log_softmax(logits.astype(np.float64))
    top = np.argsort(-lp, axis=1)[:, :TOP_K]
    arrays = {
        "k": cross[0][w["layers"], 0].astype(np.float16),
        "v": cross[1][w["layers"], 0].astype(np.float16),
        "top_ids": top.astype(np.int32),
        "top_logp": np.take_along_axis(lp, top, axis=1).astype(np.float16),
    }
    row = {
        "file": f"c{i:06d}.npz",
        "text": text,
        "tokens": tokens,
        "ok": r.finished,
        "teacher": teacher.tokenizer.decode(r.tokens).strip(),
    }
    return row["file"], arrays, row


def build_corpus(
    teacher_bundle: str | Path, out: str | Path, n_clips: int, layers: list[int], seed: int = 0, workers: int = 2
) -> Path:
    """Synthesise, label with the teacher and cache audio K/V; resumes where it stopped."""
    import multiprocessing

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = out / "layers.json"  # which decoder layers' audio K/V the clips hold
    if meta.is_file() and not set(layers) <= set(json.loads(meta.read_text())):
        raise ValueError(f"{out} caches audio K/V of layers {meta.read_text()}, not {layers}: use another work dir")
    if meta.is_file():
        layers = json.loads(meta.read_text())  # keep every clip's shape the same
    else:
        meta.write_text(json.dumps(layers))
    index_path = out / "index.jsonl"
    done = index_path.read_text().count("\n") if index_path.is_file() else 0
    if done >= n_clips:
        return out
    sentences = fortune_sentences()
    random.Random(seed).shuffle(sentences)
    ctx = multiprocessing.get_context("fork")
    init = (str(teacher_bundle), layers, seed, sentences)
    with ctx.Pool(workers, _init_worker, init) as pool, open(index_path, "a") as index:
        clips = pool.imap(_make_clip, range(done, n_clips), chunksize=4)  # in order: resumable by count
        for name, arrays, row in tqdm(clips, total=n_clips, initial=done, desc="corpus", unit="clip"):
            np.savez(out / name, **arrays)
            index.write(json.dumps(row) + "\n")
            index.flush()
    return out


def load_corpus(path: str | Path) -> list[dict]:
    rows = [json.loads(line) for line in (Path(path) / "index.jsonl").read_text().splitlines()]
    return [r for r in rows if r["ok"] and len(r["tokens"]) > 4]
