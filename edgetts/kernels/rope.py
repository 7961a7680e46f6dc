"""Rotary position embedding tables, rotate-half (NeoX) layout: dimension i pairs with i + head_dim/2.

The talker's M-RoPE (sections interleaved over t/h/w positions) is plain RoPE for speech: the
three position rows are always equal, so every frequency sees the same position. The rotation
itself runs inside the attention kernels (attention._head_rmsnorm_rope)."""
import numpy as np


def rope_tables(theta: float, head_dim: int, n_pos: int):
    """cos, sin: float32 [n_pos, head_dim // 2]; computed in float32 like the reference."""
    half = head_dim // 2
    inv_freq = (1.0 / (np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)))
                ).astype(np.float32)
    freqs = np.arange(n_pos, dtype=np.float32)[:, None] * inv_freq[None, :half]
    return np.cos(freqs).astype(np.float32), np.sin(freqs).astype(np.float32)
