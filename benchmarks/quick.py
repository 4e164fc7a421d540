"""Quick latency check of one bundle on one clip: encoder, first token, ms/token, RTF."""

from __future__ import annotations

import argparse
import statistics

from edge_alm import EdgeALM


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("audio", nargs="?", default="samples/demo.wav")
    p.add_argument("--model", default="models/whisper-base-int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--beam", type=int, default=1)
    args = p.parse_args()
    model = EdgeALM.load(args.model, threads=args.threads)
    for window in ("auto", "30s"):
        model.transcribe(args.audio, window=window, beam_size=args.beam)  # warm-up
        runs = [model.transcribe(args.audio, window=window, beam_size=args.beam) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r.timings["total_ms"])
        t = best.timings
        per_token = t["decoder_ms"] / max(1, t["tokens"])
        med = statistics.median(r.timings["total_ms"] for r in runs)
        print(
            f"window={window:4s} audio {best.duration:.2f} s | encoder {t['encoder_ms']:.0f} ms | "
            f"first token {t['first_token_ms']:.0f} ms | {per_token:.1f} ms/token ({t['tokens']} tokens) | "
            f"total {t['total_ms']:.0f} ms (median {med:.0f}) | RTF {t['rtf']:.3f}"
        )
        print(f"  text: {best.text}")


if __name__ == "__main__":
    main()
