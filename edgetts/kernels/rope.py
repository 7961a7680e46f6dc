"""Rotary position embedding tables, rotate-half (NeoX) layout: dimension i pairs with i + head_dim/2.

The talker's M-RoPE (sections interleaved over t/h/w positions) is plain RoPE for speech: the
three position rows are always equal, so every frequency sees the same position. The rotation
itself runs inside the attention kernels (attention._head_rmsnorm_rope)."""
import numpy as np


def inv_freq(theta: float, head_dim: int) -> np.ndarray:
    """float32 [head_dim // 2]: 1 / theta ** (2i / head_dim), as the reference computes it in
    float32, each step rounded once. The power is taken in float64 and rounded: numpy's float32
    `**` is not correctly rounded and differs by an ulp between x86 and aarch64 (that ulp times a
    position of 1000 moved an angle by 1e-4), while torch's float32 power matches the rounded
    float64 one."""
    e = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
    return np.float32(1) / (np.float64(theta) ** e.astype(np.float64)).astype(np.float32)


def rope_cos_sin(positions: np.ndarray, head_dim: int, theta: float):
    """cos, sin: float32 [len(positions), head_dim // 2]. Angles are float32 products like the
    reference's; cos and sin are taken in float64 and rounded once, the same on every CPU."""
    ang = np.asarray(positions).astype(np.float32)[:, None] * inv_freq(theta, head_dim)[None, :]
    ang64 = ang.astype(np.float64)
    return np.cos(ang64).astype(np.float32), np.sin(ang64).astype(np.float32)


def rope_tables(theta: float, head_dim: int, n_pos: int):
    """cos, sin: float32 [n_pos, head_dim // 2] for positions 0 .. n_pos - 1."""
    return rope_cos_sin(np.arange(n_pos), head_dim, theta)
