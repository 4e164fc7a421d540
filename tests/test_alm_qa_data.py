"""The audio-QA corpus: voices and voice questions, degradations and their labels (PESQ, STOI,
DNSMOS), and loading earlier training weights (no LM)."""

from __future__ import annotations

import numpy as np
import pytest
from edge_alm.export import alm_qa_audio as A
from edge_alm.export.alm_qa_data import voice_questions


def clips() -> list[dict]:
    voices = ["en-us+m1", "en+f2", "awb", "en-029+f2", "en-gb-scotland+m2"]
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


def test_held_out_voices_are_never_trained_on_and_genders_are_drawn_evenly():
    train = A.ESPEAK + A.FLITE
    variant = lambda name: name.split("+")[-1]  # noqa: E731
    assert not {variant(v.name) for v in A.HELD_OUT_VOICES} & {variant(v.name) for v in train}
    assert {v.gender for v in A.HELD_OUT_VOICES} == {"male", "female"}
    rng = np.random.default_rng(0)
    picked = [A.pick_voice(train, rng).gender for _ in range(2000)]
    assert 0.45 < picked.count("female") / len(picked) < 0.55


def test_training_can_start_from_earlier_weights_of_the_same_base_only(tmp_path):
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


def test_a_reference_clip_is_its_speech_clip_before_the_degradation():
    from edge_alm.export.alm_qa_data import ClipSpec, make_clip, split_sentences

    train, _ = split_sentences(A.sentence_pool())
    seen = set()
    for i in range(12):
        source, x = make_clip(ClipSpec(i, "train", "speech"), train)
        ref, clean = make_clip(ClipSpec(99, "train", "reference", {"of": i}), train)
        problem = source.labels["problem"]
        seen.add(problem)
        assert len(clean) == len(x) and ref.labels["text"] == source.labels["text"]
        assert ref.labels["voice"] == source.labels["voice"] and ref.labels["source_problem"] == problem
        if problem == "nothing" and source.labels["snr"] is None:
            assert np.array_equal(clean, x)
        else:  # degraded, or noise too faint to name
            assert not np.array_equal(clean, x)
    assert len(seen) >= 3  # several degradations covered


def test_reference_questions_pair_the_reference_first_with_its_degraded_copy():
    from edge_alm.export.alm_qa_data import reference_questions

    clips = [
        {"id": 0, "index": 5, "kind": "speech", "labels": {"problem": "clipping"}},
        {"id": 1, "index": 6, "kind": "speech", "labels": {"problem": "nothing"}},
        {"id": 2, "index": 90, "kind": "reference", "labels": {"of": 5, "pesq": 1.83, "stoi": 0.714}},
        {"id": 3, "index": 91, "kind": "reference", "labels": {"of": 6, "pesq": None, "stoi": 1.0}},  # no speech
    ]
    qas = reference_questions(clips, np.random.default_rng(0))
    got = sorted((q["task"], tuple(q["clips"]), q["answer"]) for q in qas)
    assert got == [
        ("changed", (2, 0), "clipping"),
        ("changed", (3, 1), "nothing"),
        ("intelligibility", (2, 0), "0.71"),
        ("intelligibility", (3, 1), "1.00"),
        ("quality_ref", (2, 0), "1.8"),
    ]


def test_a_references_pesq_and_stoi_labels_fall_with_the_noise_added():
    pytest.importorskip("pesq", reason="PyPI pesq is installed by the training recipe only (--qa-refs)")
    from edge_alm.export.alm_qa_data import ClipSpec, make_clip, make_labelled, split_sentences

    train, _ = split_sentences(A.sentence_pool())
    labels = {}
    for i in range(40):
        source, _ = make_clip(ClipSpec(i, "train", "speech"), train)
        if source.labels["problem"] in ("nothing", "background noise") and source.labels["snr"] is not None:
            ref, _ = make_labelled(ClipSpec(99, "train", "reference", {"of": i}), train)
            labels[source.labels["snr"]] = ref.labels["pesq"], ref.labels["stoi"]
    snrs = sorted(labels)
    pesq, stoi = np.array([labels[s] for s in snrs]).T
    assert len(snrs) >= 4 and all(1.0 <= p <= 4.7 for p in pesq) and all(0 <= s <= 1 for s in stoi)
    assert np.corrcoef(snrs, pesq)[0, 1] > 0.5 and np.corrcoef(snrs, stoi)[0, 1] > 0.5  # more noise, lower both


