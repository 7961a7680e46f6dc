"""Element-wise and per-row kernels of the codec decoder (time-major [T, C] float32).

snake_beta     y = v + inv_b * sin(a * v)^2, v = x + bias   (SnakeBeta with exp(alpha), 1/(exp(beta)+eps)
                                                            folded at load; bias = the previous conv's)
residual_add   x += y + bias                                (1x1 conv output back onto the residual)
layer_norm     per row over C, affine                        (ConvNeXt, eps 1e-6)
gelu_erf       x = gelu(x + bias), exact erf form            (ConvNeXt pwconv1)
scale_residual x += gamma * (y + bias)                       (ConvNeXt gamma / layer scale)

sin: no SVML here, and libm's scalar sin would cost ~0.5 s per second of audio (34.5 M calls), so
sin^2 uses its own range reduction (float64 Cody-Waite by pi, sin^2 drops the sign) and an odd
Taylor polynomial to degree 15 (|error| < 1e-10 on [-pi/2, pi/2]); LLVM vectorizes the loop.
Kernels are serial and nogil: the caller splits rows over its own threads (numba's prange
thread pool spins at each call's barrier, which costs milliseconds per call when the LM thread
or anything else competes for the two cores; a row split on Python threads does not spin).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_INV_PI = 1.0 / math.pi
_PI_HI = 3.141592653589793116      # float64(pi)
_PI_LO = 1.2246467991473532e-16    # pi - _PI_HI


@njit(cache=True, nogil=True, inline="always")
def _sin2(y):
    """sin(y)^2 for float64 y (|y| up to ~1e6 keeps < 1e-9 absolute error)."""
    k = math.floor(y * _INV_PI + 0.5)
    r = (y - k * _PI_HI) - k * _PI_LO
    r2 = r * r
    p = 1.0 / 1307674368000.0
    p = p * r2 - 1.0 / 6227020800.0
    p = p * r2 + 1.0 / 39916800.0
    p = p * r2 - 1.0 / 362880.0
    p = p * r2 + 1.0 / 5040.0
    p = p * r2 - 1.0 / 120.0
    p = p * r2 + 1.0 / 6.0
    s = r - r * r2 * p
    return s * s


@njit(cache=True, nogil=True)
def snake_beta(x, bias, a, inv_b, out):
    """out[t, c] = v + inv_b[c] * sin(a[c] * v)^2 with v = x[t, c] + bias[c]. out may alias x."""
    T, C = x.shape
    for t in range(T):
        for c in range(C):
            v = x[t, c] + bias[c]
            y = np.float64(np.float32(a[c] * v))
            out[t, c] = v + inv_b[c] * np.float32(_sin2(y))


@njit(cache=True, nogil=True)
def residual_add(x, y, bias):
    """x[t, c] += y[t, c] + bias[c] (in place)."""
    T, C = x.shape
    for t in range(T):
        for c in range(C):
            x[t, c] += y[t, c] + bias[c]


@njit(cache=True, nogil=True)
def scale_residual(x, y, bias, gamma):
    """x[t, c] += gamma[c] * (y[t, c] + bias[c]) (in place)."""
    T, C = x.shape
    for t in range(T):
        for c in range(C):
            x[t, c] += gamma[c] * (y[t, c] + bias[c])


@njit(cache=True, nogil=True)
def layer_norm(x, w, b, eps, out):
    """Per-row LayerNorm over the last axis (biased variance, float64 accumulation)."""
    T, C = x.shape
    for t in range(T):
        m = 0.0
        for c in range(C):
            m += x[t, c]
        m /= C
        v = 0.0
        for c in range(C):
            d = x[t, c] - m
            v += d * d
        r = 1.0 / math.sqrt(v / C + eps)
        for c in range(C):
            out[t, c] = np.float32((x[t, c] - m) * r) * w[c] + b[c]


@njit(cache=True, nogil=True)
def gelu_erf(x, bias):
    """x[t, c] = gelu(x[t, c] + bias[c]), exact erf form, in place."""
    T, C = x.shape
    for t in range(T):
        for c in range(C):
            v = np.float64(x[t, c] + bias[c])
            x[t, c] = 0.5 * v * (1.0 + math.erf(v * 0.7071067811865476))
