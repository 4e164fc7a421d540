"""Checks an alm export runs before it writes a bundle: the ONNX graphs against the PyTorch
parts (fp32 parity) and quantized graphs against fp32 ones, on features of the runtime's own
feature path (noise for parity, a voice-like signal for quantization)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from edge_alm.export.alm_graphs import adapter_inputs

if TYPE_CHECKING:
    from edge_alm.export.alm_export import AlmParts


def reference_logits(parts: AlmParts, feats: torch.Tensor, before: list[int], after: list[int]) -> np.ndarray:
    """PyTorch: [text before ; audio embeddings ; text after] through the HF LM -> last logits (V,)."""
    with torch.no_grad():
        n_stats = getattr(parts.adapter, "n_stats", 0)
        audio = parts.adapter(*adapter_inputs(n_stats, parts.encoder(feats)))[0]  # (S/p, D)
        emb = parts.lm.get_input_embeddings()
        x = torch.cat([emb(torch.tensor(before)), audio, emb(torch.tensor(after))])[None]
        return parts.lm(inputs_embeds=x).logits[0, -1].numpy()


def onnx_embeds(paths: dict[str, Path], feats: np.ndarray, before: list[int], after: list[int]) -> np.ndarray:
    """[text before ; audio embeddings ; text after] through the encoder, adapter and embed graphs."""
    import onnxruntime as ort

    s = {
        k: ort.InferenceSession(str(paths[k]), providers=["CPUExecutionProvider"])
        for k in ("audio_encoder", "adapter", "embed")
    }
    (hidden,) = s["audio_encoder"].run(None, {"input_features": feats})
    inputs = s["adapter"].get_inputs()  # hidden [, frame_stats (B, S, n_stats)]
    n_stats = inputs[1].shape[2] if len(inputs) > 1 else 0
    feeds = [t.numpy() for t in adapter_inputs(n_stats, torch.from_numpy(hidden))]
    (audio,) = s["adapter"].run(None, dict(zip([i.name for i in inputs], feeds)))
    (t0,) = s["embed"].run(None, {"input_ids": np.array([before], np.int64)})
    (t1,) = s["embed"].run(None, {"input_ids": np.array([after], np.int64)})
    return np.concatenate([t0, audio, t1], axis=1)


def onnx_logits(
    paths: dict[str, Path], feats: np.ndarray, before: list[int], after: list[int], x: np.ndarray | None = None
) -> np.ndarray:
    """The same through the graphs, in two LM passes (all but the last token, then the last
    with the cache) so the cache path is checked too. x: embeddings to feed the LM instead."""
    import onnxruntime as ort

    x = onnx_embeds(paths, feats, before, after) if x is None else x
    lm = ort.InferenceSession(str(paths["lm"]), providers=["CPUExecutionProvider"])
    names = [o.name for o in lm.get_outputs()]
    past = {i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), np.float32) for i in lm.get_inputs()[3:]}
    n = x.shape[1]

    def lengths(total: int) -> dict:
        return {"seqlens_k": np.array([total - 1], np.int32), "total_sequence_length": np.array(total, np.int32)}

    out = dict(zip(names, lm.run(None, {"inputs_embeds": x[:, :-1], **lengths(n - 1), **past})))
    past = {k.replace("present", "past"): v for k, v in out.items() if k != "logits"}
    logits = lm.run(None, {"inputs_embeds": x[:, -1:], **lengths(n), **past})[0]
    return logits[0, -1]


def voice_like_features(parts: AlmParts, seed: int = 1) -> np.ndarray:
    """Features of a synthetic voice-like signal (gliding harmonics with syllable-rate bursts and
    breath noise): quantization is checked on features like real audio's, not random numbers."""
    g = np.random.default_rng(seed)
    params = parts.feature_params()
    sr = params.sample_rate
    n = int(min(4.0, parts.max_frames * params.hop_length / sr) * sr)
    t = np.arange(n) / sr
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
    x = (0.1 * voice * envelope + 0.005 * g.standard_normal(n)).astype(np.float32)
    return parts.clip_features(x)


def parity_inputs(parts: AlmParts, seed: int = 0) -> tuple[np.ndarray, list[int], list[int]]:
    """Features of 4 s of noise (at most the encoder's span) and two runs of random token ids."""
    g = np.random.default_rng(seed)
    params = parts.feature_params()
    seconds = min(4.0, parts.max_frames * params.hop_length / params.sample_rate)
    feats = parts.clip_features((g.standard_normal(int(seconds * params.sample_rate)) * 0.1).astype(np.float32))
    vocab = parts.lm.config.vocab_size
    return feats, [int(t) for t in g.integers(3, vocab, 5)], [int(t) for t in g.integers(3, vocab, 7)]


def check_parity(parts: AlmParts, paths: dict[str, Path], tol: float) -> float:
    """Max |logit diff| between the graphs and PyTorch; fails above tol times the logits' scale
    (max |logit|, at least 1). SmolLM2 with a random adapter gives logits up to about 30: its diff is
    usually 5e-5, and once in a while (under load) 3e-3, which an absolute 1e-3 failed on; an export
    bug gives differences of order 1."""
    feats, before, after = parity_inputs(parts)
    ref = reference_logits(parts, torch.from_numpy(feats), before, after)
    err = float(np.abs(onnx_logits(paths, feats, before, after) - ref).max())
    limit = tol * max(1.0, float(np.abs(ref).max()))
    if not np.isfinite(err) or err > limit:
        raise RuntimeError(f"ONNX/PyTorch parity failed: max |logit diff| {err:.2e} > {limit:.1e} ({paths['lm']})")
    return err
