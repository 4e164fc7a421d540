"""edge-alm int8 vs faster-whisper int8, greedy, on the same weights, clips and threads.

Prints per-engine wall time over the dev set (best of N repeats per clip), the ratio to
faster-whisper, and WER after Whisper's English normalizer.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

from benchmarks.devset import DEFAULT_DIR, build
from edge_alm import EdgeALM


def run(engines: dict, clips: list[Path], repeats: int) -> dict[str, tuple[float, list[str]]]:
    best = {name: [float("inf")] * len(clips) for name in engines}
    texts = {name: [""] * len(clips) for name in engines}
    for fn in engines.values():
        fn(clips[0])  # warm-up
    for _ in range(repeats):
        for i, clip in enumerate(clips):
            for name, fn in engines.items():  # interleaved, so drift hits every engine alike
                t0 = time.perf_counter()
                texts[name][i] = fn(clip)
                best[name][i] = min(best[name][i], time.perf_counter() - t0)
    return {name: (sum(best[name]), texts[name]) for name in engines}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="models/whisper-base-int8")
    p.add_argument("--ct2", default=".cache/whisper-base-ct2", help="faster-whisper model dir (same weights)")
    p.add_argument("--devset", type=Path, default=DEFAULT_DIR)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    from faster_whisper import WhisperModel

    index = build(args.devset)
    clips = [args.devset / c["file"] for c in index]
    refs = [c["text"] for c in index]
    ours = EdgeALM.load(args.model, threads=args.threads)
    fw = WhisperModel(args.ct2, device="cpu", compute_type="int8", cpu_threads=args.threads)

    def fw_greedy(path: Path) -> str:
        segments, _ = fw.transcribe(str(path), beam_size=1, language="en")
        return "".join(s.text for s in segments).strip()

    engines = {
        "faster-whisper int8 greedy": fw_greedy,
        "edge-alm int8 greedy, auto window": lambda c: ours.transcribe(c).text,
        "edge-alm int8 greedy, 30 s window": lambda c: ours.transcribe(c, window="30s").text,
    }
    results = run(engines, clips, args.repeats)
    norm = EnglishTextNormalizer()
    base = results["faster-whisper int8 greedy"][0]
    print(f"{len(clips)} clips, {args.threads} threads, best of {args.repeats}")
    print(f"{'engine':40s} {'wall s':>8s} {'vs fw':>7s} {'WER %':>7s}")
    for name, (wall, hyps) in results.items():
        wer = jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps]) * 100
        print(f"{name:40s} {wall:8.2f} {wall / base:7.2f} {wer:7.1f}")


if __name__ == "__main__":
    main()
