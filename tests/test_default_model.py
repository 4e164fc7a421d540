"""End-to-end checks of the default whisper-base int8 bundle on espeak-ng speech."""

import jiwer
import numpy as np
import pytest
from conftest import SENTENCES, VOICES, espeak, read_wav
from whisper_normalizer.english import EnglishTextNormalizer

normalize = EnglishTextNormalizer()


def wer(refs, hyps):
    r = [normalize(x) for x in refs]
    h = [normalize(x) for x in hyps]
    return jiwer.wer(r, h)


@pytest.mark.parametrize("window", ["auto", "30s"])
def test_pooled_wer_on_synthetic_speech(default_model, speech_clips, window):
    hyps, refs = [], []
    for wav, ref in speech_clips:
        hyps.append(default_model.transcribe(wav, window=window).text)
        refs.append(ref)
    score = wer(refs, hyps)
    print(f"\nwindow={window} WER={score:.3f}")
    assert score <= 0.15, list(zip(refs, hyps))


def test_beam_search_on_speech(default_model, speech_clips):
    hyps = [default_model.transcribe(w, beam_size=5).text for w, _ in speech_clips[:4]]
    assert wer([r for _, r in speech_clips[:4]], hyps) <= 0.15


def test_segments_have_sane_times(default_model, speech_clips):
    wav, _ = speech_clips[0]
    x, sr = read_wav(wav)
    r = default_model.transcribe(wav)
    assert r.segments
    assert all(0 <= s.start < s.end <= len(x) / sr + 0.5 for s in r.segments)


def _noise_clips():
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 4) / 16000
    beep = (0.3 * np.sin(2 * np.pi * 1000 * t) * (np.sin(2 * np.pi * 1 * t) > 0)).astype(np.float32)
    return {
        "silence": np.zeros(16000 * 5, np.float32),
        "white_noise": (rng.standard_normal(16000 * 5) * 0.05).astype(np.float32),
        "quiet_noise": (rng.standard_normal(16000 * 5) * 0.003).astype(np.float32),
        "faint_hiss": (rng.standard_normal(16000 * 5) * 0.0003).astype(np.float32),  # -70 dBFS: the VAD hears it raised
        "beeps": beep,
        "hum": (0.2 * np.sin(2 * np.pi * 50 * t)).astype(np.float32),
    }


@pytest.mark.parametrize("name", list(_noise_clips()))
def test_no_text_on_non_speech(default_model, name):
    r = default_model.transcribe((_noise_clips()[name], 16000))
    assert r.text == "", f"{name}: {r.text!r}"


def test_two_minute_clip_loses_no_sentence(default_model, tmp_path):
    """Sentences joined with pauses into ~2 min: every sentence appears once, in order."""
    parts = []
    refs = SENTENCES * 3
    for i, s in enumerate(refs):
        x, sr = read_wav(espeak(s, tmp_path / f"{i}.wav", VOICES[i % 2]))
        parts += [x, np.zeros(int(sr * 0.8), np.float32)]
    audio = np.concatenate(parts)
    assert len(audio) / sr > 100
    r = default_model.transcribe((audio, sr))
    hyp = normalize(r.text)
    score = jiwer.wer(normalize(" ".join(refs)), hyp)
    assert score <= 0.15, r.text
    # no sentence lost or doubled at a seam: each one's words appear in order
    n_words = len(normalize(" ".join(refs)).split())
    assert abs(len(hyp.split()) - n_words) <= 0.08 * n_words, (len(hyp.split()), n_words)
    ends = [s.end for s in r.segments]
    assert ends == sorted(ends) and r.segments[-1].end > len(audio) / sr - 10
    assert r.timings["windows"] >= 4


@pytest.mark.parametrize("peak_db", [-45, -55, -62])
def test_quiet_speech_is_transcribed(default_model, speech_clips, peak_db):
    """Speech peaking at -45 to -62 dBFS: the VAD hears every clip raised to one level (Whisper's
    features do not depend on it), and only digital silence is gated by level. (Before, the
    -55 dBFS loudness gate and the VAD on the raw level gave no text below about -50 dBFS.)"""
    import jiwer
    from conftest import read_wav

    path, ref = speech_clips[1]
    x, sr = read_wav(path)
    x = x / np.abs(x).max() * 10 ** (peak_db / 20)
    got = default_model.transcribe((x, sr)).text
    assert jiwer.wer(ref.lower().strip("."), got.lower().strip(".").replace(",", "")) <= 0.2, got


def test_loudest_frame_and_vad_gain_work_a_block_at_a_time(default_model, speech_clips):
    """The loudest 20 ms frame is squared a block of frames at a time and the VAD's gain applied
    a chunk at a time (a 10-minute file's float64 square and scaled copy were its peak RSS):
    both must equal the whole-clip computation."""
    from conftest import read_wav
    from edge_alm.runtime.transcribe import loudest_frame_db, vad_gain

    from edge_alm.audio import resample

    x, sr = read_wav(speech_clips[1][0])
    x = resample(x.astype(np.float32) * np.float32(0.002), sr, 16000)  # quiet: the VAD hears it raised
    frames = x[: len(x) // 320 * 320].reshape(-1, 320).astype(np.float64)
    whole = 20 * np.log10(np.sqrt((frames**2).mean(axis=1).max()))
    assert loudest_frame_db(x, block_frames=7) == pytest.approx(whole, abs=1e-9)
    assert loudest_frame_db(x) == pytest.approx(whole, abs=1e-9)
    gain = vad_gain(x)
    assert gain > 10
    vad = default_model.transcriber.vad
    np.testing.assert_array_equal(vad.speech_probs(x, gain=gain), vad.speech_probs(x * np.float32(gain)))
    assert vad.speech_probs(x).max() < 0.5 < vad.speech_probs(x, gain=gain).max()  # the gain is what lets it hear
