"""Audio for the audio-QA corpus, every property known by construction: TTS speech (espeak-ng
and flite voices with known gender and rate), synthetic sounds (tones, beep trains, sirens,
noise colours, silence) and degradations with known parameters (noise at an SNR, clipping,
telephone band, dropouts, reverberation, low-bitrate MP3 and Opus, gain). All functions are deterministic given an rng.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SR = 16000


@dataclass(frozen=True)
class Voice:
    engine: str  # espeak | flite
    name: str  # espeak voice+variant, or a flite voice
    gender: str  # male | female


# espeak-ng's voice variants with a gender in their file (voices/!v/), each over five accents.
# Left out: variants that change the speaking rate by more than 10 % (Alicia, Andrea, anika,
# AnxiousAndy, Marco, antonio: the rate labels would be wrong) and robotic or whispering ones.
FEMALE_VARIANTS = ["f1", "f2", "f3", "f5", "aunty", "grandma", "linda", "steph"]
MALE_VARIANTS = [*(f"m{i}" for i in range(1, 9)), "Andy", "Denis", "Diogo", "Henrique", "Hugo", "Lee", "Storm"]
MALE_VARIANTS += ["croak", "michel", "miguel", "sandro", "victor"]
# "en", not "en-gb": espeak-ng 1.51 ignores a +variant after "en-gb" and speaks its default male
# voice (measured: "en-gb+f5" at 98 Hz, "en+f5" at 198 Hz), which mislabelled a fifth of the female clips.
ESPEAK_ACCENTS = ["en-us", "en", "en-gb-scotland", "en-029", "en-gb-x-rp"]
ESPEAK = [
    Voice("espeak", f"{accent}+{variant}", gender)
    for gender, variants in (("female", FEMALE_VARIANTS), ("male", MALE_VARIANTS))
    for variant in variants
    for accent in ESPEAK_ACCENTS
]
FLITE = [Voice("flite", "kal16", "male"), Voice("flite", "awb", "male"), Voice("flite", "slt", "female")]
# accent family of each voice (espeak-ng's language variant; flite's voices: awb is Scottish)
ACCENTS = {"en-us": "american", "en": "british", "en-gb-x-rp": "british", "en-gb-scotland": "scottish"}
ACCENTS |= {"en-029": "caribbean", "kal16": "american", "slt": "american", "rms": "american", "awb": "scottish"}


def accent_of(voice_name: str) -> str:
    """american | british | scottish | caribbean, from a Voice name such as "en+m3" or "awb"."""
    return ACCENTS[voice_name.split("+")[0]]


# never used in training, in any accent: the held-out set's voices (three of each gender)
HELD_OUT_VOICES = [
    Voice("flite", "rms", "male"),
    Voice("espeak", "en-gb-x-rp+f4", "female"),
    Voice("espeak", "en-us+klatt2", "male"),
    Voice("espeak", "en+Annie", "female"),
    Voice("espeak", "en-029+belinda", "female"),
    Voice("espeak", "en-us+travis", "male"),
]
RATES = {"slow": 115, "normal": 165, "fast": 235}  # espeak words per minute
FLITE_STRETCH = {"slow": 1.45, "normal": 1.0, "fast": 0.7}


def train_voices() -> list[Voice]:
    return ESPEAK + (FLITE if shutil.which("flite") else [])


def pick_voice(voices: list[Voice], rng: np.random.Generator) -> Voice:
    """A voice of either gender with equal chance (there are more male variants than female)."""
    gender = "female" if rng.random() < 0.5 else "male"
    same = [v for v in voices if v.gender == gender]
    return same[rng.integers(len(same))]


def speak(text: str, voice: Voice, rate: str) -> np.ndarray:
    """TTS at 16 kHz, mono float32, leading/trailing silence trimmed to 0.1 s."""
    if voice.engine == "espeak":
        cmd = ["espeak-ng", "-v", voice.name, "-s", str(RATES[rate]), "--stdout", text]
        data, sr = sf.read(io.BytesIO(subprocess.run(cmd, capture_output=True, check=True).stdout), dtype="float32")
    else:
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={FLITE_STRETCH[rate]}"]
            subprocess.run(cmd + ["-t", text, "-o", f.name], capture_output=True, check=True)
            data, sr = sf.read(f.name, dtype="float32")
    x = soxr.resample(data, sr, SR).astype(np.float32) if sr != SR else data
    loud = np.flatnonzero(np.abs(x) > 0.01)
    if loud.size:
        x = x[max(0, loud[0] - 1600) : loud[-1] + 1600]
    return normalise(x, -20.0)


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-9))


def normalise(x: np.ndarray, db: float) -> np.ndarray:
    return (x * 10 ** ((db - rms_db(x)) / 20)).astype(np.float32)


def noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """white | pink | brown noise, unit RMS."""
    w = rng.standard_normal(n)
    if kind != "white":
        spec = np.fft.rfft(w)
        f = np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)
        spec /= f ** (0.5 if kind == "pink" else 1.0)
        w = np.fft.irfft(spec, n)
    return (w / (np.std(w) + 1e-9)).astype(np.float32)


def tone(freq: float, seconds: float, level_db: float = -20.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = np.sin(2 * np.pi * freq * t) * np.minimum(1, np.minimum(t, t[::-1]) / 0.01)  # 10 ms fades
    return normalise(x.astype(np.float32), level_db)


def beeps(count: int, freq: float, rng: np.random.Generator) -> np.ndarray:
    parts = [np.zeros(int(rng.uniform(0.2, 0.6) * SR), np.float32)]
    for _ in range(count):
        parts += [tone(freq, rng.uniform(0.12, 0.35)), np.zeros(int(rng.uniform(0.2, 0.5) * SR), np.float32)]
    return np.concatenate(parts)


def siren(seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f = 700 + 400 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t)
    return normalise(np.sin(2 * np.pi * np.cumsum(f) / SR).astype(np.float32), -20.0)


def add_noise(x: np.ndarray, snr_db: float, kind: str, rng: np.random.Generator, babble: np.ndarray | None = None):
    if kind == "babble" and babble is not None:
        n = np.resize(babble, len(x)).astype(np.float32)
        n /= np.std(n) + 1e-9
    else:
        n = noise("white" if kind == "babble" else kind, len(x), rng)
    return (x + n * 10 ** ((rms_db(x) - snr_db) / 20)).astype(np.float32)


def clip_peaks(x: np.ndarray, keep: float) -> np.ndarray:
    """Hard clipping at `keep` of the peak."""
    top = keep * np.max(np.abs(x))
    return np.clip(x, -top, top).astype(np.float32)


def telephone(x: np.ndarray) -> np.ndarray:
    """300-3400 Hz band (FFT brick wall with short ramps)."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    gain = np.clip((f - 250) / 100, 0, 1) * np.clip((3500 - f) / 200, 0, 1)
    return normalise(np.fft.irfft(spec * gain, len(x)).astype(np.float32), rms_db(x))


