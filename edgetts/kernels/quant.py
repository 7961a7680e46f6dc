"""Block quantization helpers shared by the matmul kernels and the quantizer.

GGML block formats (gguf-py / ggml-quants.c), 32 values per block:
  Q8_0: 34 bytes = float16 d, int8 q[32];                         x = d * q
  Q4_0: 18 bytes = float16 d, uint8 nibbles[16] (value j in the low nibble of byte j,
        value j+16 in the high nibble);                            x = d * (q - 8)

Here:
  * float16 <-> float32 conversion on raw uint16 bits inside numba (numba has no float16 type),
    and bfloat16 bits -> float32,
  * `quantize_act`: the activation of a quantized matvec, quantized ONCE to int8 blocks of 32
    (Q8_0 style: d = max|x| / 127, q = round(x / d)) plus per-block sums of q (for Q4_0),
  * `quantize_q8_0` / `quantize_q4_0`: numba block quantizers, bit-exact with gguf.quants
    (which is pure numpy and slow on a full model),
  * `dequantize_q8_0_rows` / `dequantize_q4_0_rows`: a row range to float32 (embedding lookups,
    tiles for BLAS).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ..gguf.constants import GGML_QUANT_SIZES

QK, Q8_0_BYTES = GGML_QUANT_SIZES["Q8_0"]   # 32 values per block: f16 scale + 32 int8
_, Q4_0_BYTES = GGML_QUANT_SIZES["Q4_0"]    # f16 scale + 16 bytes of nibble pairs


# ------------------------------------------------------------------------- bit conversions

def _low16(builder, v, ty):
    return builder.trunc(v, ir.IntType(16)) if ty.bitwidth > 16 else v


@intrinsic
def _f16_to_f32_hw(typingctx, h):
    """float16 bits (low 16 bits of an integer) -> float32 (LLVM fpext half: vcvtph2ps, fcvt)."""
    if not isinstance(h, types.Integer) or h.bitwidth < 16:
        return None

    def codegen(context, builder, signature, args):
        v = _low16(builder, args[0], signature.args[0])
        return builder.fpext(builder.bitcast(v, ir.HalfType()), ir.FloatType())

    return types.float32(h), codegen


@intrinsic
def _f32_to_f16_hw(typingctx, x):
    """float32 -> float16 bits (uint16), round to nearest even (LLVM fptrunc half)."""
    if not isinstance(x, types.Float) or x.bitwidth != 32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(x), codegen


@intrinsic
def _f32_bits(typingctx, x):
    """float32 -> its uint32 bit pattern."""
    if not isinstance(x, types.Float) or x.bitwidth != 32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(x), codegen


@intrinsic
def _bits_f32(typingctx, u):
    """Low 32 bits of an integer -> float32 with that bit pattern."""
    if not isinstance(u, types.Integer) or u.bitwidth < 32:
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if signature.args[0].bitwidth > 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(u), codegen


# Integer versions, for targets without a half-precision conversion instruction: there LLVM
# calls the compiler-rt helpers __extendhfsf2 / __truncsfhf2, which numba's JIT does not link
# ("LLVM ERROR: Symbol not found: __truncsfhf2" under NUMBA_CPU_NAME=generic on x86-64).
# Bit-identical to the instructions on every finite value and infinity (tests/test_f16.py);
# NaN stays NaN (quieted, payload kept as far as it fits).

@njit(cache=True, nogil=True)
def _f16_to_f32_soft(h):
    h = np.int64(h) & 0xFFFF
    s = (h & 0x8000) << 16
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0x1F:  # inf / NaN (quiet bit set, as the conversion instructions do)
        bits = s | 0x7F800000 | (m << 13)
        if m != 0:
            bits |= 0x00400000
    elif e != 0:
        bits = s | ((e + 112) << 23) | (m << 13)
    else:  # zero / subnormal: m * 2^-24, exact in float32
        bits = s | np.int64(_f32_bits(np.float32(m) * np.float32(5.9604644775390625e-08)))
    return _bits_f32(bits)


@njit(cache=True, nogil=True)
def _f32_to_f16_soft(x):
    f = np.int64(_f32_bits(x))
    s = (f >> 16) & 0x8000
    a = f & 0x7FFFFFFF
    if a > 0x7F800000:  # NaN: quiet, top payload bits kept
        h = 0x7E00 | ((a >> 13) & 0x3FF)
    elif a >= 0x47800000:  # >= 65536 (and inf): overflows
        h = 0x7C00
    elif a < 0x38800000:  # below the smallest normal half: a multiple of 2^-24, rounded to even
        v = _bits_f32(a) * np.float32(16777216.0)  # exact (power of 2), < 1024
        h = np.int64((v + np.float32(8388608.0)) - np.float32(8388608.0))  # round half to even
    else:
        h = (a >> 13) - (112 << 10)  # rebias the exponent field: 127 -> 15
        rem = a & 0x1FFF
        if rem > 0x1000 or (rem == 0x1000 and (h & 1) != 0):
            h += 1  # a carry into the exponent is right (up to 0x7C00 = inf)
    return np.uint16(s | h)


def _native_half() -> bool:
    """True when the target numba compiles for has half <-> float instructions (x86 F16C,
    every aarch64)."""
    import platform

    import numba
    from llvmlite import binding as llvm

    if platform.machine().lower() in ("aarch64", "arm64"):
        return True
    if numba.config.CPU_NAME not in (None, "host"):
        return "+f16c" in (numba.config.CPU_FEATURES or "")
    try:
        return bool(llvm.get_host_cpu_features().get("f16c", False))
    except Exception:
        return False


NATIVE_HALF = _native_half()
# f16_to_f32(h): float16 bits (low 16 bits of an integer) -> float32
# f32_to_f16(x): float32 -> float16 bits (uint16), round to nearest even (as numpy astype)
f16_to_f32 = _f16_to_f32_hw if NATIVE_HALF else _f16_to_f32_soft
f32_to_f16 = _f32_to_f16_hw if NATIVE_HALF else _f32_to_f16_soft


@intrinsic
def bf16_to_f32(typingctx, h):
    """bfloat16 bits (low 16 bits of an integer) -> float32 (the high half of a float32)."""
    if not isinstance(h, types.Integer) or h.bitwidth < 16:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        v = _low16(builder, args[0], signature.args[0])
        w = builder.shl(builder.zext(v, i32), ir.Constant(i32, 16))
        return builder.bitcast(w, ir.FloatType())

    return types.float32(h), codegen


# ------------------------------------------------------------------- activation quantization

@njit(cache=True, nogil=True)
def _roundf(v):
    # gguf.quants.np_roundf: round half away from zero, in float32
    a = abs(v)
    fl = np.floor(a)
    b = fl + np.floor(np.float32(2.0) * (a - fl))
    return -b if v < 0 else b


@njit(cache=True, nogil=True, fastmath={"nnan", "ninf", "nsz"})  # no arcp: d is amax / 127 exactly
def quantize_act(x, xq, xd, xs):
    """x float32[n] (n = 32*nb) -> xq int8[n], xd float32[nb] (scale), xs int32[nb] (sum of xq).

    Per block: d = max|x| / 127, q = round-half-away(x * (1/d)) -- the grid of gguf's Q8_0
    (d kept in float32 here). Allocates nothing.
    """
    nb = x.shape[0] // QK
    for b in range(nb):
        o = b * QK
        amax = np.float32(0.0)
        for i in range(QK):
            a = abs(x[o + i])
            amax = a if a > amax else amax
        d = amax / np.float32(127.0)
        inv = np.float32(1.0) / d if d > 0 else np.float32(0.0)
        s = 0
        for i in range(QK):
            q = np.int32(_roundf(x[o + i] * inv))
            xq[o + i] = q
            s += q
        xd[b] = d
        xs[b] = s


@njit(cache=True, nogil=True)
def quantize_act_rows(X, XQ, XD, XS):
    """Row by row quantize_act for X float32[n, cols]."""
    for t in range(X.shape[0]):
        quantize_act(X[t], XQ[t], XD[t], XS[t])


# ----------------------------------------------------- weight quantizers (bit-exact with gguf)

@njit(cache=True, parallel=True, nogil=True)
def quantize_q8_0(x, out):
    """x float32[rows, cols] (cols % 32 == 0) -> out uint8[rows, cols // 32 * 34]."""
    rows, cols = x.shape
    nb = cols // QK
    for r in prange(rows):
        for b in range(nb):
            o = b * QK
            amax = np.float32(0.0)
            for i in range(QK):
                a = abs(x[r, o + i])
                if a > amax:
                    amax = a
            d = amax / np.float32(127.0)
            inv = np.float32(1.0) / d if d != 0 else np.float32(0.0)
            h = f32_to_f16(d)
            ob = b * Q8_0_BYTES
            out[r, ob] = h & 0xFF
            out[r, ob + 1] = h >> 8
            for i in range(QK):
                q = np.int32(_roundf(x[r, o + i] * inv))
                out[r, ob + 2 + i] = np.uint8(q & 0xFF)


@njit(cache=True, parallel=True, nogil=True)
def quantize_q4_0(x, out):
    """x float32[rows, cols] (cols % 32 == 0) -> out uint8[rows, cols // 32 * 18]."""
    rows, cols = x.shape
    nb = cols // QK
    for r in prange(rows):
        for b in range(nb):
            o = b * QK
            amax = np.float32(0.0)
            vmax = np.float32(0.0)
            for i in range(QK):
                v = x[r, o + i]
                if abs(v) > amax:  # first index of the largest |x|, as numpy argmax
                    amax = abs(v)
                    vmax = v
            d = vmax / np.float32(-8.0)
            inv = np.float32(1.0) / d if d != 0 else np.float32(0.0)
            h = f32_to_f16(d)
            ob = b * Q4_0_BYTES
            out[r, ob] = h & 0xFF
            out[r, ob + 1] = h >> 8
            for j in range(QK // 2):
                q0 = min(np.int32(x[r, o + j] * inv + np.float32(8.5)), 15)
                q1 = min(np.int32(x[r, o + j + 16] * inv + np.float32(8.5)), 15)
                out[r, ob + 2 + j] = np.uint8(q0 | (q1 << 4))


# ------------------------------------------------------------------------------ dequantizers

@njit(cache=True, nogil=True)
def dequantize_q8_0_rows(data, r0, r1, out):
    """Rows r0..r1 of Q8_0 uint8[rows, row_bytes] -> out float32[r1 - r0, cols]."""
    nb = data.shape[1] // Q8_0_BYTES
    for r in range(r0, r1):
        for b in range(nb):
            ob = b * Q8_0_BYTES
            d = f16_to_f32(np.int32(data[r, ob]) | (np.int32(data[r, ob + 1]) << 8))
            for i in range(QK):
                q = np.int32(data[r, ob + 2 + i])
                q = q - 256 if q > 127 else q
                out[r - r0, b * QK + i] = d * np.float32(q)


@njit(cache=True, nogil=True)
def dequantize_q4_0_rows(data, r0, r1, out):
    """Rows r0..r1 of Q4_0 uint8[rows, row_bytes] -> out float32[r1 - r0, cols]."""
    nb = data.shape[1] // Q4_0_BYTES
    for r in range(r0, r1):
        for b in range(nb):
            ob = b * Q4_0_BYTES
            d = f16_to_f32(np.int32(data[r, ob]) | (np.int32(data[r, ob + 1]) << 8))
            for j in range(QK // 2):
                q = np.int32(data[r, ob + 2 + j])
                out[r - r0, b * QK + j] = d * np.float32((q & 15) - 8)
                out[r - r0, b * QK + j + 16] = d * np.float32((q >> 4) - 8)


@njit(cache=True, parallel=True, nogil=True)
def dequantize_q8_0_par(data, out):
    rows = data.shape[0]
    for r in prange(rows):
        dequantize_q8_0_rows(data, r, r + 1, out[r:r + 1])


@njit(cache=True, parallel=True, nogil=True)
def dequantize_q4_0_par(data, out):
    rows = data.shape[0]
    for r in prange(rows):
        dequantize_q4_0_rows(data, r, r + 1, out[r:r + 1])


# ------------------------------------------------------------- block dot products (LLVM IR)
#
# One block of 32: int8 weights / 4-bit weights against the int8 activation, int32 result.
# Written as generic LLVM vector IR (load <32 x i8>, extend, multiply, llvm.vector.reduce.add)
# so the backend picks the instructions for the host: on AVX512-VNNI the unsigned x signed form
# becomes vpdpbusd, elsewhere vpmaddubsw/vpmaddwd. numba's loop vectorizer does not find these
# on its own (it unrolls the 32-step loop into scalar 64-bit multiplies). Portable: no x86
# intrinsics are named. `a`, `b`: C-contiguous arrays of 1-byte items; offsets are flat
# element offsets into them.

_I8, _I32 = ir.IntType(8), ir.IntType(32)


def _byte_ptr(context, builder, aryty, ary, off, vecty):
    data = context.make_array(aryty)(context, builder, value=ary).data
    return builder.bitcast(builder.gep(data, [off]), vecty.as_pointer())


def _reduce_add(builder, v):
    from numba.core import cgutils

    fnty = ir.FunctionType(_I32, [v.type])
    fn = cgutils.get_or_insert_function(builder.module, fnty,
                                        "llvm.vector.reduce.add.v%di32" % v.type.count)
    return builder.call(fn, [v])


def _is_byte_array(t):
    return isinstance(t, types.Array) and t.dtype.bitwidth == 8 and t.layout == "C"


@intrinsic
def dot_u8s8_32(typingctx, a, ao, b, bo):
    """sum_{i<32} u8(a[ao+i] ^ 0x80) * s8(b[bo+i]) = sum (a_s8 + 128) * b  (vpdpbusd shape).

    For signed int8 weights: dot = dot_u8s8_32(...) - 128 * sum(b block).
    """
    if not (_is_byte_array(a) and _is_byte_array(b)):
        return None

    def codegen(context, builder, sig, args):
        v32 = ir.VectorType(_I8, 32)
        va = builder.load(_byte_ptr(context, builder, sig.args[0], args[0], args[1], v32), align=1)
        vb = builder.load(_byte_ptr(context, builder, sig.args[2], args[2], args[3], v32), align=1)
        va = builder.xor(va, ir.Constant(v32, [0x80] * 32))
        w = ir.VectorType(_I32, 32)
        return _reduce_add(builder, builder.mul(builder.zext(va, w), builder.sext(vb, w)))

    return types.int32(a, ao, b, bo), codegen


@intrinsic
def dot_u4s8_32(typingctx, a, ao, b, bo):
    """Q4_0 nibbles: 16 bytes a[ao..ao+16] hold 32 unsigned 4-bit values (value j in the low
    nibble of byte j, value j+16 in the high nibble); sum_j u4_j * s8(b[bo+j]) (vpdpbusd shape).
    For Q4_0: dot = dot_u4s8_32(...) - 8 * sum(b block)."""
    if not (_is_byte_array(a) and _is_byte_array(b)):
        return None

    def codegen(context, builder, sig, args):
        v16, v32 = ir.VectorType(_I8, 16), ir.VectorType(_I8, 32)
        va = builder.load(_byte_ptr(context, builder, sig.args[0], args[0], args[1], v16), align=1)
        vb = builder.load(_byte_ptr(context, builder, sig.args[2], args[2], args[3], v32), align=1)
        lo = builder.and_(va, ir.Constant(v16, [15] * 16))
        hi = builder.lshr(va, ir.Constant(v16, [4] * 16))
        q = builder.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(_I32, 32), list(range(32))))
        w = ir.VectorType(_I32, 32)
        return _reduce_add(builder, builder.mul(builder.zext(q, w), builder.sext(vb, w)))

    return types.int32(a, ao, b, bo), codegen


# ------------------------------------------------------------------ host instruction set
# The x86 kernels in matmul.py name x86 intrinsics, the aarch64 ones in matmul_arm.py aarch64
# intrinsics, so a set is only chosen when the CPU has it AND numba compiles for a target that
# has it. EDGETTS_KERNEL_ISA=generic|avx2|vnni|neon|dotprod forces a set (tests, comparisons).

_ISAS = {"generic": ("generic",), "avx2": ("generic", "avx2"),
         "vnni": ("generic", "avx2", "vnni"), "neon": ("generic", "neon"),
         "dotprod": ("generic", "neon", "dotprod")}
_HWCAP_ASIMD, _HWCAP_ASIMDDP = 1 << 1, 1 << 20  # Linux arm64 AT_HWCAP bits
# LLVM AArch64 CPU names with FeatureDotProd (ARMv8.2+ with the dot product extension)
_DOTPROD_CPUS = ("cortex-a55", "cortex-a65", "cortex-a75", "cortex-a76", "cortex-a77", "cortex-a78",
                 "cortex-a510", "cortex-a520", "cortex-a710", "cortex-a715", "cortex-a720",
                 "cortex-x", "neoverse-", "apple-m", "apple-a13", "apple-a14", "apple-a15",
                 "apple-a16", "apple-a17", "ampere1", "tsv110", "exynos-m4", "exynos-m5")


def _arm_hwcaps() -> tuple[bool, bool]:
    """(ASIMD, ASIMDDP) from the kernel's own report of the CPU (getauxval(AT_HWCAP)); numpy's
    runtime CPU detection where getauxval is not there."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.getauxval.restype = ctypes.c_ulong
        libc.getauxval.argtypes = (ctypes.c_ulong,)
        caps = libc.getauxval(16)  # AT_HWCAP
        return bool(caps & _HWCAP_ASIMD), bool(caps & _HWCAP_ASIMDDP)
    except (OSError, AttributeError):
        try:
            from numpy._core._multiarray_umath import __cpu_features__ as f
        except ImportError:  # numpy 1.x
            from numpy.core._multiarray_umath import __cpu_features__ as f
        return bool(f.get("ASIMD")), bool(f.get("ASIMDDP"))


def _numba_target_has_dotprod() -> bool:
    """Whether the target numba compiles for (NUMBA_CPU_NAME / NUMBA_CPU_FEATURES, else LLVM's
    view of the host: a bare `generic` under qemu, which reads no CPU id) has SDOT."""
    import numba
    from llvmlite import binding as llvm

    feats = numba.config.CPU_FEATURES
    if feats is None and numba.config.CPU_NAME in (None, "host"):
        try:
            if llvm.get_host_cpu_features().get("dotprod", False):
                return True
        except Exception:
            pass
        feats = ""
    if "-dotprod" in (feats or ""):
        return False
    if "+dotprod" in (feats or ""):
        return True
    name = numba.config.CPU_NAME
    if name in (None, "host"):
        name = llvm.get_host_cpu_name()
    return name.lower().startswith(_DOTPROD_CPUS)


def _host_isa() -> str:
    import os
    import platform

    import numba
    from llvmlite import binding as llvm

    forced = os.environ.get("EDGETTS_KERNEL_ISA", "").strip().lower()
    if forced in _ISAS:
        return forced
    if platform.machine().lower() in ("aarch64", "arm64"):
        asimd, dotprod = _arm_hwcaps()
        if not asimd:
            return "generic"
        return "dotprod" if dotprod and _numba_target_has_dotprod() else "neon"
    if numba.config.CPU_NAME not in (None, "host"):
        return "generic"  # portable build (NUMBA_CPU_NAME=generic ...): no x86-only intrinsics
    try:
        f = llvm.get_host_cpu_features()
        if f.get("avx512vnni", False) and f.get("avx512vl", False):
            return "vnni"
        if f.get("avx2", False):
            return "avx2"
    except Exception:
        pass
    return "generic"


KERNEL_ISA = _host_isa()
ISAS = _ISAS[KERNEL_ISA]  # kernel sets this host can run
