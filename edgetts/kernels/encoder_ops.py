"""Kernels of the codec encoder (Mimi-style) that the decoder's kernels do not cover.

Time-major [T, C] float32, serial and nogil (the caller splits rows over its own threads).

elu             out = x if x > 0 else expm1(x)        (ELU, alpha 1; out may alias x)
gelu            x = 0.5 x (1 + erf(x / sqrt 2)) in place  (exact-erf GELU; erf by a rational fit, vectorized)
causal_softmax  in place on a block of score rows: row r (query q0 + r) = softmax over keys
                0..q0+r, zeros after (full causal attention: no window)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .expf import expm1_neg


@njit(cache=True, nogil=True, fastmath={"contract"})
def elu(x, out):
    """out[t, c] = x if x > 0 else exp(x) - 1 (ELU, alpha 1). out may alias x."""
    T, C = x.shape
    for t in range(T):
        for c in range(C):
            v = x[t, c]
            e = expm1_neg(min(v, np.float32(0.0)))
            out[t, c] = v if v > 0 else e


# erf(z) ~ z P(z^2) / Q(z^2) on [-4, 4] (beyond it erf is +-1 in float32): the single-precision
# rational fit Eigen and XLA use (generic_fast_erf_float); ~2 ulp against the exact GELU.
_ERF_P = tuple(np.float32(v) for v in (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                                       -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                                       -1.60960333262415e-02))
_ERF_Q = tuple(np.float32(v) for v in (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                                       -7.37332916720468e-03, -1.42647390514189e-02))
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = _ERF_P
_Q0, _Q1, _Q2, _Q3, _Q4 = _ERF_Q


# error_model="numpy": no ZeroDivisionError branch on the division, so the loop vectorizes
# (~0.5 ns per element against ~25 ns for libm erf in float64)
@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def gelu(x):
    """x[t, c] = 0.5 * x * (1 + erf(x / sqrt(2))), in place."""
    T, C = x.shape
    for t in range(T):
        for c in range(C):
            v = x[t, c]
            z = v * np.float32(0.7071067811865476)
            z = min(max(z, np.float32(-4.0)), np.float32(4.0))
            z2 = z * z
            p = _P0
            p = p * z2 + _P1
            p = p * z2 + _P2
            p = p * z2 + _P3
            p = p * z2 + _P4
            p = p * z2 + _P5
            p = p * z2 + _P6
            q = _Q0
            q = q * z2 + _Q1
            q = q * z2 + _Q2
            q = q * z2 + _Q3
            q = q * z2 + _Q4
            x[t, c] = np.float32(0.5) * v * (np.float32(1.0) + z * p / q)


@njit(cache=True, nogil=True)
def causal_softmax(s, scale, q0):
    """s [R, n_keys] raw q.k products of the queries at positions q0..q0+R-1, in place ->
    attention weights: row r = softmax(scale * s[r, :q0+r+1]) (float32 exp, float64 sum), zeros
    for the later (future) keys."""
    R, n = s.shape
    for r in range(R):
        row = s[r]
        hi = min(q0 + r + 1, n)
        mx = -np.inf
        for j in range(hi):
            v = row[j] * scale
            row[j] = v
            if v > mx:
                mx = v
        tot = 0.0
        for j in range(hi):
            e = np.float32(math.exp(row[j] - mx))
            row[j] = e
            tot += e
        inv = np.float32(1.0 / tot)
        for j in range(hi):
            row[j] *= inv
        for j in range(hi, n):
            row[j] = 0.0
