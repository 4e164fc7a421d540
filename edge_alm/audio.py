"""Audio input: files (WAV/FLAC/OGG via soundfile), bytes, or (samples, rate) -> mono float32 16 kHz."""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from edge_alm.errors import AudioError
from edge_alm.runtime.pcm import check_rate, to_mono_float

__all__ = ["AudioInput", "load_audio", "resample", "to_mono_float"]

AudioInput = str | Path | bytes | tuple[np.ndarray, int] | np.ndarray


class TruncatedAudioWarning(UserWarning):
    """The file ends before its header says it should; what is there is still used."""


def wav_truncation(path: Path) -> str | None:
    """A message when a WAV file's data chunk is shorter than its header announces, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
            size = f.seek(0, 2)
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        cid, n = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if cid == b"fmt " and pos + 16 <= len(head):
            byte_rate = struct.unpack("<I", head[pos + 16 : pos + 20])[0]
        if cid == b"data":
            have = size - pos - 8
            if n in (0, 0xFFFFFFFF) or have >= n or not byte_rate:  # 0 / -1: a streamed header
                return None
            return (
                f"{path}: truncated WAV: its header announces {n / byte_rate:.2f} s, the file holds "
                f"{have / byte_rate:.2f} s; using what is there"
            )
        pos += 8 + n + (n & 1)
    return None


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    rate = check_rate(rate)
    if rate == target or samples.size == 0:
        return samples
    return soxr.resample(samples, rate, target, quality="HQ").astype(np.float32, copy=False)


def load_audio(audio: AudioInput, target_rate: int = 16000) -> np.ndarray:
    """Any supported input -> mono float32 samples at target_rate."""
    if isinstance(audio, tuple):
        if len(audio) != 2:
            raise AudioError("audio tuple must be (samples, sample_rate)")
        samples, rate = audio
        return resample(to_mono_float(samples, "samples"), check_rate(rate, "samples"), target_rate)
    if isinstance(audio, np.ndarray):
        return to_mono_float(audio, "samples")  # assumed to be at target_rate already
    if isinstance(audio, (bytes, bytearray)):
        name, src = "audio bytes", io.BytesIO(audio)
    elif isinstance(audio, (str, Path)):
        path = Path(audio)
        if path.is_dir():
            raise AudioError(f"{path}: is a directory, not an audio file")
        if not path.is_file():
            raise AudioError(f"{path}: audio file not found")
        name, src = str(path), str(path)
        cut = wav_truncation(path)
        if cut:
            warnings.warn(cut, TruncatedAudioWarning, stacklevel=2)
    else:
        raise AudioError(f"audio must be a path, bytes, (samples, sample_rate) or an array, got {type(audio).__name__}")
    try:
        data, rate = sf.read(src, dtype="float32")  # (T,) for mono: no copy to mix channels
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(f"{name}: cannot read audio ({why})") from None
    return resample(to_mono_float(data, name), rate, target_rate)
