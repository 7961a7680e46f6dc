"""Element-wise and per-row kernels of the codec decoder (time-major [T, C] float32).

snake_beta     y = v + inv_b * sin(a * v)^2, v = x + bias   (SnakeBeta with exp(alpha), 1/(exp(beta)+eps)
                                                            folded at load; bias = the previous conv's)
residual_add   x += y + bias                                (1x1 conv output back onto the residual)
layer_norm     per row over C, affine                        (ConvNeXt, eps 1e-6)
gelu_erf       x = gelu(x + bias), exact erf form            (ConvNeXt pwconv1)
scale_residual x += gamma * (y + bias)                       (ConvNeXt gamma / layer scale)

sin: no SVML here, and libm's scalar sin would cost ~0.5 s per second of audio (34.5 M calls), so
sin^2 uses its own float32 range reduction (3-part Cody-Waite by pi; sin^2 drops the sign) and
an odd polynomial; LLVM vectorizes the loop (~0.5 ns per element vs ~5 ns through float64).
Accuracy ~1e-7 relative for arguments up to ~1e4, like torch's float32 sin.
Kernels are serial and nogil: the caller splits rows over its own threads (numba's prange
thread pool spins at each call's barrier, which costs milliseconds per call when the LM thread
or anything else competes for the two cores; a row split on Python threads does not spin).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_INV_PI = np.float32(1.0 / math.pi)
# pi split in three float32 parts (Cody-Waite): k*_P1 and k*_P2 are exact for |k| < 2^12
_P1 = np.float32(3.140625)
_P2 = np.float32(9.67502593994140625e-4)
_P3 = np.float32(1.509957990978376432e-7)


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _sin2(y):
    """sin(y)^2 in float32: y - k*pi with k = rint(y/pi) (sin^2 ignores the sign (-1)^k), then an
    odd Taylor polynomial to degree 11 on [-pi/2, pi/2] (|error| < 1e-7). Vectorizes (AVX-512)."""
    k = np.rint(y * _INV_PI)
    r = ((y - k * _P1) - k * _P2) - k * _P3
    r2 = r * r
    p = np.float32(-2.5052108e-08)
    p = p * r2 + np.float32(2.7557319e-06)
    p = p * r2 - np.float32(1.9841270e-04)
    p = p * r2 + np.float32(8.3333333e-03)
    p = p * r2 - np.float32(1.6666667e-01)
    s = r + r * r2 * p
    return s * s


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _snake(v, a, inv_b):
    return v + inv_b * _sin2(a * v)


@njit(cache=True, nogil=True, fastmath={"contract"})
def snake_beta(x, bias, a, inv_b, out):
    """out[t, c] = v + inv_b[c] * sin(a[c] * v)^2 with v = x[t, c] + bias[c]. out may be x itself
    (in place), or an array that does not overlap x."""
    T, C = x.shape
    if out.ctypes.data == x.ctypes.data:
        # In place as one array: with x and out as two names for the same memory, LLVM's
        # runtime overlap check sent every row to the scalar loop (2.1 against 0.3 ns an element)
        for t in range(T):
            xr = x[t]
            for c in range(C):
                xr[c] = _snake(xr[c] + bias[c], a[c], inv_b[c])
        return
    for t in range(T):
        for c in range(C):
            out[t, c] = _snake(x[t, c] + bias[c], a[c], inv_b[c])


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
