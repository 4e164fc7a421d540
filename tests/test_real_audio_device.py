"""The microphone path for real: a WAV played into a PulseAudio null sink is recorded back
through sounddevice/PortAudio (ALSA's pulse plugin) from the sink's monitor by `listen`.

Needs Debian's pulseaudio, pulseaudio-utils, libasound2-plugins and libportaudio2, which
`make test` installs; the test starts its own PulseAudio daemon in a private directory.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import SENTENCES, espeak

pytestmark = pytest.mark.skipif(
    not (shutil.which("pulseaudio") and shutil.which("paplay")),
    reason="PulseAudio not installed (make test installs it)",
)


@pytest.fixture
def pulse(tmp_path):
    rt = tmp_path / "pulse"
    rt.mkdir()
    env = {
        **os.environ,
        "PULSE_RUNTIME_PATH": str(rt),
        "PULSE_STATE_PATH": str(rt),
        "PULSE_SERVER": f"unix:{rt}/native",
    }
    daemon = subprocess.Popen(
        [
            "pulseaudio",
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "-L",
            "module-null-sink sink_name=edgetest",
            "-L",
            f"module-native-protocol-unix socket={rt}/native",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(50):
        if (rt / "native").exists():
            break
        time.sleep(0.1)
    else:
        daemon.kill()
        pytest.fail(f"pulseaudio did not start: {daemon.stderr.read().decode()[-300:]}")
    yield env
    daemon.terminate()
    daemon.wait(timeout=10)


def test_microphone_path_records_played_speech(default_bundle, pulse, tmp_path):
    wav = espeak(SENTENCES[1], tmp_path / "speech.wav")
    env = {**pulse, "PULSE_SOURCE": "edgetest.monitor"}
    devices = subprocess.run([sys.executable, "-m", "edge_alm.cli", "devices"], env=env, capture_output=True, text=True)
    assert "pulse" in devices.stdout, devices.stdout + devices.stderr
    listen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_alm.cli",
            "listen",
            "--model",
            str(default_bundle),
            "--device",
            "pulse",
            "--format",
            "jsonl",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(4)  # model load and stream start
        subprocess.run(["paplay", "--device=edgetest", str(wav)], env=env, check=True, timeout=30)
        time.sleep(3)  # silence after the speech closes the utterance
    finally:
        listen.send_signal(signal.SIGINT)
        out, err = listen.communicate(timeout=30)
    assert listen.returncode == 0, err
    finals = [json.loads(line) for line in out.splitlines() if '"final"' in line]
    assert len(finals) == 1, out + err
    assert "call me back" in finals[0]["text"].lower()
