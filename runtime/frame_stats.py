"""Per-frame level and pitch of a clip, for adapters that take them beside the encoder frames.

Whisper's encoder is trained to hear words whatever the level and the voice: its pooled frames
keep too little of a clip's loudness for "which clip is louder" and too little of a voice's pitch
for "male or female" on voices a small adapter was not trained on (both measured near chance in
benchmarks/results/x86-2core/alm_qa_eval.md). Three numbers per encoder frame carry them
explicitly, computed here with numpy in a few milliseconds per clip:

    level   frame energy in dBFS, (dB + 40) / 20: -20 dBFS -> 1, digital silence -> -3
    voicing peak of the normalised autocorrelation over 50-400 Hz lags, 0..1 (0 in quiet frames)
    pitch   voicing * log2(f0 / 150 Hz): about -0.6 for a 100 Hz voice, +0.4 for 200 Hz
"""

from __future__ import annotations

import numpy as np

N_STATS = 3
FLOOR_DB = -100.0
QUIET_DB = -55.0  # frames below this carry no pitch


def frame_stats(samples: np.ndarray, n_frames: int, hop: int, sample_rate: int) -> np.ndarray:
    """Mono float samples -> (n_frames, 3) float32 [level, voicing, pitch], frame k centred on
    samples [k * hop, (k + 1) * hop); past the end of the clip the signal is silence."""
    x = np.zeros(n_frames * hop + 2 * hop, np.float32)
    n = min(len(samples), n_frames * hop)
    x[hop : hop + n] = samples[:n]  # hop samples of silence before the clip
    energy = np.mean(np.square(x[hop : hop + n_frames * hop].reshape(n_frames, hop), dtype=np.float64), axis=1)
    db = np.maximum(10 * np.log10(energy + 1e-12), FLOOR_DB)  # (F,)
    # pitch over a 2-hop window centred on each frame (enough for two periods at 50 Hz with hop = 20 ms)
    win = np.lib.stride_tricks.sliding_window_view(x, 2 * hop)[hop // 2 : hop // 2 + n_frames * hop : hop]
    win = (win - win.mean(axis=1, keepdims=True)) * np.hanning(2 * hop)  # (F, 2 * hop)
    size = 1 << int(np.ceil(np.log2(4 * hop)))
    spec = np.fft.rfft(win, size, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, size, axis=1)[:, : 2 * hop]  # (F, lags)
    # the window's own autocorrelation, so a periodic signal scores about 1 at its period
    w_ac = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(2 * hop), size)) ** 2, size)[: 2 * hop]
    r = ac / (ac[:, :1] + 1e-12) / (w_ac / w_ac[0] + 1e-3)
    lo, hi = sample_rate // 400, min(sample_rate // 50, 2 * hop - 1)
    band = r[:, lo : hi + 1]
    # local maxima only (the autocorrelation falls from lag 0 through the band's low end), and of
    # those the shortest lag close to the best: avoids octave-low errors
    is_max = np.zeros_like(band, bool)
    is_max[:, 1:-1] = (band[:, 1:-1] >= band[:, :-2]) & (band[:, 1:-1] >= band[:, 2:])
    peaks = np.where(is_max, band, -1.0)
    peak = peaks.max(axis=1)
    lag = lo + np.argmax(peaks >= 0.9 * peak[:, None], axis=1)
    voicing = np.where(db > QUIET_DB, np.clip(peak, 0.0, 1.0), 0.0)
    pitch = voicing * np.log2(sample_rate / lag / 150.0)
    return np.stack([(db + 40.0) / 20.0, voicing, pitch], axis=1).astype(np.float32)


def stats_level_db(stats: np.ndarray) -> float:
    """A clip's RMS level in dBFS from its frame statistics (n_frames, N_STATS): the power mean of
    the frame levels (what runtime/alm_audio.py's clip_level_db measures from the samples)."""
    db = stats[:, 0].astype(np.float64) * 20.0 - 40.0
    return float(10 * np.log10(np.mean(10 ** (db / 10)) + 1e-12))
