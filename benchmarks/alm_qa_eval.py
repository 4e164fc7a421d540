"""Evaluate an audio-QA bundle on the held-out corpus, through the runtime (the int8 graphs a
user runs), with the audio and with the audio replaced by silence (the ablation).

    python -m benchmarks.alm_qa_eval --model models/smollm2-whisper-qa-int8 [--work .cache/alm-qa-v6]
        [--stride N] [--tasks REGEX] [--out benchmarks/results/x86-2core]

The held-out clips are regenerated from their specs (make_clip is deterministic): sentences,
voices and seeds that training never saw. Scores: accuracy for categorical answers, MAE and
Pearson for quality scores, WER for transcription; beside each, the majority-answer rate.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RATINGS = ("mos", "quality_ref", "noisiness", "signal")  # tasks answered with a 1-5 score, "D.D"
SCORES = (*RATINGS, "intelligibility")  # tasks answered with a number (intelligibility: STOI, "0.DD")
WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6"}


def normalise(text: str) -> str:
    t = re.sub(r"[.!?,]+$", "", text.strip().lower())
    return WORDS.get(t, t)


def score(task: str, answer: str, label: str) -> float | None:
    """1/0 for categorical tasks; None for tasks scored otherwise (mos, transcribe)."""
    if task in (*SCORES, "transcribe"):
        return None
    if task == "describe":
        return float(normalise(answer) == normalise(label))
    a, want = normalise(answer), normalise(label)
    if want in ("the first", "the second"):
        a = "the " + a if a in ("first", "second") else a
    return float(a == want)


def parse_float(text: str) -> float | None:
    m = re.search(r"\d+(\.\d+)?", text)
    return float(m.group()) if m else None


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    n = EnglishTextNormalizer()
    return 100 * jiwer.wer([n(r) for r in refs], [n(h) or "-" for h in hyps])


def load_clips(work: Path, split: str = "heldout") -> tuple[dict, list[dict]]:
    from edge_alm.export.alm_qa_audio import sentence_pool
    from edge_alm.export.alm_qa_data import ClipSpec, make_clip, split_sentences

    idx = json.loads((work / split / "index.json").read_text())
    train_s, held_s = split_sentences(sentence_pool())
    sentences = held_s if split == "heldout" else train_s
    audio = {}
    for c in idx["clips"]:
        of = {"of": c["labels"]["of"]} if c["kind"] == "reference" else {}
        _, x = make_clip(ClipSpec(c["index"], c["split"], c["kind"], of), sentences)
        audio[c["id"]] = x
    voices = {c["id"]: c["labels"].get("voice") for c in idx["clips"]}
    qas = [{**qa, "voices": [voices[i] for i in qa["clips"]]} for qa in idx["qas"]]
    return audio, qas


def expected_or_none(chat, question: str) -> float | None:
    """The digit-probability rating, or None (unparsed) where the LM puts under half its mass on digits."""
    try:
        return chat.expect_number(question)
    except ValueError:
        return None


def run(model, audio: dict, qas: list[dict], silence: bool = False) -> list[dict]:
    rows = []
    for qa in qas:
        clips = [np.zeros_like(audio[i]) if silence else audio[i] for i in qa["clips"]]
        budget = 40 if qa["task"] in ("transcribe", "describe") else 8
        chat = model.chat([(c, 16000) for c in clips])
        extra = {"expected": expected_or_none(chat, qa["question"])} if qa["task"] in RATINGS else {}
        a = chat.ask(qa["question"], max_new_tokens=budget)
        rows.append({**qa, "got": a.text, "first_token_ms": a.timings["first_token_ms"], **extra})
    return rows


def score_stats(pairs: list[tuple[float, float | None]]) -> dict:
    """MAE and Pearson of (label, answer) pairs whose answer parsed, and the MAE of always
    answering the labels' mean."""
    ok = [(a, b) for a, b in pairs if b is not None]
    s = {"parsed": len(ok) / len(pairs)}
    if len(ok) > 2:
        a, b = np.array(ok).T
        s["mae"] = round(float(np.abs(a - b).mean()), 3)
        s["pearson"] = round(float(np.corrcoef(a, b)[0, 1]), 3) if b.std() > 0 else 0.0
        s["mae_of_mean_guess"] = round(float(np.abs(a - a.mean()).mean()), 3)
    return s


