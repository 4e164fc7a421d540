"""The `edge-alm` commands for audio-language models: ask, chat, and the alm exports."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_alm.errors import EdgeALMError


def warn_untrained(model) -> None:
    if not model.manifest.config.audio.adapter_trained:
        print(
            f"warning: {model.manifest.path}: this bundle's adapter is untrained (random): "
            "answers do not depend on the audio",
            file=sys.stderr,
        )


def _ask_options(args: argparse.Namespace) -> dict:
    keys = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def _cmd_ask(args: argparse.Namespace) -> int:
    from edge_alm.model import EdgeALM

    model = EdgeALM.load(args.model, threads=args.threads)
    model.require_alm("ask")
    warn_untrained(model)
    chat = model.chat(args.audio or [])
    opts = _ask_options(args)
    if args.number:
        try:
            value = chat.expect_number(args.question)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(json.dumps({"number": round(value, 3)}) if args.format == "json" else f"{value:.2f}")
        return 0
    if args.stream and args.format == "text":
        from edge_alm.runtime.alm import AskOptions

        for piece in chat.stream(args.question, AskOptions(**opts)):
            print(piece, end="", flush=True)
        print()
        answer = chat.turns[-1][1]
    else:
        answer = chat.ask(args.question, **opts)
        if args.format == "json":
            print(
                json.dumps(
                    {
                        "text": answer.text,
                        "tokens": answer.tokens,
                        "finished": answer.finished,
                        "timings": answer.timings,
                    }
                )
            )
        else:
            print(answer.text)
    if args.timings:
        t = answer.timings
        print(
            f"  encode {t['encode_ms']:.0f} ms, prefill {t['prefill_ms']:.0f} ms ({t['prompt_tokens']} tokens), "
            f"first token {t['first_token_ms']:.0f} ms, {t['ms_per_token']:.1f} ms/token ({t['tokens']} tokens)",
            file=sys.stderr,
        )
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    """Several questions about the same clips: read questions from stdin, one per line."""
    from edge_alm.model import EdgeALM
    from edge_alm.runtime.alm import AskOptions

    model = EdgeALM.load(args.model, threads=args.threads)
    model.require_alm("chat")
    warn_untrained(model)
    chat = model.chat(args.audio)
    opts = AskOptions(**_ask_options(args))
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        question = line.strip()
        if not question:
            continue
        for piece in chat.stream(question, opts):
            print(piece, end="", flush=True)
        t = chat.turns[-1][1].timings
        print()
        if args.timings:
            print(
                f"  [prefill {t['prefill_ms']:.0f} ms for {t['prompt_tokens']} tokens, first token "
                f"{t['first_token_ms']:.0f} ms, {t['ms_per_token']:.1f} ms/token]",
                file=sys.stderr,
            )
    return 0


def task_weights(specs: list[str]) -> dict[str, float]:
    """--qa-task-weight TASK=W options -> {task: W}; one-line error on a malformed one."""
    from edge_alm.export.alm_qa_data import QUESTIONS

    out = {}
    for spec in specs:
        task, _, w = spec.partition("=")
        try:
            out[task] = float(w)
        except ValueError:
            raise EdgeALMError(f"--qa-task-weight {spec!r}: expected TASK=W with a number W") from None
        if task not in QUESTIONS or out[task] <= 0:
            raise EdgeALMError(f"--qa-task-weight {spec!r}: task must be one of {', '.join(sorted(QUESTIONS))}, W > 0")
    return out


def lora_targets(spec: str) -> tuple[str, ...]:
    """--qa-lora-targets "q_proj,v_proj" -> the names; one-line error on an unknown one."""
    from edge_alm.export.alm_qa_train import ATTENTION_PROJECTIONS, MLP_PROJECTIONS

    known = ATTENTION_PROJECTIONS + MLP_PROJECTIONS
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    for n in [n for n in names if n not in known] or ([] if names else ["(none)"]):
        raise EdgeALMError(f"--qa-lora-targets: unknown projection {n!r}; choose from {', '.join(known)}")
    return names


def _lm_tok(cache: Path, lm: Path | None = None) -> Path:
    from edge_alm.export.alm_export import default_smollm2, tokenizer_json

    lm = lm or default_smollm2(cache)
    return lm / "tokenizer.json" if (lm / "tokenizer.json").is_file() else tokenizer_json(lm, cache / "lm-tok.json")


def export_alm(args: argparse.Namespace) -> int:
    from edge_alm.export.alm_export import build_alm_bundle, default_smollm2, whisper_alm_parts
    from edge_alm.export.qwen2_audio import qwen2_audio_parts
    from edge_alm.export.vad_asset import silero_vad_onnx
    from edge_alm.export.whisper_weights import default_whisper_base

    cache = Path(args.cache)
    if args.family == "alm-qa":  # train the adapter + LoRA first (resumable), then export with them
        import shutil

        from edge_alm.export.alm_qa_train import build_and_train

        # parsed (and refused) before any corpus is built
        weights_by_task, targets = task_weights(args.qa_task_weight), lora_targets(args.qa_lora_targets)
        if args.qa_init and not Path(args.qa_init).is_file():
            raise EdgeALMError(f"--qa-init weights not found: {args.qa_init}")
        base = Path(args.work_alm) / "base-bundle"
        if not (base / "manifest.json").is_file():
            parts = whisper_alm_parts(default_whisper_base(cache), default_smollm2(cache), _lm_tok(cache), args.pool)
            build_alm_bundle(parts, base, quantize="int8")
        weights = build_and_train(
            Path(args.work_alm),
            base,
            cache,
            args.qa_speech,
            args.qa_sounds,
            args.qa_pairs,
            args.qa_steps,
            pool=args.pool,
            refs=args.qa_refs,
            init=args.qa_init and Path(args.qa_init),
            lr=args.qa_lr,
            clip_facts=args.qa_clip_facts,
            task_weights=weights_by_task,
            lora_targets=targets,
        )
        if args.save_adapter:
            shutil.copy(weights, args.save_adapter)
        args.adapter = str(weights)
    if args.adapter and not Path(args.adapter).is_file():
        raise EdgeALMError(f"adapter weights not found: {args.adapter}")
    if args.family == "mellow":
        from edge_alm.export.mellow_export import mellow_parts

        if not args.checkpoint:
            raise EdgeALMError("export mellow needs --checkpoint FILE (Mellow's v0.ckpt or v0_s.ckpt)")
        if args.lm_dir and not Path(args.lm_dir).is_dir():
            raise EdgeALMError(f"{args.lm_dir}: --lm-dir is not a directory")
        try:
            parts = mellow_parts(Path(args.checkpoint), args.lm_dir and Path(args.lm_dir), cache, not args.no_pad)
        except FileNotFoundError as e:
            raise EdgeALMError(str(e)) from None
    elif args.family == "qwen2-audio":
        if args.source == "default" or not Path(args.source).is_dir():
            raise EdgeALMError("export qwen2-audio needs --source DIR, a local Qwen2-Audio checkpoint directory")
        parts = qwen2_audio_parts(Path(args.source))
    else:
        lm = default_smollm2(cache) if args.lm == "default" else Path(args.lm)
        whisper = default_whisper_base(cache) if args.encoder == "default" else Path(args.encoder)
        tok = _lm_tok(cache, lm)
        parts = whisper_alm_parts(whisper, lm, tok, pool=args.pool, adapter_weights=args.adapter)
    # Silero VAD runs at 16 kHz: not shipped with a model at another rate
    vad = None if args.no_vad or parts.feature_params().sample_rate != 16000 else silero_vad_onnx(cache)
    build_alm_bundle(parts, args.out, quantize=args.quantize, lm_quantize=args.lm_quantize, vad=vad)
    print(args.out)
    return 0


def add_alm_commands(sub, default_alm: str) -> None:
    """`ask` and `chat` (alm bundles)."""
    for name, helptext in (
        ("ask", "answer a question about audio (alm bundles)"),
        ("chat", "several questions about the same clips, one per stdin line (alm bundles)"),
    ):
        a = sub.add_parser(name, help=helptext)
        if name == "ask":
            a.add_argument("question")
            a.add_argument("--stream", action="store_true", help="print the answer as it is generated")
            a.add_argument("--format", choices=("text", "json"), default="text")
            a.add_argument(
                "--number",
                action="store_true",
                help="a 1-5 rating question: print the mean over the LM's digit probabilities, not its text",
            )
        a.add_argument(
            "--audio",
            action="append",
            default=None if name == "ask" else None,
            required=name == "chat",
            help="an audio file (repeat for a second clip)",
        )
        a.add_argument("--model", default=default_alm, help=f"alm bundle directory (default {default_alm})")
        a.add_argument("--max-new-tokens", type=int, default=None)
        a.add_argument("--temperature", type=float, default=None, help="0 = greedy (default: the bundle's)")
        a.add_argument("--top-p", type=float, default=None)
        a.add_argument("--top-k", type=int, default=None)
        a.add_argument("--repetition-penalty", type=float, default=None)
        a.add_argument("--seed", type=int, default=None)
        a.add_argument("--threads", type=int, default=0)
        a.add_argument("--timings", action="store_true", help="print encode/prefill/first-token/per-token times")
        a.set_defaults(func=_cmd_ask if name == "ask" else _cmd_chat)
