"""`edge-alm bench`: the edge-alm part of the benchmark with only the device install, for
boards (Raspberry Pi class) where torch and the peer engines are not installed.

Clips come from a directory of audio files; reference texts are read from the dev set's
`index.json` when present (WER is printed when jiwer and whisper-normalizer are installed).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from edge_alm.errors import EdgeALMError

AUDIO_EXT = (".wav", ".flac", ".ogg")
PACKAGED_CLIPS = Path(__file__).parent / "data" / "bench"  # used when no --clips is given


def _wer(refs: list[str], hyps: list[str]) -> float | None:
    try:
        import jiwer
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError:
        return None
    n = EnglishTextNormalizer()
    pairs = [(n(r), n(h)) for r, h in zip(refs, hyps) if n(r)]
    return 100 * jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]) if pairs else None


def read_index(path: Path) -> dict[str, str]:
    """{file name: reference text} from a dev-set index.json, or a one-line error naming the file."""
    try:
        entries = json.loads(path.read_text())
        return {str(c["file"]): str(c["text"]) for c in entries}
    except json.JSONDecodeError as e:
        raise EdgeALMError(f"{path}: not valid JSON ({e})") from None
    except (KeyError, TypeError) as e:
        raise EdgeALMError(f"{path}: each entry needs 'file' and 'text' (missing {e})") from None


def check_repeats(repeats) -> int:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise EdgeALMError(f"repeats must be 1 or more, got {repeats!r}")
    return repeats


def _clip_files(clips_dir: str) -> list[Path]:
    d = Path(clips_dir)
    if not d.is_dir():
        raise EdgeALMError(f"{d}: clips directory not found")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in AUDIO_EXT)
    if not files:
        raise EdgeALMError(f"{d}: no .wav/.flac/.ogg clips")
    return files


def run_alm_bench(
    model_dir: str, clips_dir: str, threads: int, repeats: int = 1, question: str = "", max_new_tokens: int = 32
) -> dict:
    """Ask `question` about every clip (after one warm-up): encode, prefill, first-token and
    per-token times. Clips longer than the encoder takes are skipped (and counted)."""
    from edge_alm.errors import AudioError
    from edge_alm.model import EdgeALM

    files = _clip_files(clips_dir)
    check_repeats(repeats)
    t0 = time.perf_counter()
    model = EdgeALM.load(model_dir, threads=threads)
    load_s = time.perf_counter() - t0
    question = question or "What do you hear in this recording?"
    rows, skipped = [], []
    for i, f in enumerate(files):
        try:
            if i == 0 or not rows:
                model.ask(question, audio=f, max_new_tokens=max_new_tokens)  # warm-up
            runs = [model.ask(question, audio=f, max_new_tokens=max_new_tokens) for _ in range(repeats)]
        except AudioError as e:
            skipped.append(f"{f.name}: {e}")
            continue
        best = min(runs, key=lambda r: r.timings["total_ms"])
        rows.append({"file": f.name, "text": best.text, **best.timings})
    if not rows:
        raise EdgeALMError(f"{clips_dir}: no clip this model can take ({skipped[0]})")

    def mean(key: str) -> float:
        return statistics.mean(r[key] for r in rows)

    return {
        "model": model_dir,
        "kind": "alm",
        "threads": threads,
        "clips": len(rows),
        "skipped": skipped,
        "load_s": load_s,
        "encode_ms_mean": mean("encode_ms"),
        "prefill_ms_mean": mean("prefill_ms"),
        "prompt_tokens_mean": mean("prompt_tokens"),
        "first_token_ms_mean": mean("first_token_ms"),
        "ms_per_token": sum(r["ms_per_token"] * max(r["tokens"] - 1, 0) for r in rows)
        / max(1, sum(max(r["tokens"] - 1, 0) for r in rows)),
        "rows": rows,
    }


def format_alm_summary(s: dict) -> str:
    skipped = f", {len(s['skipped'])} skipped (too long)" if s["skipped"] else ""
    return (
        f"{s['clips']} clips{skipped}, {s['threads']} thread(s), load {s['load_s']:.1f} s: "
        f"encode {s['encode_ms_mean']:.0f} ms, prefill {s['prefill_ms_mean']:.0f} ms "
        f"({s['prompt_tokens_mean']:.0f} tokens), first token {s['first_token_ms_mean']:.0f} ms, "
        f"{s['ms_per_token']:.1f} ms/token"
    )


def run_bench(
    model_dir: str,
    clips_dir: str,
    threads: int,
    repeats: int = 1,
    window: str = "auto",
    beam: int = 1,
    block_size: int | None = None,
) -> dict:
    """Transcribe every clip (after one warm-up) and sum up speed and WER; block_size: K for a
    blockdecoder bundle."""
    from edge_alm.model import EdgeALM

    d = Path(clips_dir)
    files = _clip_files(clips_dir)
    check_repeats(repeats)
    refs = read_index(d / "index.json") if (d / "index.json").is_file() else {}
    t0 = time.perf_counter()
    model = EdgeALM.load(model_dir, threads=threads, block_size=block_size)
    load_s = time.perf_counter() - t0
    model.transcribe(files[0], window=window, beam_size=beam)  # warm-up
    rows = []
    for f in files:
        runs = [model.transcribe(f, window=window, beam_size=beam) for _ in range(repeats)]
        best = min(runs, key=lambda r: r.timings["total_ms"])
        t = best.timings
        rows.append(
            {
                "file": f.name,
                "duration": best.duration,
                "text": best.text,
                "wall_ms": t["total_ms"],
                "median_ms": statistics.median(r.timings["total_ms"] for r in runs),
                "encoder_ms": t["encoder_ms"],
                "first_token_ms": t["first_token_ms"],
                "decoder_ms": t["decoder_ms"],
                "tokens": t["tokens"],
            }
        )
    audio = sum(r["duration"] for r in rows)
    wall = sum(r["wall_ms"] for r in rows) / 1000
    with_ref = [r for r in rows if r["file"] in refs]
    return {
        "model": model_dir,
        "threads": threads,
        "beam": beam,
        "block_size": getattr(model.model, "block_size", None),
        "clips": len(rows),
        "audio_s": audio,
        "wall_s": wall,
        "rtf": wall / max(audio, 1e-9),
        "load_s": load_s,
        "encoder_ms_mean": statistics.mean(r["encoder_ms"] for r in rows),
        "first_token_ms_mean": statistics.mean(r["first_token_ms"] for r in rows),
        "ms_per_token": sum(r["decoder_ms"] for r in rows) / max(1, sum(r["tokens"] for r in rows)),
        "wer": _wer([refs[r["file"]] for r in with_ref], [r["text"] for r in with_ref]) if with_ref else None,
        "rows": rows,
    }


def format_summary(s: dict) -> str:
    wer = f"{s['wer']:.1f} %" if s["wer"] is not None else "n/a (no references, or jiwer/whisper-normalizer missing)"
    return (
        f"{s['clips']} clips, {s['audio_s']:.1f} s audio, {s['threads']} thread(s): wall {s['wall_s']:.2f} s, "
        f"RTF {s['rtf']:.3f}, load {s['load_s']:.1f} s\n"
        f"encoder {s['encoder_ms_mean']:.0f} ms/clip, first token {s['first_token_ms_mean']:.0f} ms, "
        f"{s['ms_per_token']:.1f} ms/token, WER {wer}"
    )


def thread_counts(requested: list[int] | None) -> list[int]:
    """The thread counts to run: as asked, else 1 and every core."""
    if requested:
        return requested
    return sorted({1, os.cpu_count() or 1})


def run_report(model_dir: str, clips_dir: str | None, threads: list[int] | None, repeats: int = 1, **kw) -> dict:
    """Every thread count on one bundle, with the machine's identity: one JSON-able report."""
    from edge_alm.machine import machine_identity
    from edge_alm.runtime.manifest import load_manifest

    kind = load_manifest(model_dir).kind
    clips = clips_dir or str(PACKAGED_CLIPS)
    runs = []
    for t in thread_counts(threads):
        if kind == "alm":
            runs.append(
                run_alm_bench(model_dir, clips, t, repeats, kw.get("question", ""), kw.get("max_new_tokens", 32))
            )
        else:
            runs.append(
                run_bench(
                    model_dir, clips, t, repeats, kw.get("window", "auto"), kw.get("beam", 1), kw.get("block_size")
                )
            )
    return {"machine": machine_identity(), "bundle": Path(model_dir).name, "kind": kind, "clips": clips, "runs": runs}


