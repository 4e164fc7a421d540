"""The committed audio-QA model (weights/alm-qa-*.npz, built into models/smollm2-whisper-qa-int8
by `make`): a small fixed question set it must keep answering. The floors are what the shipped
weights scored when committed, minus a margin; a regression in the runtime, the export or the
weights drops below them. (Held-out scores on unseen voices and sentences are in
benchmarks/results/x86-2core/alm_qa_eval.md.)"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import QA_BUNDLE, QA_WEIGHTS, ROOT, SENTENCES
from edge_alm.export import alm_qa_audio as A

from edge_alm import EdgeALM

pytestmark = pytest.mark.slow

# measured on the committed weights (v6): beeps 0.8 (10 questions), pitch 1.0 (4), gender 0.83 (6),
# rate 0.83 (6), sound 0.8 (5: a 440 Hz tone called a siren), speech 1.0 (5); the floors allow one or
# two more misses. (v4 scored beeps 0.6, sound 1.0, the rest the same.)
# (Loudness comparison is not here: the model answers it near chance, see the README.)
FLOORS = {"beeps": 0.6, "pitch": 0.75, "gender": 0.6, "rate": 0.6, "sound": 0.6, "speech": 0.8}
VOICES = [A.Voice("espeak", "en-us+f2", "female"), A.Voice("espeak", "en-us+m3", "male")]


@pytest.fixture(scope="module")
def qa_model():
    if not (QA_BUNDLE / "manifest.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "edge_alm.cli", "export", "alm", "--adapter", str(QA_WEIGHTS)]
            + ["--lm-quantize", "int8-block", "--out", str(QA_BUNDLE), "--cache", str(ROOT / ".cache")],
            check=True,
            cwd=ROOT,
        )
    return EdgeALM.load(QA_BUNDLE, threads=2)


def fixed_questions() -> list[tuple[str, list[np.ndarray], str, str]]:
    """(task, clips, question, answer), deterministic."""
    rng = np.random.default_rng(123)
    qs = []
    for count in range(1, 6):
        for freq in (250.0, 2000.0):
            qs.append(("beeps", [A.beeps(count, freq, rng)], "How many beeps are there?", str(count)))
    for pitch, freq in (("low", 200.0), ("high", 1500.0), ("low", 320.0), ("high", 2600.0)):
        qs.append(("pitch", [A.tone(freq, 2.0)], "Is the tone high or low?", pitch))
    speech = [A.speak(s, VOICES[i % 2], "normal") for i, s in enumerate(SENTENCES[:6])]
    for i, x in enumerate(speech):
        qs.append(("gender", [x], "Is the speaker male or female?", VOICES[i % 2].gender))
    for i, rate in enumerate(["slow", "normal", "fast"] * 2):
        x = A.speak(SENTENCES[6 + i], VOICES[i % 2], rate)
        qs.append(("rate", [x], "Is the speech slow, normal or fast?", rate))
    sounds = [(A.siren(3.0, rng), "a siren"), (A.tone(440.0, 2.0), "a tone"), (A.beeps(3, 900.0, rng), "beeps")]
    sounds += [(A.normalise(A.noise("pink", 40000, rng), -25), "noise"), (speech[2], "speech")]
    for x, answer in sounds:
        qs.append(("sound", [x], "What kind of sound is this?", answer))
    noise = [A.normalise(A.noise(k, 48000, rng), -25) for k in ("white", "pink", "brown")]
    for x, answer in [(speech[0], "yes"), (speech[1], "yes"), *[(n, "no") for n in noise]]:
        qs.append(("speech", [x], "Is there speech in this recording?", answer))
    return qs


def test_committed_model_keeps_its_accuracy_on_a_fixed_question_set(qa_model):
    from benchmarks.alm_qa_eval import score

    hits: dict[str, list[float]] = {}
    for task, clips, question, answer in fixed_questions():
        got = qa_model.ask(question, audio=[(c.astype(np.float32), 16000) for c in clips], max_new_tokens=8).text
        hits.setdefault(task, []).append(score(task, got, answer))
    acc = {t: float(np.mean(h)) for t, h in hits.items()}
    low = {t: a for t, a in acc.items() if a < FLOORS[t]}
    assert not low, f"accuracy below the committed floor: {low} (all: {acc})"


def test_the_answers_depend_on_the_audio(qa_model):
    """The same question about a clean clip and a very noisy copy gets the two right answers."""
    clean = A.speak(SENTENCES[7], VOICES[0], "normal")
    noisy = A.add_noise(clean, 0.0, "white", np.random.default_rng(0))
    q = "How noisy is this recording: clean, slightly noisy or very noisy?"
    ans = [qa_model.ask(q, audio=(x, 16000), max_new_tokens=6).text.lower().strip(".") for x in (clean, noisy)]
    assert ans == ["clean", "very noisy"], ans


def test_expected_rating_ranks_clean_above_noisy_and_leaves_the_chat_as_it_was(qa_model):
    clean = A.speak(SENTENCES[7], VOICES[0], "normal")
    noisy = A.add_noise(clean, 0.0, "white", np.random.default_rng(0))
    q = "Rate the overall quality of this recording from 1 to 5."
    chat = qa_model.chat((clean, 16000))
    rating = chat.expect_number(q)
    assert chat.ask(q, max_new_tokens=8).tokens == qa_model.ask(q, audio=(clean, 16000), max_new_tokens=8).tokens
    noisy_rating = qa_model.chat((noisy, 16000)).expect_number(q)
    # v6 measured 2.35 clean, 1.28 noisy here (v4: 2.37 and 1.87)
    assert 1.0 <= noisy_rating < rating - 0.25 and rating <= 5.0, (rating, noisy_rating)
