"""`python -m edge_alm.demo_qa BUNDLE CLIP --scores EVAL.json`: questions to an audio-QA bundle
about a clip, a noisy and a quieter copy, and two clips together (what `make demo` shows). Only
the questions the model answers well on held-out voices are asked, each with its held-out score."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edge_alm.audio import load_audio
from edge_alm.model import EdgeALM


def noisy_copy(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(len(x)).astype(np.float32)
    gain = np.sqrt(np.mean(x**2) / np.mean(n**2)) * 10 ** (-snr_db / 20)
    return (x + gain * n).astype(np.float32)


NOISY_Q = "How noisy is this recording: clean, slightly noisy or very noisy?"
QUALITY_Q = "Rate the overall quality of this recording from 1 to 5."
NOISINESS_Q = "Rate the background noise from 1 (very intrusive) to 5 (not noticeable)."
SIGNAL_Q = "Rate the speech signal from 1 (very distorted) to 5 (not distorted)."
LOUDNESS_Q = "Is the speech level quiet, normal or loud?"
NOISY_COPY = "a copy with noise at 3 dB SNR"
# the label each score was measured against, and the mean error within which it is shown
SCORE_LABELS = {
    "mos": ("DNSMOS OVRL", 0.5),
    "noisiness": ("DNSMOS BAK", 0.5),
    "signal": ("DNSMOS SIG", 0.5),
    "quality_ref": ("wide-band PESQ", 0.5),
    "intelligibility": ("STOI", 0.05),
}
# (what the clips are, which clips, question, task in the held-out evaluation)
ASKS = [
    ("the clip", "clean", "What kind of sound is this?", "sound"),
    ("the clip", "clean", "Is the speaker male or female?", "gender"),
    ("the clip", "clean", "Is the speech slow, normal or fast?", "rate"),
    ("the clip", "clean", NOISY_Q, "noisy"),
    (NOISY_COPY, "noisy", NOISY_Q, "noisy"),
    ("the clip", "clean", QUALITY_Q, "mos_expected"),
    (NOISY_COPY, "noisy", QUALITY_Q, "mos_expected"),
    (
        f"clip 1 = the clip, clip 2 = {NOISY_COPY}",
        "clean+noisy",
        "Clip 1 is the clean reference. Rate the quality of clip 2 from 1 to 5.",
        "quality_ref_expected",
    ),
    (
        f"clip 1 = the clip, clip 2 = {NOISY_COPY}",
        "clean+noisy",
        "Clip 1 is the clean reference. How intelligible is clip 2, from 0 to 1?",
        "intelligibility",
    ),
    ("the clip", "clean", NOISINESS_Q, "noisiness_expected"),
    (NOISY_COPY, "noisy", NOISINESS_Q, "noisiness_expected"),
    ("the clip", "clean", SIGNAL_Q, "signal_expected"),
    ("the clip 12 dB quieter", "quiet", LOUDNESS_Q, "loudness"),
    (
        "clip 1 = its first half, clip 2 = the whole clip",
        "half+clean",
        "Which clip is longer, the first or the second?",
        "longer",
    ),
    (
        "clip 1 = the clip 12 dB quieter, clip 2 = the clip",
        "quiet+clean",
        "Which clip is louder, the first or the second?",
        "louder",
    ),
]


def held_out_score(scores: dict, task: str) -> tuple[str, bool]:
    """The task's held-out score from the evaluation report (benchmarks/alm_qa_eval.py), and
    whether it is good enough to show: accuracy >= 80 %, or a score's mean error within its
    SCORE_LABELS bound (0.5 on the 1-5 scales)."""
    s = scores.get("with_audio", {}).get(task)
    if not s:
        return "no held-out score", False
    if "mae" in s:
        label, bound = SCORE_LABELS[task.removesuffix("_expected")]
        return f"held-out MAE {s['mae']:.2f} against {label}", s["mae"] <= bound
    return f"held-out accuracy {100 * s['accuracy']:.0f} %", s["accuracy"] >= 0.8


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("clip")
    ap.add_argument("--scores", help="the model's held-out evaluation (json), to print each task's score")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    model = EdgeALM.load(args.model, threads=args.threads)
    scores = json.loads(Path(args.scores).read_text()) if args.scores else {}
    clean = load_audio(args.clip, model.sample_rate)
    clips = {
        "clean": clean,
        "noisy": noisy_copy(clean, 3.0),
        "half": clean[: len(clean) // 2],
        "quiet": (clean * 10 ** (-12 / 20)).astype(np.float32),
    }
    skipped = []
    for what, which, question, task in ASKS:
        score, good = held_out_score(scores, task)
        if not good:
            skipped.append(f"{task} ({score})")
            continue
        audio = [(clips[name], model.sample_rate) for name in which.split("+")]
        if task.endswith("_expected"):  # the rating as the mean of the LM's digit probabilities
            t0 = time.perf_counter()
            try:
                value = model.chat(audio).expect_number(question)
                ms = (time.perf_counter() - t0) * 1000
                print(f"[{what}] {question}\n    -> {value:.1f}   ({score}; {ms:.0f} ms in all)")
                continue
            except ValueError as e:  # no number from this model: show its text answer
                print(f"({e})")
        a = model.ask(question, audio=audio, max_new_tokens=32)
        print(f"[{what}] {question}\n    -> {a.text}   ({score}; first token {a.timings['first_token_ms']:.0f} ms)")

    if skipped:
        print("not asked, answered poorly on held-out voices: " + ", ".join(dict.fromkeys(skipped)))


if __name__ == "__main__":
    main()
