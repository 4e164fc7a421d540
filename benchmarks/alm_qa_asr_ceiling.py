"""What the audio-QA model's frozen encoder allows for "what is said?": Whisper-base's own
decoder (the encoder's trained reader) transcribing the held-out clean speech clips of the
audio-QA corpus, WER overall and per held-out voice.

    python -m benchmarks.alm_qa_asr_ceiling [--whisper models/whisper-base-int8] [--work .cache/alm-qa-v6]

The audio-QA model's adapter and LoRA sit on the same encoder frames (pooled 4x), so an LM
reading them is not expected to transcribe better than the decoder trained with that encoder.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from benchmarks.alm_qa_eval import ROOT, load_clips, wer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--whisper", default=str(ROOT / "models/whisper-base-int8"))
    ap.add_argument("--work", default=str(ROOT / ".cache/alm-qa-v6"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/x86-2core"))
    ap.add_argument("--name", default="alm_qa_asr_ceiling")
    args = ap.parse_args()
    from edge_alm import EdgeALM

    asr = EdgeALM.load(args.whisper, threads=args.threads)
    audio, _ = load_clips(Path(args.work))
    index = json.loads((Path(args.work) / "heldout" / "index.json").read_text())
    clean = [c for c in index["clips"] if c["kind"] == "speech" and c["labels"].get("problem") == "nothing"]
    pairs: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    rows = []
    for c in clean:
        got = asr.transcribe((audio[c["id"]], 16000)).text.strip()
        rows.append({"voice": c["labels"]["voice"], "text": c["labels"]["text"], "got": got})
        for key in ("all", c["labels"]["voice"]):
            pairs[key][0].append(c["labels"]["text"])
            pairs[key][1].append(got)
    scores = {k: {"n": len(r), "wer": round(wer(r, h), 1)} for k, (r, h) in sorted(pairs.items())}
    lines = [
        f"# Whisper-base's own decoder on the audio-QA held-out clean speech ({Path(args.whisper).name})",
        "",
        "The ceiling for transcription through an LM on the same frozen encoder.",
        "",
        "| voice | clips | WER |",
        "|---|---|---|",
        *(f"| {k} | {s['n']} | {s['wer']:.1f} % |" for k, s in scores.items()),
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps({"model": args.whisper, "wer": scores, "rows": rows}, indent=1))
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
