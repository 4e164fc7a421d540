"""The end-of-turn text model: the packaged weights, the training recipe, bad weight files."""

from __future__ import annotations

import numpy as np
import pytest
from edge_alm.runtime.errors import BundleError
from edge_alm.runtime.turn_text import TurnText, features

# Sentences and their first parts from no training text (written for this test); the stream asks
# the model only about a full stop with p 0.45-0.6 and needs 0.8 to end the turn early.
WHOLE = [
    "Please call me back when you get home tonight.",
    "I think the answer is somewhere in the second chapter.",
    "She bought three apples and a loaf of bread.",
    "When we reached the coast, the storm had already passed.",
    "The children are playing in the garden.",
]
FRAGMENTS = ["My sister said that.", "If it rains tomorrow.", "The reason I called is.", "Between the bakery and."]


def test_packaged_model_tells_sentences_from_fragments():
    model = TurnText()
    whole = [model.prob(s) for s in WHOLE]
    frag = [model.prob(s) for s in FRAGMENTS]
    assert max(frag) < 0.5, frag  # measured 0.04-0.40
    assert np.mean(whole) > 0.75 and min(whole) > max(frag), whole  # measured 0.62-0.95


def test_features_ignore_case_and_the_final_mark():
    assert features("My sister said that.") == features("my sister said that?")
    assert "last:that" in features("My sister said that.")
    assert features("") == ["empty"]


def test_recipe_trains_a_model_the_runtime_reads(tmp_path):
    from edge_alm.export.end_of_turn_train import train

    subjects = ["The cat", "My brother", "Our train", "A small robot", "The old bridge"]
    ends = ["sleeps on the warm mat", "reads the paper every morning", "leaves from platform four"]
    sentences = [f"{a} {b}." for a in subjects for b in ends] * 4
    report = train(sentences, tmp_path / "m.npz")
    assert report["sentences"] == 15 and report["train_auc"] > 0.9
    model = TurnText(tmp_path / "m.npz")
    assert model.prob("The cat sleeps on the warm mat.") > model.prob("The cat sleeps on the")


def test_bad_weight_files_are_refused_in_one_line(tmp_path):
    with pytest.raises(BundleError, match="not an end-of-turn text model"):
        TurnText(tmp_path / "missing.npz")
    np.savez(tmp_path / "old.npz", weights=np.zeros(8, np.float16), features_version=np.int64(0))
    with pytest.raises(BundleError, match="features version 0"):
        TurnText(tmp_path / "old.npz")
