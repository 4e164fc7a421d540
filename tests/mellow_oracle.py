"""Record Mellow's reference outputs for the parity tests (tests/test_mellow.py).

Runs the reference implementation (../shared/reference/mellow: model code, config and
wrapper, MIT) on a full-size checkpoint filled by tests/mellow_rules.py, and writes
tests/data/mellow_reference.npz: the checkpoint's tensor names and shapes, torchlibrosa's
features of a clip, the encoder's outputs and audio prefix for three clips, and the greedy
tokens of the reference wrapper's `generate` for four (clip, clip, prompt) examples.

Needs, beside the export extra: torchlibrosa (pip install torchlibrosa) and the reference
directory. About 5 minutes on 2 cores.

    .venv/bin/python tests/mellow_oracle.py --reference ../shared/reference/mellow
"""

from __future__ import annotations

import argparse
import copy
import importlib.machinery
import json
import random
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import mellow_rules as R  # noqa: E402

CLIP_PATHS = {f"clip{i}.wav": (seed, seconds) for i, (seed, seconds) in enumerate(R.CLIPS)}


def stub_modules() -> None:
    """The wrapper imports torchaudio (only to read files) and importlib_resources (unused):
    torchaudio.load returns our synthetic clips by name, at 32 kHz, so no resampling runs."""
    ta = types.ModuleType("torchaudio")
    ta.load = lambda path: (torch.from_numpy(R.synth_clip(*CLIP_PATHS[Path(path).name]))[None], R.SR)
    ta.transforms = types.ModuleType("torchaudio.transforms")
    ta.transforms.Resample = None
    sys.modules["torchaudio"], sys.modules["torchaudio.transforms"] = ta, ta.transforms
    ir = types.ModuleType("importlib_resources")
    ir.files = None
    for m in (ta, ta.transforms, ir):
        m.__spec__ = importlib.machinery.ModuleSpec(m.__name__, None)
    sys.modules["importlib_resources"] = ir


def lm_directory(tmp: Path) -> Path:
    """A SmolLM2-135M-shaped directory (its name holds "smollm2": the reference branches on
    it): the config and base-style tokenizer that `edge-alm export mellow` uses by default."""
    from edge_alm.export.alm_export import default_smollm2
    from edge_alm.export.mellow_export import base_tokenizer_json
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    cache = Path(__file__).resolve().parents[1] / ".cache"
    out = tmp / "smollm2-135m"
    out.mkdir()
    (out / "config.json").write_text((default_smollm2(cache) / "config.json").read_text())
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_file(str(base_tokenizer_json(cache))),
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tok.save_pretrained(str(out))
    return out


def write_reference_checkpoint(reference: Path, lm_dir: Path, path: Path) -> list[tuple[str, tuple[int, ...]]]:
    """The reference model's full state dict, every tensor a checkpoint must carry filled by the
    rule; returns those tensors' names and shapes."""
    from mellow.model.mellow import Mellow
    from mellow.wrapper import MellowWrapper

    cfg = MellowWrapper.read_config_as_args(None, reference / "mellow" / "config" / "v0.yaml")
    model = Mellow(
        audioenc_name=cfg.model["encoder"]["audioenc_name"],
        d_in=cfg.model["encoder"]["out_emb"],
        text_decoder=str(lm_dir),
        prefix_length=cfg.model["decoder"]["prefix_length"],
        d_out=cfg.model["encoder"]["d_proj"],
    )
    # every tensor a checkpoint must carry: all but what Swin and torchlibrosa compute from
    # their sizes and the tied LM head
    skip = ("relative_position_index", "attn_mask", "num_batches_tracked", "_extractor.", "lm.lm_head.weight")
    full = model.state_dict()
    spec = [(k, tuple(v.shape)) for k, v in full.items() if not any(s in k for s in skip)]
    rule = R.rule_state_dict(spec)
    rule["caption_decoder.lm.lm_head.weight"] = rule["caption_decoder.lm.model.embed_tokens.weight"]  # tied
    ckpt = {"module." + k: (torch.from_numpy(rule[k]) if k in rule else v.clone()) for k, v in full.items()}
    del model, full
    torch.save(ckpt, str(path))
    print(f"checkpoint: {len(spec)} rule-filled tensors, {sum(np.prod(s) for _, s in spec) / 1e6:.1f}M values")
    return spec


