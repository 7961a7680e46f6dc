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

QK = 32  # values per Q8_0 / Q4_0 block
Q8_0_BYTES = 34
Q4_0_BYTES = 18


# ------------------------------------------------------------------------- bit conversions

def _low16(builder, v, ty):
    return builder.trunc(v, ir.IntType(16)) if ty.bitwidth > 16 else v


@intrinsic
def f16_to_f32(typingctx, h):
    """float16 bits (low 16 bits of an integer) -> float32 (LLVM fpext half: vcvtph2ps)."""
    if not isinstance(h, types.Integer) or h.bitwidth < 16:
        return None

    def codegen(context, builder, signature, args):
        v = _low16(builder, args[0], signature.args[0])
        return builder.fpext(builder.bitcast(v, ir.HalfType()), ir.FloatType())

    return types.float32(h), codegen


@intrinsic
def f32_to_f16(typingctx, x):
    """float32 -> float16 bits (uint16), round to nearest even (as numpy astype(float16))."""
    if not isinstance(x, types.Float) or x.bitwidth != 32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(x), codegen


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
def dot_s8s8_32(typingctx, a, ao, b, bo):
    """sum_{i<32} s8(a[ao+i]) * s8(b[bo+i]) (vpmovsxbw + vpmaddwd shape)."""
    if not (_is_byte_array(a) and _is_byte_array(b)):
        return None

    def codegen(context, builder, sig, args):
        v32 = ir.VectorType(_I8, 32)
        va = builder.load(_byte_ptr(context, builder, sig.args[0], args[0], args[1], v32), align=1)
        vb = builder.load(_byte_ptr(context, builder, sig.args[2], args[2], args[3], v32), align=1)
        w = ir.VectorType(_I32, 32)
        return _reduce_add(builder, builder.mul(builder.sext(va, w), builder.sext(vb, w)))

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


# ------------------------------------------------ eight-row block kernels (x86 SIMD, LLVM IR)
#
# The generic per-block dot above ends every block with a horizontal reduction (~6 shuffles and
# adds) and scalar int->float work: ~20 instructions per 32 weights. These kernels do eight
# rows at once and never reduce a block to a scalar:
#   p_k = <8 x i32> partial sums of block b of row k          (vpdpbusd, or vpmaddubsw+vpmaddwd)
#   t   = [A B C D E F G H]: three levels of in-lane horizontal adds (vphaddd) and one 128-bit
#         swap fold the eight p_k into the exact int32 block dots of the eight rows
#   acc += float(t - c * xs_b) * float([dA .. dH]) * d_x     (one vcvtph2ps, one FMA)
# The int32 block dots are exact, so the float rounding is the generic kernel's.
# They name x86 intrinsics, so they are only built when the host has the feature (KERNEL_ISA).

def _host_isa() -> str:
    import os

    import numba
    from llvmlite import binding as llvm

    forced = os.environ.get("EDGETTS_KERNEL_ISA", "").strip().lower()
    if forced in ("generic", "avx2", "vnni"):
        return forced
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
ISAS = {"generic": ("generic",), "avx2": ("generic", "avx2"),
        "vnni": ("generic", "avx2", "vnni")}[KERNEL_ISA]  # kernel sets this host can run

_V = ir.VectorType
_I16, _I64, _F32 = ir.IntType(16), ir.IntType(64), ir.FloatType()


def _data(context, builder, aryty, ary):
    return context.make_array(aryty)(context, builder, value=ary).data


def _load(builder, base, off, ty):
    return builder.load(builder.bitcast(builder.gep(base, [off]), ty.as_pointer()), align=1)


def _fn(builder, name, ret, args):
    from numba.core import cgutils

    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


def _idx(vals):
    return ir.Constant(_V(_I32, len(vals)), list(vals))


