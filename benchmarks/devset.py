"""A small dev set of synthetic speech with exact reference text (espeak-ng, flite when present).

Separate sentences from the test suite's, so window and decoding choices are not tuned on
the tests. Clips join 1-5 sentences to span about 2-15 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

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
]
ESPEAK_VOICES = ["en-us+f3", "en-us+klatt2", "en-us+m1", "en-gb"]
FLITE_VOICES = ["slt", "rms"]


def synth(engine: str, voice: str, text: str, path: Path) -> None:
    if engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice, "-s", "145", "-w", str(path), text]
    else:
        cmd = ["flite", "-voice", voice, "-t", text, "-o", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)


def build(out: Path, n_clips: int = 24) -> list[dict]:
    """Write clips and `index.json` into `out`; return the index."""
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "index.json"
    if index_path.is_file():
        return json.loads(index_path.read_text())
    voices = [("espeak-ng", v) for v in ESPEAK_VOICES]
    if shutil.which("flite"):
        voices += [("flite", v) for v in FLITE_VOICES]
    index, s = [], 0
    for i in range(n_clips):
        k = (1, 2, 3, 5)[i % 4]  # sentences per clip
        text = " ".join(SENTENCES[(s + j) % len(SENTENCES)] for j in range(k))
        s += k
        engine, voice = voices[i % len(voices)]
        path = out / f"clip{i:02d}.wav"
        synth(engine, voice, text, path)
        index.append({"file": path.name, "text": text, "engine": engine, "voice": voice})
    index_path.write_text(json.dumps(index, indent=1))
    return index


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path(".cache/devset"))
    args = p.parse_args()
    print(len(build(args.out)), "clips in", args.out)


if __name__ == "__main__":
    main()
