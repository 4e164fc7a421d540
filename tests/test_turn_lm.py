"""The turn LM: an alm bundle's LM asked whether a full stop follows the words (runtime/turn_lm.py)."""

from __future__ import annotations

import pytest
from edge_alm.runtime.errors import BundleError
from edge_alm.runtime.turn_lm import TurnLM, user_turn_prefix

CHATML = "<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def test_the_user_turn_opening_is_read_from_the_template():
    assert user_turn_prefix(CHATML) == "<|im_start|>user\n"
    for bad in ("", "{question}", "<|im_end|>\n<|im_start|>user: {question}"):
        with pytest.raises(BundleError, match="where a user turn opens"):
            user_turn_prefix(bad)


def test_a_turn_lm_needs_an_alm_bundle(tiny_bundle):
    with pytest.raises(BundleError, match="needs an alm bundle, this one is seq2seq"):
        TurnLM(tiny_bundle)


def test_each_question_starts_from_the_turn_opening(tiny_alm):
    lm = TurnLM(tiny_alm[1])
    a, b = lm.prob("Call me back when you get home"), lm.prob("The train leaves at")
    assert 0 < a < 1 and 0 < b < 1 and a != b
    assert lm.prob("Call me back when you get home") == pytest.approx(a, abs=1e-6)  # the cache was rewound
    assert lm.prob("Call me back when you get home.") == pytest.approx(a, abs=1e-6)  # its own full stop is dropped
    assert lm.prob(" ... ") == 0.0


@pytest.mark.slow
def test_smollm2_expects_a_full_stop_after_a_whole_sentence_only(default_alm):
    """Measured with the int8 SmolLM2-135M-Instruct: 0.40 and 0.69 for the sentences, at most 0.035
    for the fragments."""
    lm = TurnLM(default_alm)
    for whole in ("I need to return these books to the library", "Put the milk back in the fridge, please."):
        assert lm.prob(whole) > 0.3, whole
    for fragment in ("The thing that worries me is", "If the weather stays like this,", "The best part of the trip"):
        assert lm.prob(fragment) < 0.1, fragment