def _dot8(builder, isa, wv, xv, signed_w=False):
    """32 weights wv (<32 x i8>: unsigned, or signed when signed_w) times xv <32 x s8> ->
    <8 x i32> partial sums (4 products per lane)."""
    v8, v16, b32 = _V(_I32, 8), _V(_I16, 16), _V(_I8, 32)
    if isa == "vnni":  # u8 x s8, accumulated in i32: no saturation
        if signed_w:
            raise ValueError("vnni path wants unsigned weights")
        f = _fn(builder, "llvm.x86.avx512.vpdpbusd.256", v8, [v8, v8, v8])
        return builder.call(f, [ir.Constant(v8, None), builder.bitcast(wv, v8), builder.bitcast(xv, v8)])
    if signed_w:  # |w| (<= 128 as u8) x sign(w)*x: pairs <= 2*128*127 < 2^15, no saturation
        fabs = _fn(builder, "llvm.abs.v32i8", b32, [b32, ir.IntType(1)])
        fsign = _fn(builder, "llvm.x86.avx2.psign.b", b32, [b32, b32])
        xv = builder.call(fsign, [xv, wv])
        wv = builder.call(fabs, [wv, ir.Constant(ir.IntType(1), 0)])
    f1 = _fn(builder, "llvm.x86.avx2.pmadd.ub.sw", v16, [b32, b32])  # pairs of u8 x s8 -> i16
    f2 = _fn(builder, "llvm.x86.avx2.pmadd.wd", v8, [v16, v16])
    m = builder.call(f1, [wv, xv])
    return builder.call(f2, [m, ir.Constant(v16, [1] * 16)])


ROWS = 8  # rows per step of the x86 kernels


