"""`edge-alm listen`: live transcription from the microphone or a file replayed in real time."""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import sys
import threading
from typing import TextIO

from edge_alm.runtime.stream import Final, Partial, Stream


class EventPrinter:
    """text: partials rewrite one terminal line, finals get their own; jsonl: one object per event."""

    def __init__(self, fmt: str, out: TextIO = sys.stdout) -> None:
        self.fmt, self.out = fmt, out
        self.tty = out.isatty()
        self.latencies: list[float] = []  # end of speech -> final (what the user waits)
        self.compute: list[float] = []  # turn closed -> final (decode left after the end was decided)

    def __call__(self, event: Partial | Final) -> None:
        if isinstance(event, Final):
            self.latencies.append(event.end_of_speech_to_final_ms)
            self.compute.append(event.turn_closed_to_final_ms)
        if self.fmt == "jsonl":
            row = {"type": "final" if isinstance(event, Final) else "partial", "text": event.text}
            if isinstance(event, Final):
                row.update(
                    start=round(event.start, 3),
                    end=round(event.end, 3),
                    end_of_speech_to_final_ms=round(event.end_of_speech_to_final_ms, 1),
                    turn_closed_to_final_ms=round(event.turn_closed_to_final_ms, 1),
                )
            else:
                row.update(stable=event.stable, start=round(event.start, 3))
            print(json.dumps(row, ensure_ascii=False), file=self.out, flush=True)
            return
        if isinstance(event, Partial):
            if self.tty:  # one live line, rewritten in place
                width = shutil.get_terminal_size((100, 20)).columns - 4
                text = event.text[-width:] if len(event.text) > width else event.text
                print(f"\r\x1b[K... {text}", end="", file=self.out, flush=True)
            return
        clear = "\r\x1b[K" if self.tty else ""
        print(f"{clear}[{event.start:7.2f} -> {event.end:7.2f}] {event.text}", file=self.out, flush=True)

    def stats_line(self) -> str:
        if not self.latencies:
            return "no finals"
        lat, comp = median_p95(self.latencies), median_p95(self.compute)
        return (
            f"{len(self.latencies)} finals; end of speech to final: median {lat[0]:.0f} ms, p95 {lat[1]:.0f} ms; "
            f"turn closed to final: median {comp[0]:.0f} ms, p95 {comp[1]:.0f} ms"
        )


def median_p95(values: list[float]) -> tuple[float, float]:
    v = sorted(values)
    return statistics.median(v), v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]


class AskEachFinal:
    """`listen --ask`: prints each event, then answers `question` about every final's audio
    with an alm model (the ALM hears the utterance itself, not its transcript)."""

    def __init__(self, printer: EventPrinter, model, question: str, **ask_options) -> None:
        self.printer, self.model, self.question, self.opts = printer, model, question, ask_options

    def __call__(self, event: Partial | Final) -> None:
        self.printer(event)
        if not isinstance(event, Final) or event.audio is None:
            return
        answer = self.model.ask(self.question, audio=(event.audio, 16000), **self.opts)
        if self.printer.fmt == "jsonl":
            row = {"type": "answer", "question": self.question, "text": answer.text, "start": round(event.start, 3)}
            row["first_token_ms"] = round(answer.timings["first_token_ms"], 1)
            print(json.dumps(row, ensure_ascii=False), file=self.printer.out, flush=True)
        else:
            print(f"    -> {answer.text}", file=self.printer.out, flush=True)

    def stats_line(self) -> str:
        return self.printer.stats_line()


def run_listen(stream: Stream, source, printer: EventPrinter) -> None:
    reported = 0
    chunks = source.chunks()
    previous = None
    if hasattr(source, "close") and threading.current_thread() is threading.main_thread():
        # Ctrl-C ends the source's chunks, so the loop stops between chunks and the device stream
        # closes in this thread: a KeyboardInterrupt in the middle of a decode could leave the
        # stream open until interpreter exit, where closing it can wait forever on its callback
        previous = signal.signal(signal.SIGINT, lambda *_: source.close())
    try:
        for chunk in chunks:
            stream.accept_waveform(chunk, source.sample_rate)
            if source.dropped_samples > reported:  # audio the source lost before we saw it
                stream.report_dropped(source.dropped_samples - reported)
                reported = source.dropped_samples
            for e in stream.events():
                printer(e)
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if hasattr(chunks, "close"):
            chunks.close()  # a generator: closes the device stream now if the loop left early
        if hasattr(source, "close"):
            source.close()
    stream.finish()
    for e in stream.events():
        printer(e)
