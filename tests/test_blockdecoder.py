"""BlockDecoder on tiny random models: runtime tokens equal the PyTorch reference for
K = 1, 2, 4, 8, and the one-pass training forward agrees with block decoding."""

import random
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import tiny_whisper_dir
from edge_alm.export.blockdecoder_export import build_blockdecoder_bundle
from edge_alm.export.blockdecoder_model import BlockDecoder
from edge_alm.export.blockdecoder_train import distillation_loss, vocab_sample
from edge_alm.export.blockdecoder_weights import load_student, save_student
from edge_alm.runtime.blockdecoder import BlockDecoderModel
from edge_alm.runtime.manifest import load_manifest
from edge_alm.runtime.seq2seq import DecodeOptions
from edge_alm.runtime.session import SessionConfig
from transformers import WhisperForConditionalGeneration

from edge_alm import EdgeALM

N_NEW = 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("bd")
    # init_std 0.3: a random model with the default 0.02 repeats one token whatever K is
    hf_dir = tiny_whisper_dir(d / "hf", decoder_layers=3, init_std=0.3)
    whisper = WhisperForConditionalGeneration.from_pretrained(hf_dir, attn_implementation="eager").eval()
    torch.manual_seed(3)
    bd = BlockDecoder(whisper, n_text=2, n_merger=1)
    with torch.no_grad():  # make the text path matter: perturb what whisper init leaves at identity
        bd.text_norm.weight.normal_(1.0, 0.3)
        for m in bd.merger_layers:
            m.text_k.weight.add_(torch.randn_like(m.text_k.weight) * 0.05)
    bundle = build_blockdecoder_bundle(whisper, bd, hf_dir, d / "bundle", block_size=4, quantize="fp32")
    rt = BlockDecoderModel(load_manifest(bundle), SessionConfig(threads=1, cache_optimized=False))
    feats = (np.random.default_rng(0).standard_normal((1, 80, 3000)) * 0.5).astype(np.float32)
    s = rt.special
    prompt = [s.sot, s.languages["en"], s.transcribe, s.no_timestamps]
    return whisper, bd, bundle, rt, feats, prompt


def _audio_states(whisper, feats):
    with torch.no_grad():  # full 30 s window, as the runtime graph gets here too
        return whisper.model.encoder(torch.from_numpy(feats)).last_hidden_state


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_runtime_tokens_equal_reference(tiny, k):
    whisper, bd, _, rt, feats, prompt = tiny
    ref_audio = _audio_states(whisper, feats)
    ref = bd.greedy(ref_audio, prompt, k, N_NEW, rt.special.eot)
    got = rt.decode(
        rt.encode(feats), prompt, DecodeOptions(max_new_tokens=N_NEW, timestamps=False, suppress=False), block_size=k
    )
    assert len(ref) == N_NEW and len(set(ref)) > 3
    assert got.tokens == ref


@pytest.mark.parametrize("k", [1, 3, 4])
def test_runtime_beam_equals_reference(tiny, k):
    whisper, bd, _, rt, feats, prompt = tiny
    ref = bd.beam(_audio_states(whisper, feats), prompt, k, N_NEW, rt.special.eot, n=3)
    opts = DecodeOptions(max_new_tokens=N_NEW, timestamps=False, suppress=False, beam_size=3)
    got = rt.decode(rt.encode(feats), prompt, opts, block_size=k)
    greedy = rt.decode(rt.encode(feats), prompt, replace(opts, beam_size=1), block_size=k)
    assert len(ref) > 3 and got.tokens == ref
    assert got.tokens != greedy.tokens  # on this model beam search really leaves the greedy path


def test_block_size_changes_the_computation(tiny):
    whisper, bd, _, rt, feats, prompt = tiny
    audio = _audio_states(whisper, feats)
    outs = {k: bd.greedy(audio, prompt, k, N_NEW, rt.special.eot) for k in (1, 4)}
    assert outs[1] != outs[4]  # else the K-parity test could not tell blocks apart


def test_training_forward_matches_block_decoding(tiny):
    """Teacher-forced one-pass logits with block starts = decoding's blocks give its tokens."""
    whisper, bd, _, rt, feats, prompt = tiny
    audio = _audio_states(whisper, feats)
    k = 4
    gen = bd.greedy(audio, prompt, k, N_NEW, rt.special.eot)
    seq = torch.tensor([prompt + gen])
    starts = list(range(len(prompt), len(prompt) + N_NEW, k))
    with torch.no_grad():
        logits = bd(audio, seq, starts)[0]
    pred = logits[len(prompt) :].argmax(-1).tolist()
    assert pred == gen


def test_blockdecoder_bundle_through_the_api(tiny):
    _, _, bundle, _, _, _ = tiny
    m = EdgeALM.load(bundle, threads=1, block_size=2)
    assert m.model.block_size == 2
    r = m.transcribe((np.random.default_rng(1).standard_normal(16000 * 2).astype(np.float32) * 0.1, 16000))
    assert isinstance(r.text, str) and m.manifest.kind == "blockdecoder"
    noise = np.random.default_rng(1).standard_normal(16000 * 2).astype(np.float32) * 0.1
    assert isinstance(m.transcribe((noise, 16000), beam_size=2).text, str)  # beam search runs end to end


def test_student_weights_rebuild_the_model(tiny, tmp_path):
    """The committed-weights format: int8 differences from Whisper rebuild the student closely,
    and are refused on other Whisper weights."""
    whisper, bd, _, rt, feats, prompt = tiny
    path = save_student(bd, whisper, tmp_path / "student.npz")
    back = load_student(whisper, path)
    audio = _audio_states(whisper, feats)
    seq = torch.tensor([prompt + bd.greedy(audio, prompt, 4, N_NEW, rt.special.eot)])
    with torch.no_grad():
        a, b = bd(audio, seq, [len(prompt)]), back(audio, seq, [len(prompt)])
    assert torch.allclose(a, b, atol=1e-2 * float(a.abs().max()))
    other_dir = tiny_whisper_dir(tmp_path / "other", seed=7, decoder_layers=3, init_std=0.3)
    other = WhisperForConditionalGeneration.from_pretrained(other_dir, attn_implementation="eager").eval()
    with pytest.raises(ValueError, match="fingerprint"):
        load_student(other, path)


def test_export_from_missing_student_weights_is_one_line(tmp_path, capsys):
    from edge_alm.cli import main

    rc = main(["export", "blockdecoder", "--student", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "b")])
    assert rc == 1 and "student weights not found" in capsys.readouterr().err


def test_block_size_is_refused_by_a_seq2seq_bundle(tiny_bundle):
    with pytest.raises(ValueError, match="blockdecoder bundles"):
        EdgeALM.load(tiny_bundle, block_size=4)
    m = EdgeALM.load(tiny_bundle, threads=1)
    feats = np.zeros((1, 80, 3000), np.float32)
    with pytest.raises(ValueError, match="blockdecoder bundles"):
        m.model.decode(m.model.encode(feats), [m.model.special.sot], DecodeOptions(block_size=4))


def test_sampled_vocabulary_keeps_labels_and_soft_targets():
    """Training's sampled softmax: with every id sampled it is the full loss; with a subset,
    labels and soft-target ids map to rows that hold their own logits."""
    gen = torch.Generator().manual_seed(0)
    n, vocab, k = 6, 40, 3
    logits = torch.randn(n, vocab, generator=gen)
    labels = torch.randint(0, 10, (n,), generator=gen)
    soft = torch.randint(10, 20, (n, k), generator=gen), torch.rand(n, k, generator=gen) / k
    rng = random.Random(0)
    ids, where = vocab_sample(torch.arange(vocab), soft[0], vocab, 0, rng)
    full = distillation_loss(logits, labels, soft)
    assert torch.allclose(distillation_loss(logits[:, ids], where[labels], (where[soft[0]], soft[1])), full)
    ids, where = vocab_sample(torch.arange(10), soft[0], vocab, 5, rng)
    assert len(ids) < vocab and (where[labels] >= 0).all() and (where[soft[0]] >= 0).all()
    assert torch.equal(logits[:, ids][torch.arange(n), where[labels]], logits[torch.arange(n), labels])
    sub = distillation_loss(logits[:, ids], where[labels], (where[soft[0]], soft[1]))
    assert sub < full  # fewer competitors: the sampled loss is a lower bound
