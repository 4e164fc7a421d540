"""End-of-speech-to-final latency of the streaming path, replayed at real-time pace, with turn
splits counted: `python -m benchmarks.streaming [--out FILE]`.

Five recordings are made here with espeak-ng, of 16 or 24 turns 1.5 s apart; half are one sentence,
half are a sentence spoken in two parts with a natural mid-sentence pause (0.35-0.6 s) between
them, which must not end the turn. `tune` is the one the endpointing rules were chosen on; `heldout`
has other sentences, other voices and other pauses, to check that the choice carries over. The
end-score rule (text_weight 0.5) was chosen on both and checked once on `heldout2` (24 turns, new
sentences and voices), and its second threshold once on `heldout3`: it did not beat the default. The
turn-LM rule (runtime/turn_lm.py) was chosen on all four and checked once on `heldout4`. Each
configuration plays the same file through the
`edge-alm listen --input FILE --realtime` path and reports: end of speech -> final (median, p95),
turn closed -> final (the decode left after the end was decided), splits (finals beyond one per
turn), WER of the finals against the text, and the stream's CPU real-time factor.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import jiwer
import numpy as np
import soundfile as sf
import soxr
from whisper_normalizer.english import EnglishTextNormalizer

from edge_alm import EdgeALM, StreamOptions
from edge_alm.listen import EventPrinter, median_p95, run_listen
from edge_alm.sources import FileSource

WHOLE = [
    "Please call me back when you get home tonight.",
    "The weather is cold and the wind is strong today.",
    "She bought three apples and a loaf of bread.",
    "Open the window and let the fresh air in.",
    "My brother plays the guitar every evening.",
    "Turn off the lights before you leave the room.",
    "The children are playing in the garden.",
    "I would like a cup of coffee with milk.",
]
PAUSED = [  # (first part, second part): a pause inside the sentence
    ("When the meeting is over,", "we can walk to the station together."),
    ("I think the answer is", "somewhere in the second chapter."),
    ("If it rains tomorrow,", "the match will be played indoors."),
    ("The train leaves at", "nine o'clock from platform four."),
    ("We need eggs, flour", "and a little sugar for the cake."),
    ("After lunch,", "the children went down to the river."),
    ("My sister said that", "she would call us after dinner."),
    ("Take the second street", "on the left after the bank."),
]
VOICES = ["en-us+f3", "en-us+klatt2"]
HELDOUT_WHOLE = [
    "The library closes at six on Saturdays.",
    "He forgot his umbrella on the bus this morning.",
    "Our neighbours painted their fence bright green.",
    "Please send me the report before Friday.",
    "The soup needs a little more salt.",
    "We watched the sunset from the top of the hill.",
    "Can you pass me the blue notebook?",
    "The dog barked at the postman again.",
]
HELDOUT_PAUSED = [
    ("Before you leave the house,", "check that the back door is locked."),
    ("The reason I called is", "that the meeting has been moved to Monday."),
    ("When we reached the coast,", "the storm had already passed."),
    ("She told me that", "the tickets were sold out."),
    ("If you see my keys,", "please put them on the kitchen table."),
    ("The best way to learn", "is to practise a little every day."),
    ("Between the bakery and", "the bank there is a small park."),
    ("Although it was late,", "nobody wanted to go home."),
]
HELDOUT_VOICES = ["en-gb+m3", "en-us+f4"]  # espeak-ng ignores "+m3" after "en-gb": its default British voice
HELDOUT2_WHOLE = [  # made after the end-score rule was chosen on tune and heldout, to check it once
    "The bakery on the corner sells fresh bread every morning.",
    "My phone battery died in the middle of the call.",
    "The museum is free for students on Tuesdays.",
    "Please water the plants while I am away.",
    "The bus was late because of the heavy snow.",
    "I left my glasses on the kitchen counter.",
    "Do you know where the nearest pharmacy is?",
    "The concert starts at eight in the evening.",
    "We should buy a new lamp for the living room.",
    "The cat is sleeping on the warm windowsill.",
    "He runs five kilometres before breakfast.",
    "The printer on the second floor is broken.",
]
HELDOUT2_PAUSED = [
    ("As soon as the rain stops,", "we will go for a walk in the park."),
    ("The problem with this plan is", "that nobody has the time to do it."),
    ("On the way to work,", "I saw an old friend from school."),
    ("He said that", "the parcel would arrive on Thursday."),
    ("Unless you hurry,", "you will miss the last train home."),
    ("The only thing we need", "is a map of the old town."),
    ("In the summer,", "the lake is full of small boats."),
    ("Next to the station and", "behind the hotel there is a car park."),
    ("Because the shop was closed,", "we had dinner at home."),
    ("What I would really like is", "a quiet weekend by the sea."),
    ("When the film ended,", "everyone stood up and clapped."),
    ("The key to the garage", "is hanging by the front door."),
]
HELDOUT2_VOICES = ["en-us+m4", "en+f2"]
HELDOUT3_WHOLE = [  # made after heldout2 was measured, to check the end score at 0.6 once
    "The meeting room on the third floor is booked all day.",
    "I need to return these books to the library.",
    "The garden looks lovely after the rain.",
    "Could you turn the music down a little?",
    "My grandmother makes the best apple pie.",
    "The shop opens at half past nine.",
    "We missed the first ten minutes of the film.",
    "The new bridge will be finished next spring.",
    "Put the milk back in the fridge, please.",
    "The taxi is waiting outside the hotel.",
    "Our flight was delayed by two hours.",
    "She writes a letter to her aunt every month.",
]
HELDOUT3_PAUSED = [
    ("If the weather stays like this,", "we can have lunch in the garden."),
    ("The thing that worries me is", "how late the last bus leaves."),
    ("Once you have finished your homework,", "you can watch television."),
    ("They told us that", "the road was closed for repairs."),
    ("Even though it was expensive,", "he bought the red bicycle."),
    ("All we need now", "is someone to carry the boxes."),
    ("At the end of the street,", "there is a small blue house."),
    ("Between the river and", "the old mill there is a footpath."),
    ("Since the lift was broken,", "we took the stairs to the top."),
    ("The last time I saw him was", "at a wedding in the summer."),
    ("After the storm had passed,", "the children ran outside to play."),
    ("The best part of the trip", "was the boat ride on the lake."),
]
HELDOUT3_VOICES = ["en-us+m6", "en+f4"]
HELDOUT4_WHOLE = [  # made after the turn-LM rule was chosen on the four above, to check it once
    "The dentist can see you on Wednesday afternoon.",
    "Remember to lock the car when you park it.",
    "Our team won the match by three goals.",
    "Would you like some more tea?",
    "The baby finally fell asleep after lunch.",
    "Bring a warm jacket for the trip, please.",
    "The post office is next to the town hall.",
    "I lost my wallet somewhere in the market.",
    "The plumber is coming to fix the sink tomorrow.",
    "Can we meet for dinner on Friday?",
    "The river was too cold for swimming.",
    "He painted the kitchen a pale yellow.",
]
HELDOUT4_PAUSED = [
    ("While you were out,", "your sister phoned twice."),
    ("The problem is", "that the printer has run out of paper."),
    ("If the shop is still open,", "could you buy some bread?"),
    ("My uncle told me that", "he used to work on a farm."),
    ("Before the guests arrive,", "we should tidy the living room."),
    ("The first thing you need", "is a good pair of walking boots."),
    ("Across the road from", "the school there is a new cafe."),
    ("As far as I know,", "the museum is closed on Mondays."),
    ("The reason we were late was", "a traffic jam on the motorway."),
    ("When the bell rings,", "the children line up outside."),
    ("Although the film was long,", "nobody fell asleep."),
    ("The only person who knows", "is the manager of the hotel."),
]
HELDOUT4_VOICES = ["en-us+m2", "en+f5"]
# name -> (whole sentences, sentences with a pause, voices, seed of the pause lengths)
RECORDINGS = {
    "tune": (WHOLE, PAUSED, VOICES, 0),
    "heldout": (HELDOUT_WHOLE, HELDOUT_PAUSED, HELDOUT_VOICES, 1),
    "heldout2": (HELDOUT2_WHOLE, HELDOUT2_PAUSED, HELDOUT2_VOICES, 2),
    "heldout3": (HELDOUT3_WHOLE, HELDOUT3_PAUSED, HELDOUT3_VOICES, 3),
    "heldout4": (HELDOUT4_WHOLE, HELDOUT4_PAUSED, HELDOUT4_VOICES, 4),
}


def speak(text: str, voice: str) -> np.ndarray:
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text], capture_output=True, check=True)
    x, sr = sf.read(io.BytesIO(out.stdout), dtype="float32")
    x = soxr.resample(x, sr, 16000).astype(np.float32)
    loud = np.flatnonzero(np.abs(x) > 0.01)
    return x[max(0, loud[0] - 800) : loud[-1] + 800]


def recording(name: str = "tune") -> tuple[np.ndarray, list[str], list[tuple[float, float]]]:
    """Turns with 1.5 s between them; returns audio, texts and each turn's (start, end) seconds."""
    whole, paused, voices, seed = RECORDINGS[name]
    rng = np.random.default_rng(seed)
    parts, texts, spans, t = [np.zeros(8000, np.float32)], [], [], 0.5
    for i in range(len(whole)):
        for kind in ("whole", "paused"):
            voice = voices[(i + (kind == "paused")) % 2]
            if kind == "whole":
                x, text = speak(whole[i], voice), whole[i]
            else:
                a, b = paused[i]
                gap = np.zeros(int(rng.uniform(0.35, 0.6) * 16000), np.float32)
                x, text = np.concatenate([speak(a, voice), gap, speak(b, voice)]), f"{a} {b}"
            parts += [x, np.zeros(24000, np.float32)]
            texts.append(text)
            spans.append((t, t + len(x) / 16000))
            t += len(x) / 16000 + 1.5
    return np.concatenate(parts), texts, spans