def summarise(rows: list[dict]) -> dict:
    by = defaultdict(list)
    for r in rows:
        by[r["task"]].append(r)
    out = {}
    for task, rs in sorted(by.items()):
        majority = Counter(normalise(r["answer"]) for r in rs).most_common(1)[0][1] / len(rs)
        s = {"n": len(rs), "majority": round(majority, 3)}
        if task in SCORES:
            pairs = [(float(r["answer"]), parse_float(r["got"])) for r in rs]
            s |= score_stats(pairs)
            if all("expected" in r for r in rs):  # the LM's digit probabilities' mean (Chat.expect_number)
                out[f"{task}_expected"] = {"n": len(rs), "majority": s["majority"]}
                out[f"{task}_expected"] |= score_stats([(float(r["answer"]), r["expected"]) for r in rs])
        elif task == "transcribe":
            s["wer"] = round(wer([r["answer"] for r in rs], [r["got"] for r in rs]), 1)
        else:
            s["accuracy"] = round(statistics.mean(score(task, r["got"], r["answer"]) for r in rs), 3)
        out[task] = s
    return dict(sorted(out.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models/smollm2-whisper-qa-int8"))
    ap.add_argument("--work", default=str(ROOT / ".cache/alm-qa-v6"))
    ap.add_argument("--stride", type=int, default=1, help="every Nth held-out question only (all tasks kept)")
    ap.add_argument(
        "--per-task",
        action="store_true",
        help="--stride counts within each task (a reference pair's three questions come in a row: a stride of 3 "
        "over the whole list keeps only one of them)",
    )
    ap.add_argument("--tasks", default=".", help="regex over task names: only these questions (default: all)")
    ap.add_argument("--no-ablation", action="store_true", help="skip the silence run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/x86-2core"))
    ap.add_argument("--name", default="alm_qa_eval")
    args = ap.parse_args()
    from edge_alm import EdgeALM

    model = EdgeALM.load(args.model, threads=args.threads)
    audio, qas = load_clips(Path(args.work))
    qas = [qa for qa in sample(qas, args.stride, args.per_task) if re.search(args.tasks, qa["task"])]
    t0 = time.time()
    rows = run(model, audio, qas)
    silent = [] if args.no_ablation else run(model, audio, qas, silence=True)
    report = {
        "model": args.model,
        "questions": len(qas),
        "seconds": round(time.time() - t0, 1),
        "median_first_token_ms": round(statistics.median(r["first_token_ms"] for r in rows), 1),
        "with_audio": summarise(rows),
        "audio_replaced_by_silence": summarise(silent) if silent else {},
        "by_voice": by_voice(rows),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps({**report, "answers": rows[:300]}, indent=1))
    md = markdown(report)
    (out / f"{args.name}.md").write_text(md)
    print(md)


def sample(qas: list[dict], stride: int, per_task: bool = False) -> list[dict]:
    """Every stride-th question, in order: of the whole list, or of each task's own questions."""
    if not per_task:
        return qas[::stride]
    seen: Counter = Counter()
    keep = []
    for qa in qas:
        if seen[qa["task"]] % stride == 0:
            keep.append(qa)
        seen[qa["task"]] += 1
    return keep


def by_voice(rows: list[dict], tasks: tuple[str, ...] = ("gender", "accent", "same_voice")) -> dict:
    """{task: {voice: [hits, n]}} over each question's first clip's voice: whether a voice property
    is learnt for every unseen voice or only some."""
    out: dict = {}
    for r in rows:
        if r["task"] in tasks and r.get("voices") and r["voices"][0]:
            hit = out.setdefault(r["task"], {}).setdefault(r["voices"][0], [0, 0])
            hit[0] += int(score(r["task"], r["got"], r["answer"]))
            hit[1] += 1
    return {t: dict(sorted(v.items())) for t, v in sorted(out.items())}


def metric(s: dict) -> str:
    if not s:
        return "-"
    if "accuracy" in s:
        return f"{100 * s['accuracy']:.0f} %"
    if "wer" in s:
        return f"WER {s['wer']:.1f} %"
    if "mae" in s:
        return f"MAE {s['mae']:.2f}, r {s['pearson']:.2f}"
    return "unparsed"


def markdown(r: dict) -> str:
    lines = [
        f"# Audio-QA held-out evaluation: {Path(r['model']).name}",
        "",
        f"{r['questions']} held-out questions (held-out sentences, voices and seeds), through the runtime; "
        f"median first token {r['median_first_token_ms']:.0f} ms.",
        "",
        "| task | n | with audio | audio replaced by silence | majority answer |",
        "|---|---|---|---|---|",
    ]
    for task, s in r["with_audio"].items():
        z = r["audio_replaced_by_silence"].get(task, {})
        base = (
            f"{100 * s['majority']:.0f} %"
            if "mae" not in s and task != "transcribe"
            else (f"MAE {s.get('mae_of_mean_guess', float('nan')):.2f} (always the mean)" if "mae" in s else "-")
        )
        lines.append(f"| {task} | {s['n']} | {metric(s)} | {metric(z)} | {base} |")
    if any(t.endswith("_expected") for t in r["with_audio"]):
        lines += ["", "*_expected: the same rating questions answered by the mean of the LM's digit probabilities"]
        lines += ["(`Chat.expect_number`, `edge-alm ask --number`) instead of its likeliest text."]
    if r.get("by_voice"):
        lines += ["", "By the voice of the (first) clip, with audio:", ""]
        lines += ["| task | voice | correct |", "|---|---|---|"]
        for task, voices in r["by_voice"].items():
            lines += [f"| {task} | {v} | {h} / {n} ({100 * h / n:.0f} %) |" for v, (h, n) in voices.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
