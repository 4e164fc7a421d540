"""The audio-QA corpus: generated clips, questions with paraphrases, answers by construction.

Each clip is made from known parts (export/alm_qa_audio.py), labelled while it is made (and
speech-quality labelled by DNSMOS P.835 SIG/BAK/OVRL from PyPI `speechmos`), then encoded once by the alm
bundle's own audio encoder graph; the frames are cached on disk (fp16) with each frame's level
and pitch (runtime/frame_stats.py), so training never runs the encoder. Questions come from
templates with paraphrases; answers are short texts the evaluation can parse. The held-out split
uses sentences, voices and seeds that training never sees.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from edge_alm.export import alm_qa_audio as A

QUESTIONS = {
    "gender": [
        "Is the speaker male or female?",
        "Is this a man's or a woman's voice?",
        "What is the speaker's gender?",
    ],
    "rate": ["Is the speech slow, normal or fast?", "How fast does the speaker talk: slow, normal or fast?"],
    "speech": ["Is there speech in this recording?", "Does anyone speak in this clip?"],
    "sound": ["What kind of sound is this?", "What do you hear?", "What type of audio is this?"],
    "beeps": ["How many beeps are there?", "Count the beeps.", "How many beeps do you hear?"],
    "pitch": ["Is the tone high or low?", "Is the pitch high or low?"],
    "mos": [
        "Rate the overall quality of this recording from 1 to 5.",
        "What is the overall quality score, from 1 to 5?",
        "Give a mean opinion score for this recording.",
    ],
    "problem": ["What is wrong with this recording?", "What degradation does this recording have?"],
    "noisy": ["How noisy is this recording: clean, slightly noisy or very noisy?", "Is the recording noisy?"],
    # DNSMOS P.835's other two scales: background noise (BAK) and speech signal (SIG), 5 = no degradation
    "noisiness": [
        "Rate the background noise from 1 (very intrusive) to 5 (not noticeable).",
        "How unobtrusive is the background, from 1 to 5?",
    ],
    "signal": [
        "Rate the speech signal from 1 (very distorted) to 5 (not distorted).",
        "How undistorted is the voice itself, from 1 to 5?",
    ],
    "loudness": ["Is the speech level quiet, normal or loud?", "How loud is the recording: quiet, normal or loud?"],
    "transcribe": ["What is said?", "Transcribe the speech.", "What does the speaker say?"],
    "describe": ["Describe this recording in one sentence.", "Describe the audio briefly."],
    "louder": ["Which clip is louder, the first or the second?", "Which recording is louder?"],
    "longer": ["Which clip is longer, the first or the second?", "Which recording lasts longer?"],
    "noisier": ["Which clip is noisier, the first or the second?", "Which recording has more noise?"],
    "accent": ["What accent does the speaker have?", "Which English accent is this: American, British, Scottish?"],
    "same_voice": ["Is it the same voice in both clips?", "Do the two clips have the same speaker?"],
    # double-ended: clip 1 is the clean reference, clip 2 a processed copy of it
    "quality_ref": [
        "Clip 1 is the clean reference. Rate the quality of clip 2 from 1 to 5.",
        "The first clip is the original. What quality score, from 1 to 5, does the second clip get?",
    ],
    "changed": [
        "Clip 1 is the original. What was done to clip 2?",
        "The first clip is clean. What degradation does the second clip have?",
    ],
    "intelligibility": [
        "Clip 1 is the clean reference. How intelligible is clip 2, from 0 to 1?",
        "The first clip is the original. Give the second clip's intelligibility score from 0 to 1.",
    ],
}
SOUND_WORDS = {"tone": "a tone", "beeps": "beeps", "noise": "noise", "siren": "a siren", "silence": "silence"}
NUMBERS = ["zero", "one", "two", "three", "four", "five"]


@dataclass
class ClipSpec:
    index: int
    split: str  # train | heldout
    kind: str  # speech | tone | beeps | noise | siren | silence | reference
    labels: dict = field(default_factory=dict)  # a reference's "of": the index of its speech clip


def dnsmos_model() -> Path:
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package speechmos is not installed; run: pip install --no-deps speechmos==0.0.1.1")
    return Path(list(spec.submodule_search_locations)[0]) / "dnsmos_models" / "sig_bak_ovr.onnx"


class DNSMOS:
    """DNSMOS P.835 SIG, BAK and OVRL with the published polynomial mappings (non-personalized)."""

    LEN = 144160  # 9.01 s at 16 kHz
    MAPS = {  # the model's outputs in this order
        "sig": np.poly1d([-0.08397278, 1.22083953, 0.0052439]),
        "bak": np.poly1d([-0.13166888, 1.60915514, -0.39604546]),
        "mos": np.poly1d([-0.06766283, 1.11546468, 0.04602535]),
    }

    def __init__(self) -> None:
        import onnxruntime as ort

        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        self.s = ort.InferenceSession(str(dnsmos_model()), o, providers=["CPUExecutionProvider"])

    def scores(self, x: np.ndarray) -> dict[str, float]:
        """{"sig", "bak", "mos" (OVRL)}: 1-5 each, averaged over 9 s windows one second apart."""
        x = np.resize(x, max(self.LEN, len(x))).astype(np.float32)  # shorter clips are repeated
        starts = range(0, len(x) - self.LEN + 1, A.SR)
        raw = np.mean([self.s.run(None, {"input_1": x[None, s : s + self.LEN]})[0][0] for s in starts], axis=0)
        return {k: round(float(f(r)), 2) for (k, f), r in zip(self.MAPS.items(), raw)}


def split_sentences(pool: list[str]) -> tuple[list[str], list[str]]:
    """About 8 % of sentences, chosen by hash, are held out."""
    held = [s for s in pool if int(hashlib.sha1(s.encode()).hexdigest(), 16) % 12 == 0]
    return [s for s in pool if s not in set(held)], held


def make_clip(spec: ClipSpec, sentences: list[str]) -> tuple[ClipSpec, np.ndarray]:
    """A clip and its labels, from its index and split alone (deterministic). A "reference" is
    the speech clip labels["of"] before its degradation, at the same gain."""
    if spec.kind == "reference":
        spec, clean, _ = _reference(spec, sentences)
        return spec, clean
    spec, x, _ = _make(spec, sentences)
    return spec, x


def make_labelled(spec: ClipSpec, sentences: list[str]) -> tuple[ClipSpec, np.ndarray]:
    """make_clip, and for a reference the wide-band PESQ (PyPI `pesq`; None where PESQ finds no
    speech) and STOI (PyPI `pystoi`) of its degraded copy against it: the labels of double-ended
    quality and intelligibility questions."""
    if spec.kind != "reference":
        return make_clip(spec, sentences)
    from pesq import pesq
    from pystoi import stoi

    spec, clean, degraded = _reference(spec, sentences)
    try:
        spec.labels["pesq"] = round(float(pesq(A.SR, clean, degraded, "wb")), 2)
    except Exception:  # pesq raises its own error types when it finds no utterance
        spec.labels["pesq"] = None
    spec.labels["stoi"] = round(float(stoi(clean, degraded, A.SR)), 2)
    return spec, clean


def _reference(spec: ClipSpec, sentences: list[str]) -> tuple[ClipSpec, np.ndarray, np.ndarray]:
    """(the reference's spec with labels, its clean audio, the degraded clip it is the reference of)."""
    source, degraded, clean = _make(ClipSpec(spec.labels["of"], spec.split, "speech"), sentences)
    spec.labels.update({k: source.labels[k] for k in ("text", "gender", "rate", "voice")}, problem="nothing")
    spec.labels.update(level_db=A.rms_db(clean), seconds=len(clean) / A.SR, source_problem=source.labels["problem"])
    return spec, clean, degraded


def _make(spec: ClipSpec, sentences: list[str]) -> tuple[ClipSpec, np.ndarray, np.ndarray | None]:
    """(spec with labels, clip, the speech before degradation at the same gain or None)."""
    rng = np.random.default_rng([spec.index, 1 if spec.split == "heldout" else 0])
    labels = spec.labels
    clean = None
    if spec.kind == "speech":
        voice = A.pick_voice(A.HELD_OUT_VOICES if spec.split == "heldout" else A.train_voices(), rng)
        rate = ["slow", "normal", "fast"][rng.integers(3)]
        text = sentences[rng.integers(len(sentences))]
        clean = A.speak(text, voice, rate)
        labels.update(text=text, gender=voice.gender, rate=rate, voice=voice.name)
        x, labels["problem"], labels["snr"] = degrade(clean, rng)
    elif spec.kind == "tone":
        labels["pitch"] = "high" if rng.random() < 0.5 else "low"
        x = A.tone(_freq(labels["pitch"], rng), rng.uniform(1.0, 4.0), rng.uniform(-30, -12))
    elif spec.kind == "beeps":
        labels["pitch"] = "high" if rng.random() < 0.5 else "low"
        labels["count"] = int(rng.integers(1, 6))
        x = A.beeps(labels["count"], _freq(labels["pitch"], rng), rng)
    elif spec.kind == "noise":
        x = A.normalise(A.noise(["white", "pink", "brown"][rng.integers(3)], int(rng.uniform(1, 4) * A.SR), rng), -25)
    elif spec.kind == "siren":
        x = A.siren(rng.uniform(1.5, 4.0), rng)
    else:
        x = (A.noise("white", int(rng.uniform(1, 4) * A.SR), rng) * 10 ** (-75 / 20)).astype(np.float32)
    gain = float(rng.uniform(-14, 8)) if spec.kind != "silence" else 0.0
    labels["level_db"] = A.rms_db(x) + gain
    x = np.clip(x * 10 ** (gain / 20), -1, 1).astype(np.float32)
    labels["seconds"] = len(x) / A.SR
    if clean is not None:
        clean = np.clip(clean * 10 ** (gain / 20), -1, 1).astype(np.float32)
    return spec, x, clean


def _freq(pitch: str, rng: np.random.Generator) -> float:
    return float(rng.uniform(1200, 3000) if pitch == "high" else rng.uniform(150, 350))


def degrade(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str, float | None]:
    """One degradation with known parameters (or none): (audio, problem label, SNR in dB)."""
    r = rng.random()
    if r < 0.3:
        return x, "nothing", None
    if r < 0.55:
        snr = float(rng.uniform(-5, 25))
        kind = ["white", "pink", "brown", "babble"][rng.integers(4)]
        babble = A.noise("pink", len(x), rng) * np.abs(np.sin(np.arange(len(x)) / A.SR * 7))  # modulated
        return A.add_noise(x, snr, kind, rng, babble), "background noise" if snr < 22 else "nothing", snr
    if r < 0.64:
        return A.clip_peaks(x, float(rng.uniform(0.03, 0.25))), "clipping", None
    if r < 0.73:
        return A.telephone(x), "telephone band", None
    if r < 0.82:
        return A.dropouts(x, float(rng.uniform(0.12, 0.3)), rng), "dropouts", None
    if r < 0.91:
        return A.reverb(x, float(rng.uniform(0.5, 1.2)), rng), "reverberation", None
    kind = "mp3" if rng.random() < 0.5 else "opus"
    return A.codec(x, kind, float(rng.uniform(0.95, 0.99))), "low-bitrate codec", None


def questions_for(clip: dict, rng: np.random.Generator, per_clip: int) -> list[dict]:
    """Single-clip questions this clip can answer, `per_clip` of them at random."""
    lab, kind = clip["labels"], clip["kind"]
    answers = {
        "speech": "yes" if kind == "speech" else "no",
        "sound": "speech" if kind == "speech" else SOUND_WORDS[kind],
    }
    if kind == "speech":
        answers.update(gender=lab["gender"], rate=lab["rate"], mos=f"{lab['mos']:.1f}", problem=lab["problem"])
        answers.update(noisiness=f"{lab['bak']:.1f}", signal=f"{lab['sig']:.1f}", loudness=loudness(lab["level_db"]))
        snr = lab.get("snr")
        if lab["problem"] in ("nothing", "background noise"):
            answers["noisy"] = "clean" if snr is None or snr >= 22 else "slightly noisy" if snr >= 10 else "very noisy"
        if lab["problem"] == "nothing":
            answers["transcribe"] = lab["text"]
        extra = "" if lab["problem"] == "nothing" else f", with {lab['problem']}"
        answers["describe"] = f"A {lab['gender']} voice speaking at a {lab['rate']} pace{extra}."
    if kind in ("tone", "beeps"):
        answers["pitch"] = lab["pitch"]
    if kind == "beeps":
        answers["beeps"] = str(lab["count"])
        answers["describe"] = f"{NUMBERS[lab['count']].capitalize()} {lab['pitch']} beep{'s' * (lab['count'] > 1)}."
    elif kind in ("tone", "noise", "siren", "silence"):
        answers["describe"] = {
            "tone": f"A steady {lab.get('pitch')} tone.",
            "noise": "Noise without speech.",
            "siren": "A siren.",
            "silence": "Silence.",
        }[kind]
    tasks = sorted(answers)
    # the yes/no speech question and the kind of a speech clip are easy: ask them less often
    w = np.array([0.25 if (t == "speech" or (t == "sound" and kind == "speech")) else 1.0 for t in tasks])
    picked = rng.choice(len(tasks), size=min(per_clip, len(tasks)), replace=False, p=w / w.sum())
    return [_qa([clip["id"]], tasks[i], answers[tasks[i]], rng) for i in picked]


def loudness(level_db: float) -> str:
    """quiet | normal | loud, from a speech clip's RMS level (speech is made at -20 dBFS, then a
    gain of -14 to +8 dB)."""
    return "quiet" if level_db < -29 else "loud" if level_db > -16 else "normal"


def pair_question(a: dict, b: dict, rng: np.random.Generator) -> dict | None:
    """A two-clip comparison whose answer is clear-cut (else None)."""
    la, lb = a["labels"], b["labels"]
    options = []
    if abs(la["level_db"] - lb["level_db"]) >= 6:
        options.append(("louder", la["level_db"] > lb["level_db"]))
    if max(la["seconds"], lb["seconds"]) >= 1.3 * min(la["seconds"], lb["seconds"]):
        options.append(("longer", la["seconds"] > lb["seconds"]))
    na, nb = _noise_level(la), _noise_level(lb)
    if na is not None and nb is not None and abs(na - nb) >= 12:
        options.append(("noisier", na > nb))
    if not options:
        return None
    task, first = options[rng.integers(len(options))]
    return _qa([a["id"], b["id"]], task, "the first" if first else "the second", rng)


def _noise_level(lab: dict) -> float | None:
    """Noise level above clean, in dB (clean speech 0), for speech that is clean or noisy only."""
    if lab.get("problem") not in ("nothing", "background noise"):
        return None
    return 0.0 if lab.get("snr") is None else 30.0 - lab["snr"]


def _qa(clips: list[int], task: str, answer: str, rng: np.random.Generator) -> dict:
    q = QUESTIONS[task]
    return {"clips": clips, "task": task, "question": q[rng.integers(len(q))], "answer": answer}


def build_corpus(
    work: Path,
    bundle: Path,
    n_speech: int,
    n_sound: int,
    n_pairs: int,
    split: str,
    per_clip: int = 3,
    n_refs: int = 0,
) -> Path:
    """Generate, label and encode one split into work/split/ (resumable: done when index.json
    exists). `n_refs` speech clips also get their clean reference as a clip of its own, for
    double-ended questions. Returns the split directory."""
    out = Path(work) / split
    if (out / "index.json").is_file():
        return out
    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "stats").mkdir(exist_ok=True)
    train_s, held_s = split_sentences(A.sentence_pool())
    sentences = held_s if split == "heldout" else train_s
    offset = 10_000_000 if split == "heldout" else 0
    kinds = ["speech"] * n_speech + [k for i in range(n_sound) for k in [SOUND_KINDS[i % len(SOUND_KINDS)]]]
    specs = [ClipSpec(offset + i, split, k) for i, k in enumerate(kinds)]
    if n_refs and not (importlib.util.find_spec("pesq") and importlib.util.find_spec("pystoi")):
        raise FileNotFoundError("double-ended questions need PyPI pesq and pystoi; run: make alm-qa-train")
    step = max(1, n_speech // max(n_refs, 1))
    sources = [offset + i for i in range(0, n_speech, step)][:n_refs]
    specs += [ClipSpec(offset + len(kinds) + j, split, "reference", {"of": i}) for j, i in enumerate(sources)]
    from edge_alm import EdgeALM

    model = EdgeALM.load(bundle, threads=2).alm
    mos = DNSMOS()
    clips, t0 = [], time.time()
    with ProcessPoolExecutor(2) as pool:
        for n, (spec, x) in enumerate(pool.map(make_labelled, specs, [sentences] * len(specs), chunksize=8)):
            if spec.kind == "speech":
                spec.labels.update(mos.scores(x))
            hidden = model.audio_encoder.run({"input_features": model.features(x)})[0][0]  # (T/2, C)
            np.save(out / "frames" / f"{n:06d}.npy", hidden.astype(np.float16))
            np.save(out / "stats" / f"{n:06d}.npy", model.frame_stats(x, len(hidden)).astype(np.float16))
            clips.append({"id": n, **asdict(spec)})
            if (n + 1) % 200 == 0 or n + 1 == len(specs):
                eta = (time.time() - t0) / (n + 1) * (len(specs) - n - 1)
                print(f"{split}: {n + 1}/{len(specs)} clips, ETA {eta / 60:.1f} min", flush=True)
    rng = np.random.default_rng(7 if split == "train" else 8)
    qas = [q for c in clips if c["kind"] != "reference" for q in questions_for(c, rng, per_clip)]
    speech = [c for c in clips if c["kind"] == "speech"]
    while sum(len(q["clips"]) == 2 for q in qas) < n_pairs:
        a, b = rng.choice(len(speech), 2, replace=False)
        q = pair_question(speech[a], speech[b], rng)
        if q:
            qas.append(q)
    qas += voice_questions(clips, rng, n_accent=n_speech // 3, n_pairs=n_pairs // 3)
    qas += reference_questions(clips, rng)
    (out / "index.json").write_text(json.dumps({"clips": clips, "qas": qas}))
    return out


SOUND_KINDS = ["beeps", "beeps", "tone", "noise", "siren", "silence"]


def voice_questions(clips: list[dict], rng: np.random.Generator, n_accent: int, n_pairs: int) -> list[dict]:
    """Accent questions on speech clips, and same-voice pairs (half the same voice, half not) and
    louder pairs (levels at least 6 dB apart), from the clips' labels alone."""
    speech = [c for c in clips if c["kind"] == "speech"]
    by_voice: dict[str, list[dict]] = {}
    for c in speech:
        by_voice.setdefault(c["labels"]["voice"], []).append(c)
    accent = []
    for i in rng.choice(len(speech), min(n_accent, len(speech)), replace=False):
        c = speech[i]
        accent.append(_qa([c["id"]], "accent", A.accent_of(c["labels"]["voice"]), rng))
    voices = sorted(by_voice)
    same_voice: list[dict] = []
    while len(same_voice) < n_pairs:
        same = rng.random() < 0.5
        v1 = voices[rng.integers(len(voices))]
        v2 = v1 if same else voices[rng.integers(len(voices))]
        if len(by_voice[v1]) < 2 or (not same and v1 == v2):
            continue
        if same:
            ca, cb = (by_voice[v1][i] for i in rng.choice(len(by_voice[v1]), 2, replace=False))
        else:
            ca, cb = by_voice[v1][rng.integers(len(by_voice[v1]))], by_voice[v2][rng.integers(len(by_voice[v2]))]
        same_voice.append(_qa([ca["id"], cb["id"]], "same_voice", "yes" if same else "no", rng))
    louder: list[dict] = []
    while len(louder) < n_pairs:
        a, b = (speech[i] for i in rng.choice(len(speech), 2, replace=False))
        la, lb = a["labels"]["level_db"], b["labels"]["level_db"]
        if abs(la - lb) >= 6:
            louder.append(_qa([a["id"], b["id"]], "louder", "the first" if la > lb else "the second", rng))
    return accent + same_voice + louder


def reference_questions(clips: list[dict], rng: np.random.Generator) -> list[dict]:
    """Double-ended questions, clip 1 the clean reference and clip 2 its processed copy: the
    copy's quality (wide-band PESQ, 1-4.6), its intelligibility (STOI, 0-1) and what was done to it."""
    by_index = {c["index"]: c for c in clips}
    qas = []
    for ref in (c for c in clips if c["kind"] == "reference"):
        source = by_index[ref["labels"]["of"]]
        pair = [ref["id"], source["id"]]
        if ref["labels"].get("pesq") is not None:
            qas.append(_qa(pair, "quality_ref", f"{ref['labels']['pesq']:.1f}", rng))
        qas.append(_qa(pair, "changed", source["labels"]["problem"], rng))
        if ref["labels"].get("stoi") is not None:
            qas.append(_qa(pair, "intelligibility", f"{ref['labels']['stoi']:.2f}", rng))
    return qas