def play(model, wav: Path, options: StreamOptions, turn_lm=None) -> tuple[list[dict], float, float]:
    stream = model.stream(options, turn_lm=turn_lm)
    printer = EventPrinter("jsonl", io.StringIO())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run_listen(stream, FileSource(wav, chunk_s=0.1, realtime=True), printer)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    events = [json.loads(line) for line in printer.out.getvalue().splitlines()]
    return events, cpu, wall


def summarise(events: list[dict], texts: list[str], spans, seconds: float, cpu: float) -> dict:
    norm = EnglishTextNormalizer()
    finals = [e for e in events if e["type"] == "final"]
    turn_of = [next((k for k, (a, b) in enumerate(spans) if a - 0.5 <= f["start"] <= b), -1) for f in finals]
    lat = median_p95([f["end_of_speech_to_final_ms"] for f in finals])
    comp = median_p95([f["turn_closed_to_final_ms"] for f in finals])
    return {
        "finals": len(finals),
        "turns": len(texts),
        "splits": len(finals) - len(set(turn_of)),
        "latency_median_ms": round(lat[0], 1),
        "latency_p95_ms": round(lat[1], 1),
        "closed_to_final_median_ms": round(comp[0], 1),
        "closed_to_final_p95_ms": round(comp[1], 1),
        "wer_finals": round(100 * jiwer.wer(norm(" ".join(texts)), norm(" ".join(f["text"] for f in finals))), 1),
        "cpu_rtf": round(cpu / seconds, 3),
        "partials": sum(e["type"] == "partial" for e in events),
    }


