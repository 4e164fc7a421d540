"""Turn a comparison run into metrics, a markdown report and PNG plots."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from pathlib import Path

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

from benchmarks.devset import KINDS

SPEECH_KINDS = tuple(k for k in KINDS if k != "nospeech")  # the report's WER columns, in the dev set's order

_norm = EnglishTextNormalizer()


def machine_info() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("onnxruntime", "numpy", "ctranslate2", "faster-whisper", "torch", "transformers", "optimum-onnx"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _wer(refs: list[str], hyps: list[str]) -> float:
    pairs = [(_norm(r), _norm(h)) for r, h in zip(refs, hyps) if _norm(r)]
    return 100 * jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]) if pairs else float("nan")


def _wer_at(clips: list[dict], rows: list[dict], idx: list[int]) -> float:
    """WER of an engine's texts (`rows`) on the clips at positions `idx`."""
    return _wer([clips[i]["text"] for i in idx], [rows[i].get("text", "") for i in idx])


def metrics(run: dict, clips: list[dict]) -> dict[str, dict]:
    audio_s = sum(c["duration"] for c in clips)
    out = {}
    for name, r in run.items():
        rows = r["clips"]
        by_kind = lambda k: [i for i, c in enumerate(clips) if c["kind"] in k]  # noqa: E731
        wer_of = lambda idx, rows=rows: _wer_at(clips, rows, idx)  # noqa: E731
        speech = by_kind(SPEECH_KINDS)
        m = {
            "wall_s": sum(x["wall_min_ms"] for x in rows) / 1000,
            "wall_median_s": sum(x["wall_median_ms"] for x in rows) / 1000,
            "wer": wer_of(speech),
            **{f"wer_{k}": wer_of(by_kind((k,))) for k in SPEECH_KINDS},
            # a clip whose text holds more than 1.5x the reference's words: an utterance repeated
            "doubled": sum(
                1
                for i in speech
                if len(_norm(rows[i].get("text", "")).split()) > 1.5 * len(_norm(clips[i]["text"]).split())
            ),
            "nospeech_with_text": sum(1 for i in by_kind(("nospeech",)) if rows[i].get("text", "").strip()),
            "load_s": r["load_s"],
            "peak_rss_mb": r.get("peak_rss_mb"),
            "size_mb": r["size_mb"],
        }
        m["rtf"] = m["wall_s"] / audio_s
        if "first_token_ms" in rows[0]:
            m["first_token_ms"] = sum(x["first_token_ms"] for x in rows) / len(rows)
            m["ms_per_token"] = sum(x["decode_ms"] for x in rows) / max(1, sum(x["tokens"] for x in rows))
        out[name] = m
    return out


def _plots(data: dict, out: Path, threads: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run, clips = data["runs"][threads], data["clips"]
    ms = metrics(run, clips)
    dur = [c["duration"] for c in clips]
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, r in run.items():
        if "beam5" in name:
            continue
        ax.scatter(dur, [x["wall_min_ms"] / 1000 for x in r["clips"]], s=12, label=name)
    ax.set_xlabel("clip length (s)")
    ax.set_ylabel("wall time (s), best of repeats")
    ax.set_title(f"Latency against clip length, greedy, {threads} threads")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    lat = f"latency_{threads}t.png"
    fig.tight_layout()
    fig.savefig(out / lat, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, m in ms.items():
        # clean clips: the peers that loop on noise or cut the long clip would squash the axis
        ax.scatter(m["rtf"], m["wer_clean"], s=25)
        ax.annotate(name, (m["rtf"], m["wer_clean"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("real-time factor (log)")
    ax.set_ylabel("WER % on clean clips")
    ax.set_title(f"WER against real-time factor, {threads} threads")
    ax.grid(alpha=0.3)
    wr = f"wer_rtf_{threads}t.png"
    fig.tight_layout()
    fig.savefig(out / wr, dpi=110)
    plt.close(fig)
    return [lat, wr]


def write_report(data: dict, out: Path) -> str:
    clips = data["clips"]
    mi = data["machine"]
    lines = [
        "# edge-alm benchmark report",
        "",
        f"Machine: {mi['cpu']}, {mi['cores']} cores, {mi['machine']}, Python {mi['python']}; "
        + ", ".join(f"{k} {v}" for k, v in mi["versions"].items()),
        "",
        f"{len(clips)} clips ({sum(c['duration'] for c in clips):.0f} s of audio): "
        + ", ".join(f"{sum(c['kind'] == k for c in clips)} {k}" for k in (*SPEECH_KINDS, "nospeech"))
        + f". Wall time per clip is the best of {data['repeats']} interleaved repeats (median in brackets). "
        "Ratios are against the baseline measured in the same run. WER over every speech clip; near9s = 8.3-8.9 s "
        "clips; doubled = clips whose text has over 1.5x the reference's words.",
        "",
    ]
    for threads, run in data["runs"].items():
        ms = metrics(run, clips)
        base = ms[data["baseline"]]["wall_s"]
        lines += [
            f"## {threads} thread(s)",
            "",
            "| engine | wall s (median) | vs baseline | RTF | WER % | " + " | ".join(SPEECH_KINDS) + " | doubled "
            "| text on no-speech | first token ms | ms/token | load s | peak RSS MB | size MB |",
            "|---|---|---|---|---|" + "---|" * len(SPEECH_KINDS) + "---|---|---|---|---|---|---|",
        ]
        for name, m in sorted(ms.items(), key=lambda kv: kv[1]["wall_s"]):
            ft = f"{m['first_token_ms']:.0f}" if "first_token_ms" in m else "-"
            mpt = f"{m['ms_per_token']:.1f}" if "ms_per_token" in m else "-"
            lines.append(
                f"| {name} | {m['wall_s']:.2f} ({m['wall_median_s']:.2f}) | {m['wall_s'] / base:.2f} | "
                f"{m['rtf']:.3f} | {m['wer']:.1f} | "
                + "".join(f"{m.get(f'wer_{k}', float('nan')):.1f} | " for k in SPEECH_KINDS)
                + f"{m.get('doubled', 0)} | "
                f"{m['nospeech_with_text']}/3 | {ft} | {mpt} | {m['load_s']:.1f} | {m['peak_rss_mb']:.0f} | "
                f"{m['size_mb']:.0f} |"
            )
        for png in _plots(data, out, threads):
            lines += ["", f"![{png}]({png})"]
        lines.append("")
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    return text
