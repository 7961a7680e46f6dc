"""float32 exp that vectorizes: numba lowers np.exp / math.exp to a scalar libm call (~5-20 ns
each, a loop around it stays scalar); these are inline polynomials (~1 ns, the loop vectorizes).

exp_f32(v)      exp(v), v clamped to [-87, 88] (normal float32 range), ~1 ulp
expm1_neg(v)    exp(v) - 1 for v <= 0 (ELU), below -20 exactly -1

Both: v = k*ln2 + r with |r| <= ln2/2 (Cody-Waite), exp(r) - 1 by a degree-7 Taylor polynomial
(truncation r^8/8! < 3e-9), 2^k from its exponent bits.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import types
from numba.extending import intrinsic

LOG2E = np.float32(1.4426950408889634)
# ln 2 in two float32 parts (Cody-Waite): k*LN2_HI is exact for |k| < 2^9
LN2_HI = np.float32(0.693359375)
LN2_LO = np.float32(-2.12194440e-4)
EXP_MIN, EXP_MAX = np.float32(-87.0), np.float32(88.0)  # 2^k stays a normal float32


@intrinsic
def f32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 `bits` (an LLVM bitcast: vectorizes)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _reduce(v):
    """(2^k, exp(r) - 1) with v = k ln2 + r."""
    k = np.rint(v * LOG2E)
    r = (v - k * LN2_HI) - k * LN2_LO
    p = np.float32(1.0 / 5040)
    p = p * r + np.float32(1.0 / 720)
    p = p * r + np.float32(1.0 / 120)
    p = p * r + np.float32(1.0 / 24)
    p = p * r + np.float32(1.0 / 6)
    p = p * r + np.float32(0.5)
    em = r + r * r * p
    s = f32_from_bits((np.int32(k) + np.int32(127)) << np.int32(23))
    return s, em


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def exp_f32(v):
    """exp(v) in float32 (v clamped to [EXP_MIN, EXP_MAX])."""
    s, em = _reduce(min(max(v, EXP_MIN), EXP_MAX))
    return s * em + s


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def expm1_neg(v):
    """exp(v) - 1 for v <= 0: 2^k*(expm1(r) + 1) - 1 = 2^k*expm1(r) + (2^k - 1). Below -20 the
    float32 result is -1 anyway. Max error ~1e-7 relative."""
    s, em = _reduce(max(v, np.float32(-20.0)))
    return s * em + (s - np.float32(1.0))
