"""Writers for transcription results: text, json, jsonl, srt, vtt."""

from __future__ import annotations

import json
from dataclasses import asdict

from edge_alm.runtime.transcribe import Transcription

FORMATS = ("text", "json", "jsonl", "srt", "vtt")


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def as_dict(file: str, r: Transcription) -> dict:
    return {
        "file": file,
        "text": r.text,
        "language": r.language,
        "duration": round(r.duration, 3),
        "segments": [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(s).items() if k != "tokens"}
            for s in r.segments
        ],
        "timings": {k: round(v, 2) if isinstance(v, float) else v for k, v in r.timings.items()},
    }


def render(file: str, r: Transcription, fmt: str) -> str:
    if fmt == "text":
        return r.text
    if fmt == "jsonl":
        return json.dumps(as_dict(file, r), ensure_ascii=False)
    if fmt == "json":
        return json.dumps(as_dict(file, r), ensure_ascii=False, indent=2)
    if fmt == "srt":
        return "\n".join(
            f"{i}\n{_stamp(s.start, ',')} --> {_stamp(s.end, ',')}\n{s.text.strip()}\n"
            for i, s in enumerate(r.segments, 1)
        )
    if fmt == "vtt":
        body = "\n".join(f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n{s.text.strip()}\n" for s in r.segments)
        return "WEBVTT\n\n" + body
    raise ValueError(f"unknown format {fmt!r}, expected one of {FORMATS}")
