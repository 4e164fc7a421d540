"""Audio input: files (WAV/FLAC/OGG via soundfile), bytes, or (samples, rate) -> mono float32 16 kHz."""

from __future__ import annotations

import io
import math
import struct
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from edge_alm.errors import AudioError
from edge_alm.runtime.pcm import check_rate, to_mono_float

__all__ = ["AudioFile", "AudioInput", "load_audio", "open_audio", "resample", "to_mono_float"]

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
        raise unreadable(name, e) from None
    return resample(to_mono_float(data, name), rate, target_rate)


def unreadable(name: str, e: Exception) -> AudioError:
    why = str(e).splitlines()[0] if str(e) else type(e).__name__
    return AudioError(f"{name}: cannot read audio ({why})")


class AudioFile:
    """A long file's mono samples at target_rate, read and resampled a block at a time when they
    are sliced: a transcription holds one block instead of the whole file (a 10-minute file is
    38 MB as float32 at 16 kHz). Supports len() and slices, as the transcriber uses samples.

    Blocks start on the resampling's period (441 samples at 22.05 kHz are 320 at 16 kHz) and are
    resampled with a margin on each side, so they join into what resampling the whole file gives
    (within rounding); a 16 kHz file is read as it is."""

    BLOCK_S = 30.0  # seconds per block read
    MARGIN_S = 0.05  # seconds of neighbouring audio the resampler sees on each side of a block

    def __init__(self, path: str | Path, target_rate: int = 16000) -> None:
        self.path = Path(path)
        name = str(self.path)
        if not self.path.is_file():
            raise AudioError(f"{name}: audio file not found")
        try:
            self._file = sf.SoundFile(name)
        except Exception as e:  # as in load_audio
            raise unreadable(name, e) from None
        self.rate, self.target = check_rate(self._file.samplerate, name), target_rate
        g = math.gcd(self.rate, target_rate)
        self._src_period, self._out_period = self.rate // g, target_rate // g
        # the length one-shot resampling gives: n * target / rate, rounded half up
        n = self._file.frames
        self._len = (2 * n * target_rate + self.rate) // (2 * self.rate)
        self._block: tuple[int, np.ndarray] = (0, np.zeros(0, np.float32))

    def __len__(self) -> int:
        return self._len

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> AudioFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("AudioFile supports contiguous slices only")
        a, b, _ = key.indices(self._len)
        b = max(a, b)
        start, block = self._block
        if not (start <= a and b <= start + len(block)):
            self._block = self._read_block(a, b)
            start, block = self._block
        return block[a - start : b - start]

    def _read_block(self, a: int, b: int) -> tuple[int, np.ndarray]:
        """Samples [start, end) at the target rate, start <= a on the period, end >= b."""
        per_src, per_out = self._src_period, self._out_period
        first = a // per_out  # periods
        last = -(-max(b, a + int(self.BLOCK_S * self.target)) // per_out)
        margin = -(-int(self.MARGIN_S * self.rate) // per_src) if self.rate != self.target else 0
        lo, hi = max(0, first - margin), last + margin
        self._file.seek(lo * per_src)
        data = self._file.read((hi - lo) * per_src, dtype="float32", always_2d=False)
        x = resample(to_mono_float(data, str(self.path)), self.rate, self.target)
        cut = (first - lo) * per_out
        end = min(self._len, last * per_out)
        return first * per_out, np.ascontiguousarray(x[cut : cut + end - first * per_out])


def open_audio(audio: AudioInput, target_rate: int = 16000, lazy_after_s: float = 60.0) -> np.ndarray | AudioFile:
    """As load_audio, but a file longer than lazy_after_s comes back as an AudioFile, read a
    block at a time as it is sliced."""
    if isinstance(audio, (str, Path)) and Path(audio).is_file():
        try:
            info = sf.info(str(audio))
        except Exception:  # load_audio names the problem
            info = None
        if info is not None and info.samplerate > 0 and info.frames > lazy_after_s * info.samplerate:
            cut = wav_truncation(Path(audio))
            if cut:
                warnings.warn(cut, TruncatedAudioWarning, stacklevel=2)
            return AudioFile(audio, target_rate)
    return load_audio(audio, target_rate)
