"""Every TTS voice of the audio-QA corpus sounds like the gender it is labelled with: its median
pitch, measured by the runtime's frame statistics, is above 150 Hz for female voices and below for
male ones. (espeak-ng ignores a +variant after "en-gb", which once labelled its default male voice
"female" in a fifth of the female clips.)"""

from __future__ import annotations

import numpy as np
import pytest
from edge_alm.export import alm_qa_audio as A
from edge_alm.runtime.frame_stats import frame_stats

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs away."


def median_pitch(x: np.ndarray) -> float:
    s = frame_stats(x, len(x) // 320, 320, A.SR)  # (T, 3) [level, voicing, voicing * log2(f0 / 150)]
    voiced = s[:, 1] > 0.5
    assert voiced.sum() > 20, "too few voiced frames to measure a pitch"
    return float(np.median(150 * 2 ** (s[voiced, 2] / s[voiced, 1])))


@pytest.mark.parametrize("voice", [*A.train_voices(), *A.HELD_OUT_VOICES], ids=lambda v: v.name)
def test_voice_pitch_matches_its_gender_label(voice: A.Voice):
    f0 = median_pitch(A.speak(SENTENCE, voice, "normal"))
    assert (f0 > 150) == (voice.gender == "female"), f"{voice.name} ({voice.gender}) speaks at {f0:.0f} Hz"
