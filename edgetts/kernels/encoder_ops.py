"""Kernels of the codec encoder (Mimi-style) that the decoder's kernels do not cover.

Time-major [T, C] float32, serial and nogil (the caller splits rows over its own threads).

elu             out = x if x > 0 else expm1(x)        (ELU, alpha 1; out may alias x)
causal_softmax  in place on scores [H, T, T]: row t = softmax(scale * s[t, :t+1]), zeros after t
                (full causal attention: every query sees all earlier frames, no window)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def elu(x, out):
    """out[t, c] = x if x > 0 else exp(x) - 1 (computed as expm1). out may alias x."""
    T, C = x.shape
    for t in range(T):
        for c in range(C):
            v = x[t, c]
            out[t, c] = v if v > 0 else np.float32(math.expm1(v))


@njit(cache=True, nogil=True)
def causal_softmax(s, scale):
    """s [H, T, T] raw q.k products, in place -> attention weights: row t holds
    softmax(scale * s[h, t, :t+1]) (float32 exp, float64 sum) and zeros for the future columns."""
    H, T, _ = s.shape
    for h in range(H):
        for t in range(T):
            row = s[h, t]
            mx = -np.inf
            for j in range(t + 1):
                v = row[j] * scale
                row[j] = v
                if v > mx:
                    mx = v
            tot = 0.0
            for j in range(t + 1):
                e = np.float32(math.exp(row[j] - mx))
                row[j] = e
                tot += e
            inv = np.float32(1.0 / tot)
            for j in range(t + 1):
                row[j] *= inv
            for j in range(t + 1, T):
                row[j] = 0.0
