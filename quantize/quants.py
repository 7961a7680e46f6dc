"""Block quantizers (numba), bit-identical with gguf-py's `gguf.quants.quantize`.

GGML block layouts (one block = 32 consecutive values of a row):
  Q8_0: f16 scale d + 32 int8 q;          d = amax / 127, q = round_half_away(x / d)
  Q4_0: f16 scale d + 16 bytes of nibbles; d = x[argmax |x|] / -8,
        q = clamp(trunc(x / d + 8.5), 0, 15); byte j = q[j] | q[j + 16] << 4
Every step is float32, as in gguf-py (and ggml-quants.c), so the bytes match exactly. The float32
-> float16 conversion of d is done on the bits, rounding to nearest even like numpy's cast.

    out = quantize_rows(x, "Q8_0")   # x float32 [rows, cols], cols % 32 == 0 -> uint8 [rows, cols/32*34]
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

QK = 32
BLOCK_BYTES = {"Q8_0": 34, "Q4_0": 18}


@njit(cache=True, inline="always")
def f32_to_f16_bits(f: np.uint32) -> np.uint16:
    """IEEE half bits from float32 bits, round to nearest even (numpy's npy_floatbits_to_halfbits)."""
    h_sgn = np.uint32((f & np.uint32(0x80000000)) >> np.uint32(16))
    f_exp = f & np.uint32(0x7F800000)
    if f_exp >= np.uint32(0x47800000):  # overflow to inf, or inf/nan
        if f_exp == np.uint32(0x7F800000):
            f_sig = f & np.uint32(0x007FFFFF)
            if f_sig != 0:
                ret = np.uint32(0x7C00) + (f_sig >> np.uint32(13))
                if ret == np.uint32(0x7C00):
                    ret += np.uint32(1)
                return np.uint16(h_sgn + ret)
        return np.uint16(h_sgn + np.uint32(0x7C00))
    if f_exp <= np.uint32(0x38000000):  # half subnormal or zero
        if f_exp < np.uint32(0x33000000):
            return np.uint16(h_sgn)
        e = f_exp >> np.uint32(23)
        f_sig = np.uint32(0x00800000) + (f & np.uint32(0x007FFFFF))
        f_sig = f_sig >> (np.uint32(113) - e)
        if ((f_sig & np.uint32(0x3FFF)) != np.uint32(0x1000)) or ((f & np.uint32(0x7FF)) != 0):
            f_sig += np.uint32(0x1000)
        return np.uint16(h_sgn + (f_sig >> np.uint32(13)))
    h_exp = (f_exp - np.uint32(0x38000000)) >> np.uint32(13)
    f_sig = f & np.uint32(0x007FFFFF)
    if (f_sig & np.uint32(0x3FFF)) != np.uint32(0x1000):
        f_sig += np.uint32(0x1000)
    return np.uint16(h_sgn + h_exp + (f_sig >> np.uint32(13)))


@njit(cache=True, parallel=True)
def quantize_q8_0(x: np.ndarray, out: np.ndarray) -> None:
    """x float32 [rows, cols] (cols % 32 == 0) -> out uint8 [rows, cols // 32 * 34]."""
    rows, cols = x.shape
    nb = cols // QK
    for r in prange(rows):
        fbuf = np.empty(1, dtype=np.float32)  # float32 -> bits
        fbits = fbuf.view(np.uint32)
        for b in range(nb):
            base = b * QK
            amax = np.float32(0.0)
            for j in range(QK):
                a = abs(x[r, base + j])
                if a > amax:
                    amax = a
            d = np.float32(amax / np.float32(127.0))
            inv = np.float32(0.0) if d == np.float32(0.0) else np.float32(np.float32(1.0) / d)
            fbuf[0] = d
            h = f32_to_f16_bits(fbits[0])
            o = b * 34
            out[r, o] = np.uint8(h & np.uint16(0xFF))
            out[r, o + 1] = np.uint8(h >> np.uint16(8))
            for j in range(QK):
                v = np.float32(x[r, base + j] * inv)
                a = abs(v)
                fl = np.float32(np.floor(a))
                q = fl + np.float32(np.floor(np.float32(2.0) * (a - fl)))
                qi = np.int32(q)
                if v < 0:
                    qi = -qi
                out[r, o + 2 + j] = np.uint8(qi & 0xFF)


@njit(cache=True, parallel=True)
def quantize_q4_0(x: np.ndarray, out: np.ndarray) -> None:
    """x float32 [rows, cols] (cols % 32 == 0) -> out uint8 [rows, cols // 32 * 18]."""
    rows, cols = x.shape
    nb = cols // QK
    half = QK // 2
    for r in prange(rows):
        q = np.empty(QK, dtype=np.uint8)
        fbuf = np.empty(1, dtype=np.float32)
        fbits = fbuf.view(np.uint32)
        for b in range(nb):
            base = b * QK
            amax = np.float32(0.0)
            vmax = np.float32(0.0)
            for j in range(QK):  # first element of largest magnitude, with its sign
                v = x[r, base + j]
                if abs(v) > amax:
                    amax = abs(v)
                    vmax = v
            d = np.float32(vmax / np.float32(-8.0))
            inv = np.float32(0.0) if d == np.float32(0.0) else np.float32(np.float32(1.0) / d)
            for j in range(QK):
                t = np.float32(np.float32(x[r, base + j] * inv) + np.float32(8.5))
                qi = np.int32(t)  # trunc; t >= 0 here
                if qi > 15:
                    qi = 15
                if qi < 0:
                    qi = 0
                q[j] = np.uint8(qi)
            fbuf[0] = d
            h = f32_to_f16_bits(fbits[0])
            o = b * 18
            out[r, o] = np.uint8(h & np.uint16(0xFF))
            out[r, o + 1] = np.uint8(h >> np.uint16(8))
            for j in range(half):
                out[r, o + 2 + j] = q[j] | (q[j + half] << np.uint8(4))


def quantize_rows(x: np.ndarray, qtype: str, out: np.ndarray | None = None) -> np.ndarray:
    """float32 [rows, cols] -> uint8 [rows, cols // 32 * block_bytes] for Q8_0 / Q4_0."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows, cols = x.shape
    if cols % QK:
        raise ValueError(f"row length {cols} is not a multiple of {QK}")
    if out is None:
        out = np.empty((rows, cols // QK * BLOCK_BYTES[qtype]), dtype=np.uint8)
    if qtype == "Q8_0":
        quantize_q8_0(x, out)
    elif qtype == "Q4_0":
        quantize_q4_0(x, out)
    else:
        raise ValueError(f"no block quantizer for {qtype}")
    return out
