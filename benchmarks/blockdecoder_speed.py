"""Decoder cost per token: standard Whisper decoder against BlockDecoder splits and K.

Times single graph calls (median of repeats, same process, interleaved) with a realistic
context (a 10 s window, 24 tokens of prefix): one standard decoder step; one Merger step;
one text-encoder pass over K tokens. BlockDecoder ms/token = Merger step + (text encoder
pass + context concat) / K. Weights do not change the cost, so untrained students built
from whisper-base serve here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from edge_alm.runtime.blockdecoder import BlockDecoderModel
from edge_alm.runtime.kv_cache import KVCache
from edge_alm.runtime.manifest import load_manifest
from edge_alm.runtime.seq2seq import Seq2SeqModel
from edge_alm.runtime.session import SessionConfig


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def build_untrained(split: str, out: Path, quantize: str) -> Path:
    if (out / "manifest.json").is_file():
        return out
    from edge_alm.export.blockdecoder_export import build_blockdecoder_bundle
    from edge_alm.export.blockdecoder_model import BlockDecoder
    from edge_alm.export.whisper_weights import default_whisper_base
    from transformers import WhisperForConditionalGeneration

    hf = default_whisper_base(Path(".cache"))
    w = WhisperForConditionalGeneration.from_pretrained(str(hf), attn_implementation="eager").eval()
    n_text, n_merger = (int(x) for x in split.split("+"))
    return build_blockdecoder_bundle(w, BlockDecoder(w, n_text, n_merger), hf, out, quantize=quantize)


def time_split(bm: BlockDecoderModel, split: str, feats: np.ndarray, prefix: list[int], repeats: int) -> dict:
    audio = bm.encode(feats)
    tc = KVCache(bm._lt, 1, bm._h, bm._dh)
    tk, tv = bm._text(prefix, tc)
    ctx = (np.concatenate([tk, audio[0]], 3), np.concatenate([tv, audio[1]], 3))
    empty = KVCache(bm._lm, 1, bm._h, bm._dh)
    feeds = {
        "tokens": np.array([[1100]]),
        "offset": np.array(len(prefix), np.int64),
        "self_k": empty.k,
        "self_v": empty.v,
        "ctx_k": ctx[0],
        "ctx_v": ctx[1],
    }
    merger_ms = _median_ms(lambda: bm.merger.run(feeds), repeats)
    concat_ms = _median_ms(lambda: (np.concatenate([tk, audio[0]], 3), np.concatenate([tv, audio[1]], 3)), repeats)

    def text_pass(k: int) -> None:
        c = KVCache(bm._lt, 1, bm._h, bm._dh)
        c.update(tc.k, tc.v)
        bm._text(list(range(2000, 2000 + k)), c)

    rows = {}
    for k in (2, 4, 8):
        text_ms = _median_ms(lambda k=k: text_pass(k), repeats)
        rows[f"BlockDecoder {split}, K={k}"] = {
            "merger_step_ms": merger_ms,
            "text_pass_ms": text_ms,
            "ms_per_token": merger_ms + (text_ms + concat_ms) / k,
        }
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--whisper", default="models/whisper-base-int8")
    p.add_argument("--splits", nargs="+", default=["4+2", "5+1"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    cfg = SessionConfig(threads=args.threads)
    wm = load_manifest(args.whisper)
    std = Seq2SeqModel(wm, cfg)
    feats = np.random.default_rng(0).standard_normal((80, 1000)).astype(np.float32) * 0.5
    cross = std.encode(feats)
    prefix = list(range(1000, 1024))
    d = wm.decoder
    cache = KVCache(d.n_layers, 1, d.n_heads, d.head_dim)
    std.step(np.array([prefix]), cache, cross)

    def std_step():
        c = KVCache(d.n_layers, 1, d.n_heads, d.head_dim)
        c.update(cache.k, cache.v)
        std.step(np.array([[1100]]), c, cross)

    rows = {"standard decoder": {"ms_per_token": _median_ms(std_step, args.repeats)}}
    for split in args.splits:
        bundle = build_untrained(
            split, Path(".cache") / f"bd-speed-{split}-{wm.graphs['decoder'].precision}", wm.graphs["decoder"].precision
        )
        rows.update(time_split(BlockDecoderModel(load_manifest(bundle), cfg), split, feats, prefix, args.repeats))
    base = rows["standard decoder"]["ms_per_token"]
    print(f"{'decoder':28s} {'ms/token':>9s} {'vs standard':>12s}")
    for name, r in rows.items():
        r["vs_standard"] = r["ms_per_token"] / base
        print(f"{name:28s} {r['ms_per_token']:9.2f} {r['vs_standard']:12.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"threads": args.threads, "precision": wm.graphs["decoder"].precision, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
