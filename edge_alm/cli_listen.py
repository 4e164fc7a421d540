"""`edge-alm listen` (live transcription from a microphone or a file at real-time pace) and
`edge-alm devices`."""

from __future__ import annotations

import argparse
import sys


def _cmd_listen(args: argparse.Namespace) -> int:
    from edge_alm.listen import EventPrinter, run_listen
    from edge_alm.model import EdgeALM
    from edge_alm.runtime.stream import StreamOptions
    from edge_alm.sources import FileSource, MicrophoneSource

    if args.input:
        source = FileSource(args.input, chunk_s=args.chunk, realtime=args.realtime)
    else:
        source = MicrophoneSource(args.device, chunk_s=args.chunk)
    model = EdgeALM.load(args.model, threads=args.threads)
    given = {
        k: getattr(args, k)
        for k in ("end_confidence", "text_weight", "text_end_confidence", "turn_lm_confidence", "partial_cpu_share")
        if getattr(args, k) is not None
    }
    if args.no_text_model:  # overrides the text model's options
        given |= {"text_weight": 0.0, "text_end_confidence": None}
    opts = StreamOptions(
        min_silence_s=args.min_silence,
        partial_interval_s=args.partial_interval,
        early_end=not args.no_early_end,
        **given,
    )
    turn_lm = None
    if args.turn_lm:
        from edge_alm.runtime.turn_lm import TurnLM

        turn_lm = TurnLM(args.turn_lm)
    stream = model.stream(opts, turn_lm=turn_lm, language=args.language)
    printer = EventPrinter(args.format)
    if args.ask:
        from edge_alm.cli_alm import warn_untrained
        from edge_alm.listen import AskEachFinal

        alm = EdgeALM.load(args.alm_model, threads=args.threads)
        alm.require_alm("listen --ask")
        warn_untrained(alm)
        printer = AskEachFinal(printer, alm, args.ask, max_new_tokens=args.max_new_tokens)
    if not args.input and args.format == "text":
        print("listening (Ctrl-C to stop)...", file=sys.stderr)
    run_listen(stream, source, printer)
    st = stream.stats
    if st.dropped_samples:
        print(
            f"warning: dropped {st.dropped_samples} samples in {st.dropped_chunks} chunks "
            f"({'; '.join(sorted(set(st.problems)))})",
            file=sys.stderr,
        )
    if args.stats:
        print(printer.stats_line(), file=sys.stderr)
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from edge_alm.sources import input_devices

    devices = input_devices()
    if not devices:
        print("no audio input devices found; `edge-alm listen --input FILE --realtime` replays a file instead")
        return 1
    for d in devices:
        print(f"{d['index']:3d}  {d['name']}  ({d['channels']} ch, {d['rate']:.0f} Hz)")
    return 0


def add_listen_commands(sub, default_model: str, default_alm: str) -> None:
    """`listen` and `devices`."""
    li = sub.add_parser("listen", help="live transcription from the microphone (or a file in real time)")
    li.add_argument("--model", default=default_model)
    li.add_argument("--device", default=None, help="input device index or name (see `edge-alm devices`)")
    li.add_argument("--input", help="replay this audio file instead of the microphone")
    li.add_argument("--realtime", action="store_true", help="with --input: deliver audio at real-time pace")
    li.add_argument("--format", choices=("text", "jsonl"), default="text")
    li.add_argument("--chunk", type=float, default=0.1, help="seconds of audio per chunk from the source")
    li.add_argument(
        "--min-silence", type=float, default=0.7, help="silence that ends an utterance not ending a sentence (s)"
    )
    li.add_argument("--no-early-end", action="store_true", help="always wait --min-silence, even after a full stop")
    li.add_argument(
        "--end-confidence",
        type=float,
        help="a text ending a sentence whose end score (decoder's full-stop probability and end-of-turn text "
        "model's, mixed by --text-weight) is at least this ends the turn after 0.1 s of silence "
        "(default: StreamOptions.end_confidence)",
    )
    li.add_argument(
        "--text-weight",
        type=float,
        help="the text model's share of the end score, 0 to 1 (default: StreamOptions.text_weight)",
    )
    li.add_argument(
        "--text-end-confidence",
        type=float,
        help="a full stop of p from StreamOptions.unsure_end_confidence ends the turn too when the text model gives "
        "the words at least this (default: StreamOptions.text_end_confidence)",
    )
    li.add_argument(
        "--turn-lm",
        default=None,
        help="an alm bundle whose LM also judges the words: the turn ends after 0.1 s of silence when it expects "
        "a full stop next, written or not (e.g. models/smollm2-whisper-alm-int8; ~20 ms of one core a check)",
    )
    li.add_argument(
        "--turn-lm-confidence",
        type=float,
        help="with --turn-lm: the probability of a full stop next that ends the turn (default: "
        "StreamOptions.turn_lm_confidence)",
    )
    li.add_argument(
        "--no-text-model", action="store_true", help="end turns by the decoder's full-stop probability alone"
    )
    li.add_argument("--partial-interval", type=float, default=0.5, help="seconds between partial results")
    li.add_argument(
        "--partial-cpu-share",
        type=float,
        help="partial results take at most this share of real time: costly ones come less often "
        "(default: StreamOptions.partial_cpu_share)",
    )
    li.add_argument("--language", default="en")
    li.add_argument("--threads", type=int, default=0)
    li.add_argument("--stats", action="store_true", help="print end-of-speech-to-final median and p95 at exit")
    li.add_argument("--ask", default=None, help="answer this question about each utterance (with --alm-model)")
    li.add_argument("--alm-model", default=default_alm, help=f"alm bundle for --ask (default {default_alm})")
    li.add_argument("--max-new-tokens", type=int, default=64, help="answer budget for --ask")
    li.set_defaults(func=_cmd_listen)
    dv = sub.add_parser("devices", help="list audio input devices")
    dv.set_defaults(func=_cmd_devices)
