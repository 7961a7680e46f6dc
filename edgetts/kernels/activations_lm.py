"""Element-wise kernels of the LM side: SwiGLU, bias + SiLU, bias add (no model knowledge)."""
import numpy as np
from numba import njit

from .expf import exp_f32


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def silu(v):
    """v * sigmoid(v), exp by expf.exp_f32. Callers compile with error_model="numpy" (no
    ZeroDivisionError branch on the division), so their loops vectorize."""
    return v / (np.float32(1.0) + exp_f32(-v))


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def silu_mul(gu, out):
    """gu: [n, 2*I] = [gate | up]; out[:, :I] = silu(gate) * up."""
    n, two_i = gu.shape
    m = two_i // 2
    for r in range(n):
        for j in range(m):
            out[r, j] = silu(gu[r, j]) * gu[r, m + j]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def bias_silu(x, b):
    """x = silu(x + b) in place. x: [n, d]; b: [d]."""
    n, d = x.shape
    for r in range(n):
        for j in range(d):
            x[r, j] = silu(x[r, j] + b[j])


@njit(cache=True, nogil=True)
def add_bias(x, b):
    """x += b (broadcast over rows). x: [n, d]; b: [d]."""
    n, d = x.shape
    for r in range(n):
        for j in range(d):
            x[r, j] += b[j]
