"""RMSNorm kernels (no model knowledge). y = w * x / sqrt(mean(x^2) + eps), in float32."""
import numpy as np
from numba import njit

_FM = {"reassoc", "contract", "nsz"}  # vectorized reductions; no nan/inf assumptions


@njit(cache=True, nogil=True, fastmath=_FM)
def rmsnorm(x, w, eps, out):
    """x, out: [n, d] float32; w: [d]. out may alias x."""
    n, d = x.shape
    for i in range(n):
        ss = np.float32(0.0)
        for j in range(d):
            ss += x[i, j] * x[i, j]
        inv = np.float32(1.0) / np.sqrt(ss / np.float32(d) + np.float32(eps))
        for j in range(d):
            out[i, j] = w[j] * (x[i, j] * inv)


@njit(cache=True, nogil=True, fastmath=_FM)
def add_rmsnorm(x, r, w, eps, out):
    """x += r (residual), then out = rmsnorm(x). x, r, out: [n, d]."""
    n, d = x.shape
    for i in range(n):
        ss = np.float32(0.0)
        for j in range(d):
            v = x[i, j] + r[i, j]
            x[i, j] = v
            ss += v * v
        inv = np.float32(1.0) / np.sqrt(ss / np.float32(d) + np.float32(eps))
        for j in range(d):
            out[i, j] = w[j] * (x[i, j] * inv)
