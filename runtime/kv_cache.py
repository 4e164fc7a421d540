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


class KVBuffers:
    """Per-layer K/V buffers (B, KVH, capacity, Dh) that the LM graph writes in place:
    onnxruntime's GroupQueryAttention shares a bound past and present buffer, so appending
    copies nothing and `rewind_to` only sets the length. Capacity doubles when full."""

    def __init__(self, n_layers: int, batch: int, n_heads: int, head_dim: int, capacity: int = 256) -> None:
        self.n_layers, self.length = n_layers, 0
        self._alloc(np.zeros((2 * n_layers, batch, n_heads, capacity, head_dim), np.float32))

    def _alloc(self, data: np.ndarray) -> None:
        import onnxruntime as ort

        self.data = data  # (2L, B, KVH, capacity, Dh): K of layer i at 2i, V at 2i + 1
        self.values = [ort.OrtValue.ortvalue_from_numpy(data[j]) for j in range(len(data))]  # views, no copy
        self.binding = None  # rebuilt for the new buffers

    @property
    def capacity(self) -> int:
        return self.data.shape[3]

    @property
    def batch(self) -> int:
        return self.data.shape[1]

    def reserve(self, n: int) -> None:
        """Make room for n more positions."""
        if self.length + n > self.capacity:
            cap = max(2 * self.capacity, self.length + n)
            grown = np.zeros((*self.data.shape[:3], cap, self.data.shape[4]), np.float32)
            grown[:, :, :, : self.length] = self.data[:, :, :, : self.length]
            self._alloc(grown)

    def bind(self, session) -> object:
        """An IOBinding of `session` with every layer's past and present on these buffers."""
        if self.binding is None:
            self.binding = session.io_binding()
            for i in range(self.n_layers):
                for j, kv in ((2 * i, "k"), (2 * i + 1, "v")):
                    self.binding.bind_ortvalue_input(f"past_{kv}.{i}", self.values[j])
                    self.binding.bind_ortvalue_output(f"present_{kv}.{i}", self.values[j])
            self.binding.bind_output("logits")
        return self.binding

    def rewind_to(self, n: int) -> None:
        """Forget every position from n on."""
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot rewind a cache of length {self.length} to {n}")
        self.length = n

    def reorder(self, beam_indices: np.ndarray) -> None:
        """Row b of the new cache is row beam_indices[b] of the old one (the batch may change).
        Only the filled positions are copied (beam search reorders every step)."""
        data = np.empty((self.data.shape[0], len(beam_indices), *self.data.shape[2:]), np.float32)
        data[:, :, :, : self.length] = self.data[:, beam_indices, :, : self.length]
        self._alloc(data)
