"""End-of-speech-to-final latency of the streaming path, replayed at real-time pace.

Joins dev-set clips (clean, up to --max-clip-s long) with pauses into one recording, plays
it through the same path as `edge-alm listen --input FILE --realtime`, and reports median
and p95 end-of-speech-to-final latency, the streaming path's CPU real-time factor, and the
WER of the finals against offline transcription of the same clips.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np
import soundfile as sf
from whisper_normalizer.english import EnglishTextNormalizer

from benchmarks.devset import DEFAULT_DIR, build
from edge_alm import EdgeALM, StreamOptions
from edge_alm.listen import EventPrinter, run_listen
from edge_alm.sources import FileSource


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/whisper-base-int8")
    p.add_argument("--clips", type=Path, default=DEFAULT_DIR)
    p.add_argument("--n", type=int, default=16, help="how many clips to join")
    p.add_argument("--max-clip-s", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-silence", type=float, default=0.4)
    p.add_argument("--out", type=Path, help="write the summary as JSON here")
    args = p.parse_args()
    index = [c for c in build(args.clips) if c["kind"] == "clean" and c["duration"] <= args.max_clip_s][: args.n]
    parts, refs = [], []
    for c in index:
        x, _ = sf.read(str(args.clips / c["file"]), dtype="float32")
        parts += [x, np.zeros(int(1.5 * 16000), np.float32)]
        refs.append(c["text"])
    audio = np.concatenate([np.zeros(8000, np.float32), *parts])
    model = EdgeALM.load(args.model, threads=args.threads)
    norm = EnglishTextNormalizer()
    offline = [model.transcribe(args.clips / c["file"]).text for c in index]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "joined.wav"
        sf.write(wav, audio, 16000)
        stream = model.stream(StreamOptions(min_silence_s=args.min_silence))
        printer = EventPrinter("jsonl", io.StringIO())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        run_listen(stream, FileSource(wav, chunk_s=0.1, realtime=True), printer)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    events = [json.loads(line) for line in printer.out.getvalue().splitlines()]
    finals = [e for e in events if e["type"] == "final"]
    lat = sorted(e["end_of_speech_to_final_ms"] for e in finals)
    ref_text = norm(" ".join(refs))
    summary = {
        "clips": len(index),
        "audio_s": round(len(audio) / 16000, 1),
        "finals": len(finals),
        "threads": args.threads,
        "min_silence_s": args.min_silence,
        "latency_median_ms": round(statistics.median(lat), 1),
        "latency_p95_ms": round(lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))], 1),
        "cpu_rtf": round(cpu / (len(audio) / 16000), 3),
        "wall_s": round(wall, 1),
        "wer_stream": round(100 * jiwer.wer(ref_text, norm(" ".join(e["text"] for e in finals))), 1),
        "wer_offline": round(100 * jiwer.wer(ref_text, norm(" ".join(offline))), 1),
        "partials": sum(e["type"] == "partial" for e in events),
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