def dropouts(x: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Zero 40 ms frames with probability `rate` (lost packets)."""
    y, frame = x.copy(), 640
    for i in range(0, len(x), frame):
        if rng.random() < rate:
            y[i : i + frame] = 0
    return y


def reverb(x: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    n = int(rt60 * SR)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    ir[0] = 1.0
    y = np.fft.irfft(np.fft.rfft(x, len(x) + n) * np.fft.rfft(ir, len(x) + n))[: len(x)]
    return normalise(y.astype(np.float32), rms_db(x))


# soundfile's (libsndfile's) lossy formats; compression 0.95-0.99 is about 20-30 kbps MP3 or 10-20 kbps
# Opus for 16 kHz speech (wide-band PESQ 2.6-3.9 on a clean espeak-ng sentence)
CODECS = {"mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS")}


def codec(x: np.ndarray, kind: str, compression: float) -> np.ndarray:
    """Encode and decode through a lossy codec (mp3 | opus) at a compression level in [0, 1)."""
    fmt, subtype = CODECS[kind]
    buf = io.BytesIO()
    sf.write(buf, x, SR, format=fmt, subtype=subtype, compression_level=compression)
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    return np.pad(y[: len(x)], (0, max(0, len(x) - len(y)))).astype(np.float32)  # the input's length (PESQ/STOI)


def sentence_pool(min_words: int = 5, max_words: int = 14) -> list[str]:
    """Plain English sentences from permissive text on this machine: the docstrings of Python's
    standard library (PSF licence) and, when installed, Debian's fortunes. Deduplicated, sorted."""
    import sysconfig

    texts: list[str] = []
    skip = {"test", "tests", "idlelib", "turtledemo", "lib2to3", "ensurepip", "site-packages", "pydoc_data"}
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if not skip & set(path.parts):
            texts.append(path.read_text(errors="ignore"))
    for f in sorted(Path("/usr/share/games/fortunes").glob("*")):
        if f.is_file() and not f.suffix:
            texts.append(f.read_text(errors="ignore"))
    out = set()
    for t in texts:
        for s in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", t)):
            s = s.strip().strip('"')
            words = s.split()
            if (
                min_words <= len(words) <= max_words
                and re.fullmatch(r"[A-Z][A-Za-z ,';-]+[a-z][.!?]", s)
                and not re.search(r"[A-Z]{2}|_|--", s)
            ):
                out.add(s)
    return sorted(out)
