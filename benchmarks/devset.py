"""The benchmark dev set: synthetic speech with exact reference text (espeak-ng and flite),
noisy copies, no-speech clips and one long clip. Generated, never hand-made.

Its sentences differ from the test suite's, so decoding choices are not tuned on the tests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SENTENCES = [
    "A small robot cleaned the kitchen floor.",
    "The meeting has been moved to Thursday afternoon.",
    "Rain is expected over the northern hills this weekend.",
    "He forgot his umbrella at the office again.",
    "Our flight was delayed by almost two hours.",
    "The library closes early on public holidays.",
    "Add the flour slowly and keep stirring the mixture.",
    "She painted the fence a bright shade of green.",
    "Most birds fly south before the winter begins.",
    "The doctor said I should drink more water.",
    "Can you send me the report before lunch?",
    "The museum opened a new exhibition about ancient ships.",
    "Keep your ticket until the end of the journey.",
    "The baby finally fell asleep after midnight.",
    "A strong coffee helps me wake up in the morning.",
    "They walked along the river until sunset.",
    "Please turn the music down a little.",
    "The old bridge was repaired last summer.",
    "Farmers are worried about the dry weather.",
    "Our team won the match in the final minute.",
    "The price of fresh vegetables went up this month.",
    "Remember to lock the door when you go out.",
    "The students listened carefully to the teacher.",
    "My phone battery is almost empty.",
    "The bakery on the corner sells warm bread every morning.",
    "We planted tomatoes and beans in the back garden.",
    "The bus was full so we decided to walk home.",
    "Her sister works as a nurse at the city hospital.",
    "Write your name at the top of the page.",
    "The lake froze completely during the cold night.",
    "He reads the newspaper while eating breakfast.",
    "The shop will be closed for repairs next week.",
]
DEFAULT_DIR = Path("benchmarks/data/clips")
ESPEAK_VOICES = ["en-us+f3", "en-us+klatt2", "en-us+m1", "en-gb"]
FLITE_VOICES = ["slt", "rms"]


def synth(engine: str, voice: str, text: str, path: Path) -> None:
    if engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice, "-s", "145", "-w", str(path), text]
    else:
        cmd = ["flite", "-voice", voice, "-t", text, "-o", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)


def _read16k(path: Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return soxr.resample(x.mean(axis=1), sr, 16000).astype(np.float32) if sr != 16000 else x.mean(axis=1)


def _pink_noise(n: int, seed: int, tmp: Path) -> np.ndarray:
    """Pink noise from sox when present (numpy white noise otherwise)."""
    if shutil.which("sox"):
        path = tmp / f"noise{seed}.wav"
        subprocess.run(
            [
                "sox",
                "-n",
                "-r",
                "16000",
                "-c",
                "1",
                str(path),
                "synth",
                f"{n / 16000 + 0.1:.2f}",
                "pinknoise",
                "vol",
                "0.5",
            ],
            check=True,
            capture_output=True,
        )
        return _read16k(path)[:n]
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32) * 0.1


def _mix(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    ps, pn = np.mean(speech**2), np.mean(noise**2)
    out = speech + noise * np.sqrt(ps / (pn * 10 ** (snr_db / 10)))
    return (out / max(1.0, np.abs(out).max())).astype(np.float32)


KINDS = ("clean", "noisy", "quiet", "near9s", "repeated", "long", "nospeech")


def _fit(x: np.ndarray, seconds: float) -> np.ndarray:
    """Pad with trailing silence to exactly `seconds` (the clip must be shorter)."""
    return np.concatenate([x, np.zeros(max(0, int(seconds * 16000) - len(x)), np.float32)])


def build(out: Path, n_clips: int = 40) -> list[dict]:
    """Write 16 kHz clips and `index.json` into `out` (once); return the index.

    Kinds: `clean` (n_clips TTS clips of 1-5 sentences), `noisy` (5 clean clips mixed with
    pink noise at 10 and 0 dB SNR), `quiet` (3 clean clips whose loudest sample is -45 dBFS),
    `near9s` (4 clips of 8.3-8.9 s: two sentences and trailing silence, where the auto window
    leaves about 1 s of padding), `repeated` (3 clips: two sentences said 2-4 times in one
    window, under 29 s), `nospeech` (silence, noise, beeps; reference ""), `long` (one
    clip over 60 s, and one of about 100 s joined from voices at different levels with 0.5-4 s
    pauses over a noise floor).
    """
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "index.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        if {c["kind"] for c in index} >= set(KINDS):
            return index
        shutil.rmtree(out)  # an older dev set: rebuilt with every kind
        out.mkdir(parents=True)
    voices = [("espeak-ng", v) for v in ESPEAK_VOICES]
    if shutil.which("flite"):
        voices += [("flite", v) for v in FLITE_VOICES]
    tmp = out / "tmp"
    tmp.mkdir(exist_ok=True)
    index: list[dict] = []

    def add(name: str, audio: np.ndarray, text: str, kind: str, source: str) -> None:
        sf.write(out / name, audio, 16000, subtype="PCM_16")
        index.append(
            {"file": name, "text": text, "kind": kind, "source": source, "duration": round(len(audio) / 16000, 3)}
        )

    s = 0
    for i in range(n_clips):
        k = (1, 2, 3, 5, 1)[i % 5]  # sentences per clip
        text = " ".join(SENTENCES[(s + j) % len(SENTENCES)] for j in range(k))
        s += k
        engine, voice = voices[i % len(voices)]
        synth(engine, voice, text, tmp / "t.wav")
        add(f"clean{i:02d}.wav", _read16k(tmp / "t.wav"), text, "clean", f"{engine} {voice}")
    for j, snr in enumerate((10, 0, 10, 0, 10)):
        src = index[j * 3 + 1]
        x, _ = sf.read(str(out / src["file"]), dtype="float32")
        add(
            f"noisy{j}_{snr}dB.wav",
            _mix(x, _pink_noise(len(x), j, tmp), snr),
            src["text"],
            "noisy",
            f"{src['source']} + pink noise {snr} dB",
        )
    for j in range(3):
        src = index[j * 4 + 2]
        x, _ = sf.read(str(out / src["file"]), dtype="float32")
        quiet = x / np.abs(x).max() * 10 ** (-45 / 20)
        add(f"quiet{j}.wav", quiet, src["text"], "quiet", f"{src['source']} at -45 dBFS")
    near = [("flite", "kal16"), ("flite", "slt"), ("espeak-ng", "en-us+f3"), ("flite", "awb")]
    for j, (engine, voice) in enumerate(near):
        if engine == "flite" and not shutil.which("flite"):
            engine, voice = "espeak-ng", ESPEAK_VOICES[j % len(ESPEAK_VOICES)]
        for k in (3, 2, 1):  # the most sentences that fit in 8.3-8.9 s
            text = " ".join(SENTENCES[(7 * j + i) % len(SENTENCES)] for i in range(k))
            synth(engine, voice, text, tmp / "t.wav")
            x = _read16k(tmp / "t.wav")
            if len(x) <= (8.3 + 0.2 * j) * 16000:
                break
        add(f"near9s{j}.wav", _fit(x, 8.3 + 0.2 * j), text, "near9s", f"{engine} {voice}, padded to 8.3-8.9 s")
    # two sentences said 3-4 times in one window: every temperature's decode fails the
    # compression check there, which once gave garbled or empty text
    for j, (engine, voice) in enumerate([voices[0], voices[-1], voices[1]]):
        text = " ".join(SENTENCES[(11 * j + i) % len(SENTENCES)] for i in range(2))
        synth(engine, voice, text, tmp / "t.wav")
        x = np.concatenate([_read16k(tmp / "t.wav"), np.zeros(8000, np.float32)])
        k = max(2, min(4, int(28.5 * 16000 // len(x))))
        add(f"repeated{j}.wav", np.tile(x, k), " ".join([text] * k), "repeated", f"{engine} {voice}, said {k} times")
    t = np.arange(16000 * 4) / 16000
    add("nospeech_silence.wav", np.zeros(16000 * 4, np.float32), "", "nospeech", "digital silence")
    add("nospeech_noise.wav", _pink_noise(16000 * 4, 9, tmp) * 0.3, "", "nospeech", "pink noise")
    beeps = 0.3 * np.sin(2 * np.pi * 1000 * t) * (np.sin(2 * np.pi * t) > 0)
    add("nospeech_beeps.wav", beeps.astype(np.float32), "", "nospeech", "1 kHz beeps")
    parts, texts = [], []
    for j in range(17):
        engine, voice = voices[j % len(voices)]
        synth(engine, voice, SENTENCES[j], tmp / "t.wav")
        parts += [_read16k(tmp / "t.wav"), np.zeros(12000, np.float32)]
        texts.append(SENTENCES[j])
    add("long.wav", np.concatenate(parts), " ".join(texts), "long", "espeak-ng/flite sentences joined")
    g = np.random.default_rng(5)
    parts, texts = [], []
    for j in range(24):
        engine, voice = voices[(j * 5) % len(voices)]
        synth(engine, voice, SENTENCES[(j + 17) % len(SENTENCES)], tmp / "t.wav")
        level = 10 ** (g.uniform(-14, 0) / 20)
        parts += [_read16k(tmp / "t.wav") * level, np.zeros(int(g.uniform(0.5, 4.0) * 16000), np.float32)]
        texts.append(SENTENCES[(j + 17) % len(SENTENCES)])
    x = np.concatenate(parts)
    x = (x + 0.003 * g.standard_normal(len(x))).astype(np.float32)
    add("long_joined.wav", x, " ".join(texts), "long", "24 sentences, 6 voices, -14..0 dB, 0.5-4 s pauses, noise floor")
    shutil.rmtree(tmp)
    index_path.write_text(json.dumps(index, indent=1))
    return index


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=DEFAULT_DIR)
    args = p.parse_args()
    print(len(build(args.out)), "clips in", args.out)


if __name__ == "__main__":
    main()
