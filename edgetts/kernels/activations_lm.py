"""Element-wise kernels of the LM side: SwiGLU, bias + SiLU, bias add (no model knowledge)."""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath={"contract"})
def silu_mul(gu, out):
    """gu: [n, 2*I] = [gate | up]; out[:, :I] = silu(gate) * up."""
    n, two_i = gu.shape
    m = two_i // 2
    for r in range(n):
        for j in range(m):
            g = gu[r, j]
            out[r, j] = g / (np.float32(1.0) + np.exp(-g)) * gu[r, m + j]


@njit(cache=True, nogil=True, fastmath={"contract"})
def bias_silu(x, b):
    """x = silu(x + b) in place. x: [n, d]; b: [d]."""
    n, d = x.shape
    for r in range(n):
        for j in range(d):
            v = x[r, j] + b[j]
            x[r, j] = v / (np.float32(1.0) + np.exp(-v))


@njit(cache=True, nogil=True)
def add_bias(x, b):
    """x += b (broadcast over rows). x: [n, d]; b: [d]."""
    n, d = x.shape
    for r in range(n):
        for j in range(d):
            x[r, j] += b[j]
