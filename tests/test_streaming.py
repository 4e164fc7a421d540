"""Streaming on the default bundle: finals equal offline transcription of each VAD segment,
whatever the chunk size or sample rate; silence gives nothing; the end flushes."""

import numpy as np
import pytest
import soxr
from conftest import SENTENCES, VOICES, espeak, read_wav

from edge_alm import Final, Partial, StreamOptions

NO_PARTIALS = StreamOptions(partial_interval_s=0)


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    """Three sentences with 1 s pauses, 16 kHz."""
    d = tmp_path_factory.mktemp("stream")
    parts = [np.zeros(8000, np.float32)]
    for i, s in enumerate(SENTENCES[:3]):
        x, sr = read_wav(espeak(s, d / f"{i}.wav", VOICES[i % 2]))
        parts += [soxr.resample(x, sr, 16000).astype(np.float32), np.zeros(16000, np.float32)]
    return np.concatenate(parts)


def run(model, audio, rate, chunk_s, options=NO_PARTIALS, finish=True):
    stream = model.stream(options)
    step = max(1, int(chunk_s * rate))
    events = []
    for i in range(0, len(audio), step):
        stream.accept_waveform(audio[i : i + step], rate)
        events += list(stream.events())
    if finish:
        stream.finish()
        events += list(stream.events())
    return events, stream


def finals(events):
    return [e for e in events if isinstance(e, Final)]


def test_finals_equal_offline_transcription_of_each_segment(default_model, utterances):
    events, _ = run(default_model, utterances, 16000, 0.1, StreamOptions())
    fin = finals(events)
    assert len(fin) == 3
    for f in fin:
        segment = utterances[round(f.start * 16000) : round(f.end * 16000)]
        assert default_model.transcribe((segment, 16000)).text == f.text
        assert f.end_of_speech_to_final_ms >= 0
    assert any(isinstance(e, Partial) for e in events)
    # committed words never change within an utterance
    stables = [e.stable.split() for e in events if isinstance(e, Partial) and e.start == fin[0].start]
    for a, b in zip(stables, stables[1:]):
        assert b[: len(a)] == a


@pytest.mark.parametrize("chunk_s", [0.01, 0.032, 0.25, 1.0])
def test_chunk_size_does_not_change_finals(default_model, utterances, chunk_s):
    ref = [(f.text, f.start, f.end) for f in finals(run(default_model, utterances, 16000, 0.1)[0])]
    got = [(f.text, f.start, f.end) for f in finals(run(default_model, utterances, 16000, chunk_s)[0])]
    assert got == ref


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_sample_rates_give_the_same_finals(default_model, utterances, rate):
    """At any rate, chunking never changes the finals, and the utterances found are the
    16 kHz ones. (The words themselves may differ: the model hears resampled audio, and
    whisper-base on TTS can tip into temperature fallback on a 1e-2 difference.)"""
    ref = finals(run(default_model, utterances, 16000, 0.1)[0])
    audio = soxr.resample(utterances, 16000, rate).astype(np.float32)
    small = [(f.text, f.start, f.end) for f in finals(run(default_model, audio, rate, 0.01)[0])]
    large = [(f.text, f.start, f.end) for f in finals(run(default_model, audio, rate, 1.0)[0])]
    assert small == large
    assert len(small) == len(ref)
    for (_, start, end), f in zip(small, ref):
        assert abs(start - f.start) <= 0.15  # a few 32 ms VAD chunks
        # the end also moves by the pad when the decoder is sure of the full stop at one rate and not at
        # the other (the final then ends one quiet chunk after the speech, else 0.2 s after it)
        assert abs(end - f.end) <= 0.15 + 0.2


def test_silence_in_nothing_out(default_model):
    events, stream = run(default_model, np.zeros(16000 * 3, np.float32), 16000, 0.1, StreamOptions())
    assert events == [] and stream.stats.dropped_samples == 0


