"""Rules shared by the Mellow oracle script (tests/mellow_oracle.py, run beside the reference
code) and the parity tests (run in `make test` without it): the test clips, the prompts, and a
full-size checkpoint whose every tensor is drawn from a generator keyed by its name and shape,
so the test rebuilds the oracle's checkpoint from the recorded names and shapes alone.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

SR = 32000
FIXTURE = Path(__file__).parent / "data" / "mellow_reference.npz"
# (seed, seconds): a full segment, a short clip (repeated to 10 s), a long one (cut)
CLIPS = [(11, 10.0), (12, 3.3), (13, 12.0)]
FEATURE_CLIP = (14, 2.0)  # features alone are compared on a short clip
PROMPTS = [
    "what can you infer about the surroundings from the audio?",
    "is there a cat in the audio? answer yes or no",
    "explain the difference between the two audios in detail.",
    # longer than 129 tokens: the reference cuts it
    "describe every sound you hear, " * 30,
]
# (clip a, clip b, prompt)
EXAMPLES = [(0, 1, 0), (1, 2, 1), (2, 0, 2), (0, 0, 3)]
MAX_TOKENS = 16


def synth_clip(seed: int, seconds: float) -> np.ndarray:
    """Tones, a chirp and noise bursts: broadband, never silent (float32 at 32 kHz)."""
    g = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = sum(g.uniform(0.05, 0.2) * np.sin(2 * np.pi * g.uniform(80, 6000) * t + g.uniform(0, 6)) for _ in range(4))
    f0, f1 = g.uniform(200, 1000), g.uniform(2000, 9000)
    x = x + 0.1 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    bursts = (np.sin(2 * np.pi * g.uniform(0.5, 3) * t) > 0.6).astype(np.float64)
    x = x + 0.05 * g.standard_normal(n) * bursts + 0.003 * g.standard_normal(n)
    return x.astype(np.float32)


def _key(name: str, shape: tuple[int, ...]) -> int:
    return zlib.crc32(f"{name}{tuple(shape)}".encode())


def fill_tensor(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A deterministic value for checkpoint tensor `name`, scaled to keep activations sane:
    weights ~ N(0, 1/fan_in), norm scales ~ 1, biases small, batch-norm statistics of dB
    features, relative-position biases large enough to matter."""
    g = np.random.default_rng(_key(name, shape))
    if name.endswith("running_mean"):
        return (-40.0 + 5.0 * g.standard_normal(shape)).astype(np.float32)
    if name.endswith("running_var"):
        return (400.0 * g.uniform(0.5, 2.0, shape)).astype(np.float32)
    if "relative_position_bias_table" in name:
        return (0.5 * g.standard_normal(shape)).astype(np.float32)
    if len(shape) == 1:
        is_scale = name.endswith("weight")  # LayerNorm / RMSNorm / BatchNorm scales
        return ((1.0 if is_scale else 0.0) + (0.1 if is_scale else 0.02) * g.standard_normal(shape)).astype(np.float32)
    fan_in = int(np.prod(shape[1:]))
    return (g.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def rule_state_dict(spec: list[tuple[str, tuple[int, ...]]]) -> dict[str, np.ndarray]:
    return {name: fill_tensor(name, tuple(shape)) for name, shape in spec}


def write_checkpoint(spec: list[tuple[str, tuple[int, ...]]], path: Path, prefix: str = "module.") -> Path:
    """The rule-filled checkpoint, saved as the published one is (a torch state dict)."""
    import torch

    state = {prefix + k: torch.from_numpy(v) for k, v in rule_state_dict(spec).items()}
    torch.save(state, str(path))
    return path
