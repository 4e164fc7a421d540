"""Audio sources, overflow accounting and the `listen` command in a terminal."""

import json
import os
import pty
import select
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import SENTENCES, espeak, read_wav

from edge_alm.listen import EventPrinter, run_listen
from edge_alm.sources import ChunkQueue, FileSource


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    d = tmp_path_factory.mktemp("listen")
    x, sr = read_wav(espeak(SENTENCES[1], d / "s.wav"))
    x = soxr.resample(x, sr, 16000).astype(np.float32)
    audio = np.concatenate([np.zeros(4000, np.float32), x, np.zeros(12000, np.float32)])
    sf.write(d / "speech.wav", audio, 16000)
    return d / "speech.wav"


def test_overflowing_queue_drops_oldest_and_keeps_going():
    q = ChunkQueue(max_chunks=4)
    produced = 50

    def producer():  # a microphone callback: never blocks
        for i in range(produced):
            q.put(np.full(160, i, np.float32))
        q.put(None)

    t = threading.Thread(target=producer)
    t.start()
    t.join()  # the consumer was "too slow": it starts only now
    got = []
    while (c := q.get(timeout=1)) is not None:
        got.append(int(c[0]))
    assert q.dropped_samples == 160 * (produced - len(got))
    assert q.dropped_samples > 0 and got == sorted(got) and got[-1] == produced - 1


class OverflowingSource:
    """Replays a file but loses every third chunk, as a slow consumer of a microphone would."""

    def __init__(self, path):
        self.inner = FileSource(path, chunk_s=0.1)
        self.sample_rate = 16000
        self.dropped_samples = 0

    def chunks(self):
        for i, c in enumerate(self.inner.chunks()):
            if i % 3 == 2:
                self.dropped_samples += len(c)
                continue
            yield c


def test_stream_reports_audio_the_source_dropped(default_model, speech_wav, tmp_path):
    stream = default_model.stream()
    out = open(tmp_path / "events.jsonl", "w")
    run_listen(stream, OverflowingSource(speech_wav), EventPrinter("jsonl", out))
    out.close()
    assert stream.stats.dropped_samples > 0 and "source overflow" in stream.stats.problems
    assert stream.stats.processed_s > 0  # it kept going


def test_file_source_realtime_pace(speech_wav):
    src = FileSource(speech_wav, chunk_s=0.25, realtime=True)
    t0 = time.perf_counter()
    n = sum(len(c) for c in src.chunks())
    assert n == len(src.samples)
    assert time.perf_counter() - t0 >= 0.9 * n / 16000


def test_listen_jsonl_from_file(default_bundle, speech_wav):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_alm.cli",
            "listen",
            "--model",
            str(default_bundle),
            "--input",
            str(speech_wav),
            "--format",
            "jsonl",
            "--stats",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    finals = [r for r in rows if r["type"] == "final"]
    assert len(finals) == 1 and "call me back" in finals[0]["text"].lower()
    assert {"start", "end", "end_of_speech_to_final_ms"} <= set(finals[0])
    assert any(r["type"] == "partial" for r in rows)
    assert "end of speech to final: median" in proc.stderr


def test_listen_shows_partial_and_final_lines_in_a_terminal(default_bundle, speech_wav):
    pid, fd = pty.fork()
    if pid == 0:  # child: the CLI with a terminal as stdout
        os.execv(
            sys.executable,
            [
                sys.executable,
                "-m",
                "edge_alm.cli",
                "listen",
                "--model",
                str(default_bundle),
                "--input",
                str(speech_wav),
                "--realtime",
            ],
        )
    out = b""
    deadline = time.time() + 60
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
    os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert "\r\x1b[K... " in text  # a live partial line, rewritten in place
    final_lines = [ln for ln in text.replace("\r\x1b[K", "\n").splitlines() if ln.startswith("[")]
    assert len(final_lines) == 1 and "->" in final_lines[0] and "call me back" in final_lines[0].lower()


def test_listen_with_a_device_that_is_not_there_says_so(default_bundle):
    """An input device index no machine has: one line naming the way out, exit 1, whatever
    microphones this machine may have (this test used to skip on any unexpected output)."""
    proc = subprocess.run(
        [sys.executable, "-m", "edge_alm.cli", "listen", "--model", str(default_bundle), "--device", "9999"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert "--input" in lines[0] or "pip install" in lines[0]


def test_listen_ask_answers_each_final_with_the_alm(default_bundle, tiny_alm, speech_wav):
    """`listen --ask`: each final is followed by the ALM's answer about that utterance's audio
    (the tiny alm is random: this checks the path, not the answer)."""
    proc = subprocess.run(
        [sys.executable, "-m", "edge_alm.cli", "listen", "--model", str(default_bundle), "--input", str(speech_wav)]
        + ["--format", "jsonl", "--ask", "Who is speaking?", "--alm-model", str(tiny_alm[1])]
        + ["--max-new-tokens", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [r["type"] for r in rows if r["type"] != "partial"]
    assert kinds == ["final", "answer"]
    answer = rows[-1]
    assert answer["question"] == "Who is speaking?" and answer["start"] == rows[-2]["start"]
    assert "adapter is untrained" in proc.stderr
