"""Where the BlockDecoder student's errors are: WER by kind of dev-set clip (clean, noisy, long;
text on no-speech clips) for the teacher and the student at K=1 and K=4.

K=1 is the ablation that decides the design: at K=1 nothing is predicted inside a block, so
what is lost there comes from the split itself (text-encoder layers without cross-attention),
not from predicting K tokens at once.

    python -m benchmarks.blockdecoder_errors --out benchmarks/results/x86-2core
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

from edge_alm.model import EdgeALM

RUNS = [("teacher", "models/whisper-base-int8", None), ("student K=1", None, 1), ("student K=4", None, 4)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", default="models/whisper-base-blockdecoder-int8")
    p.add_argument("--clips", type=Path, default=Path("benchmarks/data/clips"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    norm = EnglishTextNormalizer()
    index = json.loads((args.clips / "index.json").read_text())
    table: dict[str, dict[str, str]] = {}
    per_clip = []
    for name, bundle, k in RUNS:
        model = EdgeALM.load(bundle or args.student, threads=args.threads, block_size=k)
        refs, hyps = defaultdict(list), defaultdict(list)
        spoke = 0
        for clip in index:
            text = model.transcribe(args.clips / clip["file"]).text
            per_clip.append({"run": name, "file": clip["file"], "kind": clip["kind"], "text": text})
            if clip["kind"] == "nospeech":
                spoke += bool(norm(text).strip())
                continue
            refs[clip["kind"]].append(norm(clip["text"]))
            hyps[clip["kind"]].append(norm(text))
        row = {kind: f"{100 * jiwer.wer(refs[kind], hyps[kind]):.1f} %" for kind in refs}
        row["all speech"] = f"{100 * jiwer.wer(sum(refs.values(), []), sum(hyps.values(), [])):.1f} %"
        row["no-speech clips with text"] = f"{spoke} of {sum(c['kind'] == 'nospeech' for c in index)}"
        table[name] = row
        print(name, row, flush=True)
    cols = list(next(iter(table.values())))
    lines = ["| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(row[c] for c in cols) + " |" for name, row in table.items()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "blockdecoder_errors.md").write_text("\n".join(lines) + "\n")
    (args.out / "blockdecoder_errors.json").write_text(json.dumps({"table": table, "clips": per_clip}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