def test_a_low_bitrate_codec_keeps_the_length_and_degrades_more_at_higher_compression():
    x = A.speak("The quick brown fox jumps over the lazy dog.", A.ESPEAK[0], "normal")
    for kind in A.CODECS:
        mild, strong = A.codec(x, kind, 0.9), A.codec(x, kind, 0.99)
        assert len(mild) == len(strong) == len(x)
        err = [A.rms_db(y - x) - A.rms_db(x) for y in (mild, strong)]  # error level below the signal, dB
        assert -40 < err[0] < err[1] < -3, (kind, err)


def test_loudness_answers_follow_the_level():
    from edge_alm.export.alm_qa_data import loudness

    assert [loudness(db) for db in (-34, -29.5, -20, -16.5, -12)] == ["quiet", "quiet", "normal", "normal", "loud"]


def test_dnsmos_rates_background_noise_lower_on_its_noise_scale():
    from edge_alm.export.alm_qa_data import DNSMOS

    clean = A.speak("Please call me back when you get home tonight.", A.ESPEAK[0], "normal")
    noisy = A.add_noise(clean, 0.0, "white", np.random.default_rng(0))
    d = DNSMOS()
    a, b = d.scores(clean), d.scores(noisy)
    assert set(a) == {"sig", "bak", "mos"} and all(1 <= v <= 5 for v in [*a.values(), *b.values()])
    assert b["bak"] < a["bak"] - 1 and b["mos"] < a["mos"]


def test_the_evaluation_counts_a_rating_without_digits_as_unparsed():
    """A model that puts too little mass on digits (int4 did) is scored as unparsed, not a crash."""
    from benchmarks.alm_qa_eval import expected_or_none, score_stats

    class NoDigits:
        def expect_number(self, question: str) -> float:
            raise ValueError("the model does not answer with a number")

    class Digits:
        def expect_number(self, question: str) -> float:
            return 3.5

    assert expected_or_none(NoDigits(), "Rate it.") is None
    assert expected_or_none(Digits(), "Rate it.") == 3.5
    s = score_stats([(3.0, 3.5), (2.0, None), (4.0, 4.5), (1.0, 1.5)])
    assert s["parsed"] == 0.75 and s["mae"] == 0.5


def test_lora_on_mlp_projections_merges_into_the_lm_and_starts_fresh_from_an_attention_only_stage(tmp_path):
    torch = pytest.importorskip("torch")
    from edge_alm.export.alm_graphs import PooledMLPAdapter
    from edge_alm.export.alm_qa_train import add_lora, load_weights, merge_lora, save_weights
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64,
    )  # fmt: skip

    def lm():
        torch.manual_seed(0)
        return LlamaForCausalLM(cfg).eval()

    adapter, fp = PooledMLPAdapter(8, 16, 4), {"base_lm": "lm", "encoder": "enc"}
    first = add_lora(lm(), 2, 4.0)  # an attention-only stage (q, v)
    for m in first:
        m.B.data.normal_()
    save_weights(tmp_path / "qv.npz", adapter, first, 2, 4.0, 4, fp, 10)
    wide = ("q_proj", "v_proj", "up_proj", "down_proj")
    model = lm()
    loras = add_lora(model, 2, 4.0, wide)
    load_weights(tmp_path / "qv.npz", adapter, loras, {**fp, "pool": 4, "rank": 2}, wide)
    assert torch.equal(loras[4].B, first[2].B) and not loras[2].B.any()  # layer 1's q; layer 0's up: fresh
    for m in loras:
        m.B.data.normal_()
    save_weights(tmp_path / "wide.npz", adapter, loras, 2, 4.0, 4, fp, 20, wide)
    merged = lm()
    merge_lora(merged, dict(np.load(tmp_path / "wide.npz")))
    ids = torch.arange(10)[None]
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, model(ids).logits, atol=1e-4)
        assert not torch.allclose(lm()(ids).logits, model(ids).logits, atol=1e-3)


def test_eval_stride_per_task_keeps_every_task_of_a_reference_triple():
    from benchmarks.alm_qa_eval import sample

    qas = [{"task": t} for _ in range(6) for t in ("quality_ref", "changed", "intelligibility")]
    assert {q["task"] for q in sample(qas, 3)} == {"quality_ref"}  # the whole list: one task of three
    per_task = sample(qas, 3, per_task=True)
    assert [q["task"] for q in per_task] == ["quality_ref", "changed", "intelligibility"] * 2
    assert sample(qas, 1, per_task=True) == qas
