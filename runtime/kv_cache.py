"""Self-attention KV cache for a decoder graph that returns the whole present cache.

Layout (L, B, H, T, Dh). The graph concatenates the new keys/values onto the cache it is
given, so "append" is just keeping the graph's output; rewinding is a slice and beam
reordering a gather on the batch axis.
"""

from __future__ import annotations

import numpy as np


class KVCache:
    def __init__(self, n_layers: int, batch: int, n_heads: int, head_dim: int) -> None:
        empty = np.zeros((n_layers, batch, n_heads, 0, head_dim), np.float32)
        self.k, self.v = empty, empty.copy()

    @property
    def length(self) -> int:
        return self.k.shape[3]

    def update(self, k: np.ndarray, v: np.ndarray) -> None:
        self.k, self.v = k, v  # (L, B, H, T, Dh)

    def rewind_to(self, n: int) -> None:
        """Forget every position from n on."""
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot rewind a cache of length {self.length} to {n}")
        self.k, self.v = self.k[:, :, :, :n], self.v[:, :, :, :n]

    def reorder(self, beam_indices: np.ndarray) -> None:
        """Row b of the new cache is row beam_indices[b] of the old one."""
        self.k = np.take(self.k, beam_indices, axis=1)
        self.v = np.take(self.v, beam_indices, axis=1)


class LayerKVCache:
    """The same operations for graphs with one cache input per layer (B, KVH, T, Dh), as the
    fused LM graph has (onnxruntime's GroupQueryAttention takes each layer's cache alone)."""

    def __init__(self, n_layers: int, batch: int, n_heads: int, head_dim: int) -> None:
        empty = np.zeros((batch, n_heads, 0, head_dim), np.float32)
        self.k = [empty] * n_layers
        self.v = [empty] * n_layers

    @property
    def length(self) -> int:
        return self.k[0].shape[2]

    def feeds(self) -> dict[str, np.ndarray]:
        """Graph inputs past_k.{i} / past_v.{i}."""
        out = {f"past_k.{i}": k for i, k in enumerate(self.k)}
        out.update({f"past_v.{i}": v for i, v in enumerate(self.v)})
        return out

    def update_from(self, outputs: dict[str, np.ndarray]) -> None:
        """Keep the graph outputs present_k.{i} / present_v.{i}."""
        self.k = [outputs[f"present_k.{i}"] for i in range(len(self.k))]
        self.v = [outputs[f"present_v.{i}"] for i in range(len(self.v))]

    def rewind_to(self, n: int) -> None:
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot rewind a cache of length {self.length} to {n}")
        self.k = [k[:, :, :n] for k in self.k]
        self.v = [v[:, :, :n] for v in self.v]

    def reorder(self, beam_indices: np.ndarray) -> None:
        self.k = [np.take(k, beam_indices, axis=0) for k in self.k]
        self.v = [np.take(v, beam_indices, axis=0) for v in self.v]
