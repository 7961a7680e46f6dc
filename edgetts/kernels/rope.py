"""Rotary position embedding, rotate-half (NeoX) layout: dimension i pairs with i + head_dim/2."""
import numpy as np
from numba import njit


def rope_tables(theta: float, head_dim: int, n_pos: int):
    """cos, sin: float32 [n_pos, head_dim // 2]; computed in float32 like the reference."""
    half = head_dim // 2
    inv_freq = (1.0 / (np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)))
                ).astype(np.float32)
    freqs = np.arange(n_pos, dtype=np.float32)[:, None] * inv_freq[None, :half]
    return np.cos(freqs).astype(np.float32), np.sin(freqs).astype(np.float32)


@njit(cache=True, nogil=True)
def rope_inplace(x, cos_row, sin_row):
    """x: [head_dim] rotated in place at the position whose tables are cos_row/sin_row [half]."""
    half = x.shape[0] // 2
    for i in range(half):
        a = x[i]
        b = x[i + half]
        c = cos_row[i]
        s = sin_row[i]
        x[i] = a * c - b * s
        x[i + half] = b * c + a * s