def reference_wrapper(reference: Path, threads: int = 2, saved: Path | None = None):
    """The reference's MellowWrapper on the rule-filled full-size checkpoint, as users run it
    minus the hub download. Returns (wrapper, the checkpoint's rule-filled names and shapes).
    saved: keep the full checkpoint there, and load it from there when it exists (so a
    benchmark's process holds only the model the wrapper loads)."""
    torch.set_num_threads(threads)
    import transformers  # before the stubs: it probes which packages are installed
    from transformers import AutoConfig, LlamaForCausalLM  # noqa: F401

    stub_modules()
    sys.path.insert(0, str(reference.resolve()))

    def from_config(name, *a, **kw):  # the reference asks a hub; build the LM from the config instead
        return transformers.AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(name))

    transformers.AutoModelForCausalLM.from_pretrained = from_config
    from mellow.wrapper import MellowWrapper

    tmp = Path(tempfile.mkdtemp())
    lm_dir = lm_directory(tmp)
    ckpt_path = saved or tmp / "v0.ckpt"
    spec_path = ckpt_path.with_suffix(".spec.json")
    if not (ckpt_path.is_file() and spec_path.is_file()):
        spec = write_reference_checkpoint(reference, lm_dir, ckpt_path)
        spec_path.write_text(json.dumps(spec))
    spec = [(k, tuple(v)) for k, v in json.loads(spec_path.read_text())]
    wrapper = MellowWrapper.__new__(MellowWrapper)
    yaml_path = tmp / "v0.yaml"
    text = (reference / "mellow" / "config" / "v0.yaml").read_text()
    yaml_path.write_text(text.replace('"HuggingFaceTB/SmolLM2-135M"', json.dumps(str(lm_dir))))
    wrapper.model_path, wrapper.config_path = str(ckpt_path), str(yaml_path)
    wrapper.use_cuda, wrapper.device = False, "cpu"
    wrapper.model, wrapper.tokenizer, wrapper.args = wrapper.get_model_and_tokenizer(config_path=str(yaml_path))
    wrapper.model.eval()
    if saved is None:
        ckpt_path.unlink()
    # the reference passes pad_to_max_length=True, which transformers 4.x before 4.4x read as
    # padding="max_length" and 4.57 refuses: translate it, nothing else
    encode_plus = wrapper.tokenizer.encode_plus

    def old_encode_plus(*a, **kw):
        if kw.pop("pad_to_max_length", False):
            kw["padding"] = "max_length"
        return encode_plus(*a, **kw)

    wrapper.tokenizer.encode_plus = old_encode_plus
    random.randrange = lambda n: 0  # the reference cuts long clips at a random start; we keep the start
    return wrapper, spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, required=True, help="the reference directory (holds mellow/)")
    ap.add_argument("--out", type=Path, default=R.FIXTURE)
    args = ap.parse_args()
    wrapper, spec = reference_wrapper(args.reference)
    from mellow.model.decoder import downsample

    cfg = wrapper.args
    out: dict[str, np.ndarray] = {"spec": np.array(json.dumps(spec))}
    htsat = wrapper.model.audio_encoder.base.htsat
    with torch.no_grad():
        x = torch.from_numpy(R.synth_clip(*R.FEATURE_CLIP))[None]
        out["features"] = htsat.logmel_extractor(htsat.spectrogram_extractor(x))[0, 0].numpy()  # (T, 64)
        # the same modules in float64: the reference's float32 STFT is off by up to ~2e-4 dB
        spec64, mel64 = copy.deepcopy(htsat.spectrogram_extractor).double(), copy.deepcopy(htsat.logmel_extractor)
        out["features64"] = mel64.double()(spec64(x.double()))[0, 0].numpy()
        for i, name in enumerate(CLIP_PATHS):
            audio = wrapper.load_audio_into_tensor(name, cfg.data["segment_seconds"])[None]
            projected, _, od = wrapper.model.audio_encoder(audio)
            emb, prefix = od["embedding"][0], downsample(projected)[0]  # (1025, 768), (129, 576)
            # the frames repeat: 32 distinct frame vectors, each 32 times (4 times after pooling)
            assert torch.equal(emb[1:], emb[1::32].repeat_interleave(32, 0)), "HTSAT frames do not repeat by 32"
            assert torch.allclose(prefix[1:], prefix[1::4].repeat_interleave(4, 0), atol=1e-6)
            out[f"embedding{i}"] = torch.cat([emb[:1], emb[1::32]]).numpy()  # (33, 768)
            out[f"prefix{i}"] = torch.cat([prefix[:1], prefix[1::4]]).numpy()  # (33, 576)
    names = list(CLIP_PATHS)
    decoded: list[list[int]] = []
    original = wrapper.tokenizer.decode

    def recording_decode(ids, *a, **kw):
        decoded.append([int(t) for t in np.atleast_1d(ids)])
        return original(ids, *a, **kw)

    wrapper.tokenizer.decode = recording_decode
    # the last position's logits at every step the reference runs (its top 20 ids and values)
    steps: list[torch.Tensor] = []
    wrapper.model.caption_decoder.lm.register_forward_hook(lambda m, i, o: steps.append(o.logits[0, -1].clone()))
    tokens, texts, prompt_ids, top_ids, top_values = [], [], [], [], []
    for a, b, p in R.EXAMPLES:
        decoded.clear()
        steps.clear()
        texts.append(
            wrapper.generate([[names[a], names[b], R.PROMPTS[p]]], R.MAX_TOKENS, top_p=0.8, temperature=1.0)[0]
        )
        stop = wrapper.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        seq = decoded[0]
        tokens.append(seq[: seq.index(stop)] if stop in seq else seq)
        prompt_ids.append(wrapper.preprocess_text([R.PROMPTS[p]])["input_ids"][0].tolist())
        top = torch.stack(steps[: R.MAX_TOKENS]).topk(20, dim=-1)
        top_ids.append(top.indices.numpy())
        top_values.append(top.values.numpy())
        print(f"example {a},{b},{p}: {tokens[-1]}")
    out["tokens"] = np.array(json.dumps(tokens))
    out["texts"] = np.array(json.dumps(texts))
    out["prompt_ids"] = np.array(prompt_ids, np.int64)
    out["top_ids"], out["top_values"] = np.stack(top_ids), np.stack(top_values)  # (examples, steps, 20)
    from importlib.metadata import version

    meta = {k: version(k) for k in ("torch", "transformers", "torchlibrosa")}
    out["meta"] = np.array(json.dumps(meta))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
