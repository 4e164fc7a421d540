"""The audio-QA corpus's voice questions and the second training stage's weight loading (fast:
labels and tiny modules only, no audio, no LM)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from edge_alm.export import alm_qa_audio as A
from edge_alm.export.alm_qa_data import add_voice_questions, voice_questions


def clips() -> list[dict]:
    voices = ["en-us+m1", "en-gb+f2", "awb", "en-029+f2", "en-gb-scotland+m2"]
    rng = np.random.default_rng(0)
    out = [
        {"id": i, "kind": "speech", "labels": {"voice": voices[i % 5], "level_db": float(rng.uniform(-40, -10))}}
        for i in range(40)
    ]
    return out + [{"id": 40, "kind": "beeps", "labels": {"level_db": -20.0}}]


def test_voice_questions_are_answered_by_construction():
    cs = {c["id"]: c["labels"] for c in clips()}
    qas = voice_questions(clips(), np.random.default_rng(1), n_accent=20, n_pairs=30)
    tasks = [q["task"] for q in qas]
    assert tasks.count("accent") == 20 and tasks.count("same_voice") == 30 and tasks.count("louder") == 30
    for q in qas:
        a = [cs[i] for i in q["clips"]]
        assert 40 not in q["clips"]  # speech clips only
        if q["task"] == "accent":
            assert q["answer"] == A.accent_of(a[0]["voice"])
        elif q["task"] == "same_voice":
            assert q["answer"] == ("yes" if a[0]["voice"] == a[1]["voice"] else "no")
            assert q["clips"][0] != q["clips"][1]
        else:
            assert abs(a[0]["level_db"] - a[1]["level_db"]) >= 6
            assert q["answer"] == ("the first" if a[0]["level_db"] > a[1]["level_db"] else "the second")
    assert 8 <= sum(q["answer"] == "yes" for q in qas) <= 22  # about half the same voice


def test_accents_of_every_voice():
    for v in [*A.ESPEAK, *A.FLITE, *A.HELD_OUT_VOICES]:
        assert A.accent_of(v.name) in ("american", "british", "scottish", "caribbean")
    assert A.accent_of("awb") == "scottish" and A.accent_of("en-gb-x-rp+f4") == "british"


def test_added_questions_keep_the_split_and_link_its_frames(tmp_path):
    src = tmp_path / "train"
    (src / "frames").mkdir(parents=True)
    (src / "frames" / "000000.npy").write_bytes(b"x")
    old = [{"clips": [0], "task": "speech", "question": "?", "answer": "yes"}]
    (src / "index.json").write_text(json.dumps({"clips": clips(), "qas": old}))
    dst = add_voice_questions(src, tmp_path / "s2" / "train", n_accent=5, n_pairs=5, seed=0)
    idx = json.loads((dst / "index.json").read_text())
    assert idx["qas"][:1] == old and len(idx["qas"]) == 16 and idx["clips"] == clips()
    assert (dst / "frames" / "000000.npy").read_bytes() == b"x" and (dst / "frames").is_symlink()
    assert add_voice_questions(src, dst, 50, 50, seed=1) == dst  # done: left as it is
    assert len(json.loads((dst / "index.json").read_text())["qas"]) == 16


def test_stage_two_starts_from_the_weights_of_stage_one(tmp_path):
    torch = pytest.importorskip("torch")
    from edge_alm.export.alm_graphs import PooledMLPAdapter
    from edge_alm.export.alm_qa_train import LoRALinear, load_weights, save_weights

    def modules(seed: int):
        torch.manual_seed(seed)
        adapter = PooledMLPAdapter(8, 6, 4)
        loras = [LoRALinear(torch.nn.Linear(6, 6), 2, 4.0) for _ in range(2)]  # one layer: q, v
        for m in loras:
            m.B.data.normal_()
        return adapter, loras

    a1, l1 = modules(0)
    fp = {"base_lm": "lm", "encoder": "enc"}
    save_weights(tmp_path / "w.npz", a1, l1, 2, 4.0, 4, fp, 10)
    a2, l2 = modules(1)
    load_weights(tmp_path / "w.npz", a2, l2, {**fp, "pool": 4, "rank": 2})
    assert torch.equal(a2.fc1.weight, a1.fc1.weight) and torch.equal(l2[1].B, l1[1].B)
    with pytest.raises(ValueError, match="another base"):
        load_weights(tmp_path / "w.npz", a2, l2, {**fp, "base_lm": "other", "pool": 4, "rank": 2})