def _rows8(kind: str, isa: str):
    """Intrinsic rows8(w, off, rb, xq, xd, xs, nb, out, r): out[r + k] = W[row(off) + k] . x for
    k < 8; w uint8 blocks (kind 'q8_0' | 'q4_0'), off = byte offset of the first row, rb = row
    bytes; xq/xd/xs the quantized activation."""
    bpb = Q8_0_BYTES if kind == "q8_0" else Q4_0_BYTES
    # Q8_0 on vnni: (w + 128) as u8, then subtract 128 * sum(xq); Q4_0: nibble, subtract
    # 8 * sum(xq). Q8_0 on avx2 uses the |w|, sign(w) * x form: no correction.
    signed_w = kind == "q8_0" and isa != "vnni"
    corr = 0 if signed_w else (128 if kind == "q8_0" else 8)

    @intrinsic
    def rows8(typingctx, w, off, rb, xq, xd, xs, nb, out, r):
        if not (_is_byte_array(w) and _is_byte_array(xq)):
            return None

        def codegen(context, builder, sig, args):
            wa, off, rb, xa, xda, xsa, nb, outa, r = args
            wp = _data(context, builder, sig.args[0], wa)
            xp = _data(context, builder, sig.args[3], xa)
            xdp = _data(context, builder, sig.args[4], xda)
            xsp = _data(context, builder, sig.args[5], xsa)
            outp = _data(context, builder, sig.args[7], outa)
            off = context.cast(builder, off, sig.args[1], types.int64)
            rb = context.cast(builder, rb, sig.args[2], types.int64)
            nb = context.cast(builder, nb, sig.args[6], types.int64)
            r = context.cast(builder, r, sig.args[8], types.int64)
            f8, i8x8 = _V(_F32, 8), _V(_I32, 8)
            rowoff = [builder.add(off, builder.mul(rb, ir.Constant(_I64, k))) for k in range(8)]
            entry = builder.block
            loop = builder.append_basic_block("rows8.loop")
            done = builder.append_basic_block("rows8.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            b = builder.phi(_I64)
            acc = builder.phi(f8)
            b.add_incoming(ir.Constant(_I64, 0), entry)
            acc.add_incoming(ir.Constant(f8, None), entry)

            xv = _load(builder, xp, builder.mul(b, ir.Constant(_I64, QK)), _V(_I8, 32))
            blk = builder.mul(b, ir.Constant(_I64, bpb))
            ps, hv = [], ir.Constant(_V(_I16, 8), ir.Undefined)
            for k in range(8):
                bo = builder.add(rowoff[k], blk)
                hv = builder.insert_element(hv, _load(builder, wp, bo, _I16), ir.Constant(_I32, k))
                qo = builder.add(bo, ir.Constant(_I64, 2))
                if kind == "q8_0":
                    wv = _load(builder, wp, qo, _V(_I8, 32))
                    if not signed_w:
                        wv = builder.xor(wv, ir.Constant(_V(_I8, 32), [0x80] * 32))
                elif isa == "vnni":
                    # [bytes | bytes] & [0x0F.. | 0xF0..] = [low nibbles | 16 * high nibbles]:
                    # one broadcast load and one AND; the 16x is shifted out after the fold
                    v = _load(builder, wp, qo, _V(_I8, 16))
                    wv = builder.shuffle_vector(v, v, _idx(list(range(16)) * 2))
                    wv = builder.and_(wv, ir.Constant(_V(_I8, 32), [0x0F] * 16 + [0xF0] * 16))
                else:  # avx2 pairs must stay < 2^15: real nibbles, low and high joined
                    v = _load(builder, wp, qo, _V(_I8, 16))
                    lo = builder.and_(v, ir.Constant(_V(_I8, 16), [15] * 16))
                    hi = builder.lshr(v, ir.Constant(_V(_I8, 16), [4] * 16))
                    wv = builder.shuffle_vector(lo, hi, _idx(range(32)))
                ps.append(_dot8(builder, isa, wv, xv, signed_w))
            # in-lane horizontal add (vphaddd ymm): [a0+a1 a2+a3 c0+c1 c2+c3 | a4+a5 ...]
            ev = _idx([0, 2, 8, 10, 4, 6, 12, 14])
            od = _idx([1, 3, 9, 11, 5, 7, 13, 15])

            def hadd(a, c):
                return builder.add(builder.shuffle_vector(a, c, ev), builder.shuffle_vector(a, c, od))

            h = [hadd(ps[0], ps[1]), hadd(ps[2], ps[3]), hadd(ps[4], ps[5]), hadd(ps[6], ps[7])]
            g0 = hadd(h[0], h[1])  # [A B C D | A B C D] (low / high 128-bit halves' sums)
            g1 = hadd(h[2], h[3])  # [E F G H | E F G H]
            if kind == "q4_0" and isa == "vnni":  # high halves hold 16 * (exact) sums
                sh = ir.Constant(i8x8, [0, 0, 0, 0, 4, 4, 4, 4])
                g0, g1 = builder.ashr(g0, sh), builder.ashr(g1, sh)
            t = builder.add(builder.shuffle_vector(g0, g1, _idx([0, 1, 2, 3, 8, 9, 10, 11])),
                            builder.shuffle_vector(g0, g1, _idx([4, 5, 6, 7, 12, 13, 14, 15])))
            if corr:
                xs_b = builder.load(builder.gep(xsp, [b]))
                c = builder.mul(xs_b, ir.Constant(_I32, corr))
                cv = builder.insert_element(ir.Constant(i8x8, ir.Undefined), c, ir.Constant(_I32, 0))
                t = builder.sub(t, builder.shuffle_vector(cv, cv, _idx([0] * 8)))
            tf = builder.sitofp(t, f8)
            dw = builder.fpext(builder.bitcast(hv, _V(ir.HalfType(), 8)), f8)
            dx = builder.load(builder.gep(xdp, [b]))
            dxv = builder.insert_element(ir.Constant(f8, ir.Undefined), dx, ir.Constant(_I32, 0))
            dxv = builder.shuffle_vector(dxv, dxv, _idx([0] * 8))
            sc = builder.fmul(dw, dxv, flags=("fast",))
            fma = _fn(builder, "llvm.fma.v8f32", f8, [f8, f8, f8])
            accn = builder.call(fma, [tf, sc, acc])
            bn = builder.add(b, ir.Constant(_I64, 1))
            b.add_incoming(bn, loop)
            acc.add_incoming(accn, loop)
            builder.cbranch(builder.icmp_signed("<", bn, nb), loop, done)

            builder.position_at_end(done)
            builder.store(accn, builder.bitcast(builder.gep(outp, [r]), f8.as_pointer()), align=4)
            return context.get_dummy_value()

        return types.none(w, off, rb, xq, xd, xs, nb, out, r), codegen

    return rows8


rows8_q8_0_vnni = _rows8("q8_0", "vnni")
rows8_q4_0_vnni = _rows8("q4_0", "vnni")
rows8_q8_0_avx2 = _rows8("q8_0", "avx2")
rows8_q4_0_avx2 = _rows8("q4_0", "avx2")
