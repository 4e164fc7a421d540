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