# each configuration spells out every option that changed along the way, so a later default
# does not change what an earlier row measured
BASE = {
    "partial_min_window_s": 4.0,
    "min_silence_s": 0.7,
    "min_speech_s": 0.25,
    "text_weight": 0.0,
    "partial_cpu_share": None,
}
ANY_STOP = {"end_confidence": 0.0, "unsure_silence_s": None, "text_end_confidence": None}  # any full stop ends it
SURE = {"early_silence_s": 0.032, "sure_silence_s": 0.1, "unsure_silence_s": None}
NO_TEXT = {"text_end_confidence": None}  # the decoder's full-stop probability alone
TEXT = {"end_confidence": 0.6, "unsure_end_confidence": 0.45, **SURE, **BASE}
MEAN = {**SURE, **BASE, "text_weight": 0.5, "text_end_confidence": None}  # the end score
CONFIGS = {
    "before: fixed 0.4 s silence": StreamOptions(
        early_end=False, partial_min_window_s=10.0, min_silence_s=0.4, min_speech_s=0.25, early_silence_s=0.2
    ),
    "previous default: any full stop ends the turn at 0.2 s, else 0.7 s": StreamOptions(
        early_silence_s=0.2,
        sure_silence_s=0.192,
        **ANY_STOP,
        **BASE,  # both at the pad: 6 chunks of 32 ms
    ),
    "any full stop at 0.1 s, else 0.7 s": StreamOptions(early_silence_s=0.1, sure_silence_s=0.1, **ANY_STOP, **BASE),
    "sure full stop (p >= 0.6) decoded and ending at 0.1 s, else 0.7 s": StreamOptions(
        end_confidence=0.6, early_silence_s=0.1, sure_silence_s=0.1, unsure_silence_s=None, **NO_TEXT, **BASE
    ),
    "sure full stop (p >= 0.6) decoded at 0.032 s, ending at 0.1 s, else 0.7 s": StreamOptions(
        end_confidence=0.6, **SURE, **NO_TEXT, **BASE
    ),
    "the same with p >= 0.5": StreamOptions(end_confidence=0.5, **SURE, **NO_TEXT, **BASE),
    "the same with p >= 0.7": StreamOptions(end_confidence=0.7, **SURE, **NO_TEXT, **BASE),
    "the same + a less sure full stop ends the turn at 0.4 s": StreamOptions(
        end_confidence=0.6, **{**SURE, "unsure_silence_s": 0.4}, **NO_TEXT, **BASE
    ),
    "p >= 0.6, or p >= 0.45 and the text model >= 0.8 (partials every 0.5 s)": StreamOptions(
        text_end_confidence=0.8, **TEXT
    ),
    "p >= 0.6, or p >= 0.45 and the text model >= 0.7": StreamOptions(text_end_confidence=0.7, **TEXT),
    "p >= 0.6, or p >= 0.45 and the text model >= 0.9": StreamOptions(text_end_confidence=0.9, **TEXT),
    "end score (p + text model) / 2 >= 0.55": StreamOptions(**MEAN, end_confidence=0.55),
    "end score (p + text model) / 2 >= 0.5": StreamOptions(**MEAN, end_confidence=0.5),
    "end score (p + text model) / 2 >= 0.6": StreamOptions(**MEAN, end_confidence=0.6),
    "default, or the turn LM >= 0.3": StreamOptions(text_end_confidence=0.8, turn_lm_confidence=0.3, **TEXT),
    "the same, partials at most 0.25 of real time": StreamOptions(
        text_end_confidence=0.8, **{**TEXT, "partial_cpu_share": 0.25}
    ),
    "the same, partials at most 0.15 of real time (default)": StreamOptions(
        text_end_confidence=0.8, **{**TEXT, "partial_cpu_share": 0.15}
    ),
}
WITH_TURN_LM = {"default, or the turn LM >= 0.3"}  # configurations that get --turn-lm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/whisper-base-int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--configs", default=".", help="regex over configuration names (default: all)")
    p.add_argument("--recordings", nargs="+", default=list(RECORDINGS), choices=list(RECORDINGS))
    p.add_argument("--turn-lm", default="models/smollm2-whisper-alm-int8", help="alm bundle of the turn-LM rows")
    args = p.parse_args()
    model = EdgeALM.load(args.model, threads=args.threads)
    turn_lm = None
    if any(re.search(args.configs, name) for name in WITH_TURN_LM):
        from edge_alm.runtime.turn_lm import TurnLM

        turn_lm = TurnLM(args.turn_lm)
    report = {"threads": args.threads, "recordings": {}}
    for rec in args.recordings:
        audio, texts, spans = recording(rec)
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "turns.wav"
            sf.write(wav, audio, 16000)
            for name, opts in CONFIGS.items():
                if not re.search(args.configs, name):
                    continue
                events, cpu, _ = play(model, wav, replace(opts), turn_lm if name in WITH_TURN_LM else None)
                results[name] = summarise(events, texts, spans, len(audio) / 16000, cpu)
                print(rec, "|", name, json.dumps(results[name]), flush=True)
        report["recordings"][rec] = {"audio_s": round(len(audio) / 16000, 1), "configs": results}
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