def report_markdown(r: dict) -> str:
    m = r["machine"]
    head = [
        f"# edge-alm bench: {r['bundle']} ({r['kind']}) on {m['board'] or m['cpu']}",
        "",
        f"{m['cpu']}, {m['arch']}, {m['cores']} cores, {m['memory_gb']} GB; {m['os']}; Python {m['python']}, "
        f"onnxruntime {m['onnxruntime']} ({', '.join(m['providers'])}); clips: {r['clips']}",
        "",
    ]
    if r["kind"] == "alm":
        head += ["| threads | encode ms | prefill ms (tokens) | first token ms | ms/token |", "|---|---|---|---|---|"]
        head += [
            f"| {s['threads']} | {s['encode_ms_mean']:.0f} | {s['prefill_ms_mean']:.0f} ({s['prompt_tokens_mean']:.0f})"
            f" | {s['first_token_ms_mean']:.0f} | {s['ms_per_token']:.1f} |"
            for s in r["runs"]
        ]
    else:
        head += ["| threads | encoder ms/clip | first token ms | ms/token | RTF | WER |", "|---|---|---|---|---|---|"]
        head += [
            f"| {s['threads']} | {s['encoder_ms_mean']:.0f} | {s['first_token_ms_mean']:.0f} | {s['ms_per_token']:.1f}"
            f" | {s['rtf']:.3f} | {_percent(s['wer'])} |"
            for s in r["runs"]
        ]
    return "\n".join(head) + "\n"


def _percent(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} %"


def write_report(r: dict, out_dir: str) -> tuple[Path, Path]:
    """bench-<host>-<bundle>.json and .md in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{r['machine']['host']}-{r['bundle']}"
    (out / f"{stem}.json").write_text(json.dumps(r, indent=1))
    (out / f"{stem}.md").write_text(report_markdown(r))
    return out / f"{stem}.json", out / f"{stem}.md"