def test_sudden_end_flushes_last_utterance(default_model, utterances):
    cut = utterances[: len(utterances) - 16000 - 4000]  # stop mid-way through the last sentence's tail
    events, _ = run(default_model, cut, 16000, 0.1, finish=False)
    assert len(finals(events)) == 2
    events, _ = run(default_model, cut, 16000, 0.1, finish=True)
    assert len(finals(events)) == 3


def test_bad_chunks_are_dropped_and_counted(default_model, utterances):
    stream = default_model.stream(NO_PARTIALS)
    bad = np.full(1600, np.nan, np.float32)
    stream.accept_waveform(bad, 16000)
    stream.accept_waveform(np.zeros((2, 2, 2), np.float32), 16000)
    stream.accept_waveform(utterances[:16000], 0)
    for i in range(0, len(utterances), 1600):
        stream.accept_waveform(utterances[i : i + 1600], 16000)
    stream.finish()
    assert len(finals(list(stream.events()))) == 3
    st = stream.stats
    assert st.dropped_chunks == 3 and st.dropped_samples == 1600 + 8 + 16000
    assert any("NaN" in p for p in st.problems)


CHUNK_FORMATS = [
    ("float32 channels-first (2, N)", lambda x: np.stack([x, x], 0)),
    ("int32 (N,)", lambda x: (x * (2**31 - 1)).astype(np.int32)),
    ("uint8 (N,)", lambda x: np.round(np.clip(x, -1, 1) * 127 + 128).astype(np.uint8)),
    ("int16 (N, 2)", lambda x: np.stack([(x * 32767).astype(np.int16)] * 2, 1)),
]


@pytest.mark.parametrize("name,convert", CHUNK_FORMATS, ids=[c[0] for c in CHUNK_FORMATS])
def test_chunk_formats_go_through_the_shared_normaliser(default_model, utterances, name, convert):
    """Each format gives the float mono stream's finals. Integer rounding is a small change that the
    int8 encoder's dynamic quantization can still turn into another word (8-bit audio into
    several). Before the shared normaliser, channels-first and int32 chunks gave no finals at all."""
    import jiwer

    ref = [f.text for f in finals(run(default_model, utterances, 16000, 0.1)[0])]
    stream = default_model.stream(NO_PARTIALS)
    for i in range(0, len(utterances), 1600):
        stream.accept_waveform(convert(utterances[i : i + 1600]), 16000)
    stream.finish()
    got = [f.text for f in finals(list(stream.events()))]
    assert stream.stats.dropped_samples == 0
    assert len(got) == len(ref), name
    assert jiwer.wer(" ".join(ref), " ".join(got)) <= (0.4 if name.startswith("uint8") else 0.1), (got, ref)


def test_bad_chunk_kinds_are_counted_and_after_finish_a_stream_goes_on(default_model, utterances):
    stream = default_model.stream(NO_PARTIALS)
    stream.accept_waveform(utterances[:1600].astype(np.complex64), 16000)
    stream.accept_waveform(utterances[:1600], "abc")
    assert stream.stats.dropped_chunks == 2 and stream.stats.dropped_samples == 3200
    half = len(utterances) // 2
    for i in range(0, half, 1600):
        stream.accept_waveform(utterances[i : i + 1600], 16000)
    stream.finish()
    first = finals(list(stream.events()))
    for i in range(half, len(utterances), 1600):  # a finished stream accepts more audio and goes on
        stream.accept_waveform(utterances[i : i + 1600], 16000)
    stream.finish()
    later = finals(list(stream.events()))
    assert first and later and later[0].start >= first[-1].end


def test_speech_gate_is_defined_once(default_model):
    """vad_threshold / min_speech_s: one default for offline and streaming, and a stream's own
    values are the ones its finals are judged by."""
    from edge_alm.runtime.stream import StreamOptions
    from edge_alm.runtime.transcribe import TranscribeOptions

    assert StreamOptions().vad_threshold == TranscribeOptions().vad_threshold
    assert StreamOptions().min_speech_s == TranscribeOptions().min_speech_s
    stream = default_model.stream(StreamOptions(vad_threshold=0.3, min_speech_s=0.4))
    assert (stream.topts.vad_threshold, stream.topts.min_speech_s) == (0.3, 0.4)
