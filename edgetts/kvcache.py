"""Preallocated ring-buffer KV cache, one per attention stack.

k[layer], v[layer]: float32 [n_kv_heads, capacity, head_dim]. Position p lives in slot
p % capacity; attention reads the min(p + 1, capacity) most recent slots, so no step allocates.
Size it before a run from the prompt length plus the frame cap (talker: `ensure`, which
reallocates only when a run needs more slots than the cache has) or the number of code groups
(code predictor); `grow` enlarges it keeping the cached positions. A wrap only happens when
generation runs past the size.
"""
from __future__ import annotations

import numpy as np

from .kernels.memory import lazy_zeros


class KVCache:
    def __init__(self, n_layers: int, n_kv_heads: int, head_dim: int, capacity: int):
        self.capacity = int(capacity)
        # lazily-zeroed 4 KB pages: resident memory grows with the positions written
        self.k = lazy_zeros((n_layers, n_kv_heads, self.capacity, head_dim), np.float32)
        self.v = lazy_zeros(self.k.shape, np.float32)
        self.scores = np.zeros(self.capacity, np.float32)  # attention work row
        self.pos = 0  # number of positions written so far (next position)

    def reset(self) -> None:
        self.pos = 0

    def ensure(self, capacity: int) -> None:
        """Grow (reallocate, empty) if a run needs more slots than we have. Call before prefill."""
        if capacity > self.capacity:
            n, h, _, d = self.k.shape
            self.__init__(n, h, d, capacity)

    def grow(self, capacity: int) -> None:
        """Enlarge keeping the cached positions (valid while nothing has wrapped: pos <= capacity)."""
        if capacity <= self.capacity:
            return
        n, h, old, d = self.k.shape
        k = lazy_zeros((n, h, capacity, d), np.float32)
        v = lazy_zeros(k.shape, np.float32)
        keep = min(self.pos, old)
        k[:, :, :keep] = self.k[:, :, :keep]
        v[:, :, :keep] = self.v[:, :, :keep]
        self.k, self.v, self.capacity = k, v, int(capacity)
        self.scores = np.zeros(self.capacity, np.float32)

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes
