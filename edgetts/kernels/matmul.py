"""Matrix-vector and matrix-matrix products on weights in their stored type.

    W = Matrix.from_tensor(weights["talker.blk.0.attn_q.weight"])   # [rows=out, cols=in]
    W.matvec(x, out)        # out[rows] = W @ x, x float32[cols]; allocates nothing
    W.matmul(X)             # X float32[n, cols] -> [n, rows]  (prefill, batches)

Stored types read in place (the mmap of the weight file, no dequantized copy):
  F32, F16, BF16 (raw uint16 bits), Q8_0, Q4_0 (uint8[rows, row_bytes], GGML blocks of 32).
Other block types (Q4_K, Q6_K, ...) are dequantized once at load and requantized to Q8_0
(F32 when cols is not a multiple of 32).

Quantized matvec: the activation x is quantized ONCE per call to int8 blocks of 32
(d_x = max|x| / 127, per-block sums kept), then per block an int8 x int8 (Q8_0) or
uint4 x int8 (Q4_0) dot product with int32 accumulation, scaled by d_w * d_x:

    Q8_0:  s = sum((w + 128) * xq) - 128 * sum(xq)     (unsigned x signed, vpdpbusd shape)
    Q4_0:  s = sum(nibble * xq)    -   8 * sum(xq)

The block dot products are LLVM vector IR (edgetts.kernels.quant.dot_*), rows run in
parallel with prange; the thread count is the caller's numba.set_num_threads.

Layout decision (measured, bench/matmul.py and the notes in the kernel section): the x86
kernels read an "x8" copy of a quantized matrix (for every 8 rows and block: the 8 float16 scales,
then the 8 rows' quants) -- the same bytes reordered, so exactly the size of the original. It is
made on the first product (or Matrix.prepare()), never for tables only used through rows_f32.
It was ~20-45 % faster than reading the GGML rows in place (one linear stream, one scale load
per 8 rows, constant offsets). The aarch64 kernels (matmul_arm.py) read the same copy; the
generic kernels read the GGML bytes in place.
Memory: the x8 copy is the ONE resident copy of those rows. Once it exists, the source pages of a
file-mapped matrix are released (madvise DONTNEED; they stay in the page cache) and concat_rows
repacks each part straight into its row range (no concatenated copy); rows_f32 / to_f32 read
the x8 bytes back (Matrix._plain_rows). self.data stays authoritative only for the last rows % 8.

numba's cache does not notice edits to quant.py when a kernel here inlines its intrinsics:
after changing quant.py, delete edgetts/kernels/__pycache__.

Thread safety: each Matrix owns its activation scratch, so two threads may call matvec on
DIFFERENT Matrix objects at once; calls on the same Matrix must not overlap.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .memory import RowTable, file_backed, lazy_zeros, release_pages
from .quant import (KERNEL_ISA, QK, Q4_0_BYTES, Q8_0_BYTES, bf16_to_f32, dequantize_q4_0_par,
                    dequantize_q4_0_rows, dequantize_q8_0_par, dequantize_q8_0_rows,
                    dot_u4s8_32, dot_u8s8_32, f16_to_f32, quantize_act, quantize_act_rows,
                    quantize_q8_0)

DTYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0")
_BLOCK_BYTES = {"Q8_0": Q8_0_BYTES, "Q4_0": Q4_0_BYTES}
# matmul of quantized W: below this many activation rows the int8 kernels (weights read once,
# in L1 per 8-row group); from it on, dequantized tiles of W and BLAS. Measured (Q8_0/Q4_0
# 3072x1024, 1 thread): int8 is faster at every n up to 512 (n=512: 43 vs 56 ms Q8_0, 35 vs
# 53 ms Q4_0; n=16: 0.85 vs 8.2 ms).
BLAS_MIN_ROWS = 1024
_TILE_BYTES = 1 << 20  # float32 bytes of one dequantized tile (fits L2)
_EMPTY = np.zeros(0, np.uint8)
_EMPTY.flags.writeable = False


# ---------------------------------------------------------------------------- matvec kernels

@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_f32(w, x, out):
    rows, cols = w.shape
    for r in prange(rows):
        acc = np.float32(0.0)
        for i in range(cols):
            acc += w[r, i] * x[i]
        out[r] = acc


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_f16(w, x, out):
    """w uint16[rows, cols] float16 bits."""
    rows, cols = w.shape
    for r in prange(rows):
        acc = np.float32(0.0)
        for i in range(cols):
            acc += f16_to_f32(w[r, i]) * x[i]
        out[r] = acc


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_bf16(w, x, out):
    """w uint16[rows, cols] bfloat16 bits."""
    rows, cols = w.shape
    for r in prange(rows):
        acc = np.float32(0.0)
        for i in range(cols):
            acc += bf16_to_f32(w[r, i]) * x[i]
        out[r] = acc


@njit(cache=True, nogil=True, fastmath=True)
def _row_q8_0(w, wd, r, xq, xd, xs):
    """W[r] . x for Q8_0 w uint8[rows, nb*34] (wd = w as uint16: block b's scale at b*17)."""
    base = r * w.shape[1]
    acc = np.float32(0.0)
    for b in range(xd.shape[0]):
        s = dot_u8s8_32(w, base + b * Q8_0_BYTES + 2, xq, b * QK) - 128 * xs[b]
        acc += (f16_to_f32(wd[r, b * (Q8_0_BYTES // 2)]) * xd[b]) * np.float32(s)
    return acc


@njit(cache=True, nogil=True, fastmath=True)
def _row_q4_0(w, wd, r, xq, xd, xs):
    """W[r] . x for Q4_0 w uint8[rows, nb*18] (wd = w as uint16: block b's scale at b*9)."""
    base = r * w.shape[1]
    acc = np.float32(0.0)
    for b in range(xd.shape[0]):
        s = dot_u4s8_32(w, base + b * Q4_0_BYTES + 2, xq, b * QK) - 8 * xs[b]
        acc += (f16_to_f32(wd[r, b * (Q4_0_BYTES // 2)]) * xd[b]) * np.float32(s)
    return acc


# generic (any CPU LLVM targets): one row at a time, one reduction per block. The unused first
# argument (the x8 copy) keeps one signature for every kernel set.
@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q8_0(p, w, wd, xq, xd, xs, out):
    """xq int8[nb*32], xd float32[nb], xs int32[nb]: the quantized activation."""
    for r in prange(w.shape[0]):
        out[r] = _row_q8_0(w, wd, r, xq, xd, xs)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q4_0(p, w, wd, xq, xd, xs, out):
    for r in prange(w.shape[0]):
        out[r] = _row_q4_0(w, wd, r, xq, xd, xs)


# ------------------------------------------------- x86 kernels: 8 interleaved rows (LLVM IR)
#
# The generic per-block dot ends every block with a horizontal reduction (~6 shuffles and adds)
# and scalar int->float work: ~20 instructions per 32 weights. The x86 kernels take eight rows
# at once and never reduce a block to a scalar:
#   p_k = <8 x i32> partial sums of block b of row k          (vpdpbusd, or vpmaddubsw+vpmaddwd)
#   t   = [A B C D E F G H]: three levels of in-lane horizontal adds (vphaddd) and one 128-bit
#         swap fold the eight p_k into the exact int32 block dots of the eight rows
#         (Q4_0: two rows per 32-byte load, low/high nibbles against x[0:16] / x[16:32] in both
#         halves, so four p vectors and two fold levels; lanes come out as rows 0 2 4 6 1 3 5 7)
#   acc += float(t - c * xs_b) * float([dA .. dH]) * d_x     (one vcvtph2ps, one FMA)
# The int32 block dots are exact, so the float rounding matches the generic kernel's.
#
# They read the weights in the "x8" layout (repack_x8): for each group of 8 rows and each block,
# the 8 float16 scales (16 bytes) then the 8 rows' quants (8 x 32 or 8 x 16 bytes) -- exactly
# the bytes of the 8 GGML blocks, reordered, so the copy is the size of the original. One
# linear stream per thread, one 16-byte scale load per step, constant offsets.
# They name x86 intrinsics, so they are only built when the host has them (quant.KERNEL_ISA).

_V = ir.VectorType
_I8, _I16, _I32, _I64, _F32 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64), ir.FloatType()
ROWS = 8  # rows per step of the x86 kernels
# The x86 8-row kernels prefetch the x8 bytes PREFETCH_AHEAD bytes ahead of the block they read
# (every line of it, locality 1: prefetcht2). A decode step reads each weight once, as one
# contiguous stream per thread; measured (0.6B Q4_0, 2 threads): talker step 16.3 -> 12.9 ms,
# and the predictor frame that follows it 22-23 -> 16-17 ms (it had lost its ~80 MB of weights
# from the shared cache to the talker's stream; 18.2 -> 15.7 ms when warm). Distances 512-16384
# and the other hints measured: 4096-8192 at locality 1 best; locality 0 (prefetchnta) keeps
# lines out of the outer caches and slows the predictor 3x.
PREFETCH_AHEAD = 8192
PREFETCH_LOCALITY = 1


def _data(context, builder, aryty, ary):
    return context.make_array(aryty)(context, builder, value=ary).data


def _load(builder, base, off, ty, align=1):
    return builder.load(builder.bitcast(builder.gep(base, [off]), ty.as_pointer()), align=align)


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


def _dot8_pair_u4(builder, isa, lo, hi, xlo2, xhi2):
    """Two rows' Q4_0 blocks at once: lo / hi = [row a nibbles | row b nibbles] (the low and the
    high nibbles, 0..15), xlo2 / xhi2 = the block's x[0:16] / x[16:32] in both halves ->
    <8 x i32>: lanes 0-3 partial sums of row a, lanes 4-7 of row b."""
    v8, v16, b32 = _V(_I32, 8), _V(_I16, 16), _V(_I8, 32)
    if isa == "vnni":
        f = _fn(builder, "llvm.x86.avx512.vpdpbusd.256", v8, [v8, v8, v8])
        p = builder.call(f, [ir.Constant(v8, None), builder.bitcast(lo, v8), builder.bitcast(xlo2, v8)])
        return builder.call(f, [p, builder.bitcast(hi, v8), builder.bitcast(xhi2, v8)])
    f1 = _fn(builder, "llvm.x86.avx2.pmadd.ub.sw", v16, [b32, b32])  # |pairs| <= 2*15*128: no saturation
    f2 = _fn(builder, "llvm.x86.avx2.pmadd.wd", v8, [v16, v16])
    m = builder.add(builder.call(f1, [lo, xlo2]), builder.call(f1, [hi, xhi2]))
    return builder.call(f2, [m, ir.Constant(v16, [1] * 16)])


def _q4_0_block_dots_zmm(builder, pp, blk, xp, b):
    """One block of an x8 Q4_0 group on AVX512-VNNI -> <8 x i32> the 8 rows' nibble . xq dots.
    A 64-byte load holds 4 rows' 16 bytes (byte i: weight i low, weight i + 16 high); against x[0:16]
    (and x[16:32]) repeated in every 128-bit lane, vpdpbusd leaves row k's dot in lanes 4k..4k+3.
    Two loads, six logic ops, four vpdpbusd, and a 32 -> 8 lane fold of two permutes and two adds,
    against eight ymm vpdpbusd and a three-level shuffle tree on the ymm path. Integer sums are
    exact: the same dots as the ymm fold, bit for bit."""
    i8x64, i32x16, i8x16 = _V(_I8, 64), _V(_I32, 16), _V(_I8, 16)
    dp = _fn(builder, "llvm.x86.avx512.vpdpbusd.512", i32x16, [i32x16, i32x16, i32x16])
    xb = builder.mul(b, ir.Constant(_I64, QK))
    xs4 = []
    for h in range(2):  # x[16h:16h+16] in all four 128-bit lanes (vbroadcasti32x4)
        v = _load(builder, xp, builder.add(xb, ir.Constant(_I64, 16 * h)), i8x16)
        xs4.append(builder.bitcast(builder.shuffle_vector(v, v, _idx(list(range(16)) * 4)), i32x16))
    m15 = ir.Constant(i8x64, [15] * 64)
    half = []
    for h in range(2):  # rows 4h..4h+3
        v = _load(builder, pp, builder.add(blk, ir.Constant(_I64, 2 * ROWS + 64 * h)), i8x64)
        lo = builder.bitcast(builder.and_(v, m15), i32x16)
        hi = builder.bitcast(builder.and_(builder.lshr(v, ir.Constant(i8x64, [4] * 64)), m15), i32x16)
        half.append(builder.call(dp, [builder.call(dp, [ir.Constant(i32x16, None), lo, xs4[0]]), hi, xs4[1]]))
    # [half0 | half1] as 32 lanes: row k in lanes 4k..4k+3
    s = builder.add(builder.shuffle_vector(half[0], half[1], _idx([4 * k for k in range(8)] + [4 * k + 2 for k in range(8)])),
                    builder.shuffle_vector(half[0], half[1], _idx([4 * k + 1 for k in range(8)] + [4 * k + 3 for k in range(8)])))
    return builder.add(builder.shuffle_vector(s, s, _idx(range(8))), builder.shuffle_vector(s, s, _idx(range(8, 16))))


def _block_dots_ymm(builder, kind, isa, signed_w, pp, blk, xv):
    """One block of an x8 group in ymm vectors -> (<8 x i32> the 8 rows' weight . xq dots, the
    row order of its lanes). xv <32 x i8> the block's activations; signed_w: Q8_0 weights as
    signed bytes (_dot8's AVX2 form). Q4_0: rows 2j, 2j+1 are adjacent 16-byte runs -> one
    32-byte load per pair; their fold comes out in lane order [0 2 4 6 1 3 5 7] (the caller's
    scales and store follow it)."""
    bpb = Q8_0_BYTES if kind == "q8_0" else Q4_0_BYTES
    qb = bpb - 2
    ps = []
    if kind == "q4_0":
        xlo2 = builder.shuffle_vector(xv, xv, _idx(list(range(16)) * 2))
        xhi2 = builder.shuffle_vector(xv, xv, _idx(list(range(16, 32)) * 2))
        for j in range(ROWS // 2):
            v = _load(builder, pp, builder.add(blk, ir.Constant(_I64, 2 * ROWS + 2 * j * qb)), _V(_I8, 32))
            lo = builder.and_(v, ir.Constant(_V(_I8, 32), [15] * 32))
            hi = builder.and_(builder.lshr(v, ir.Constant(_V(_I8, 32), [4] * 32)),
                              ir.Constant(_V(_I8, 32), [15] * 32))
            ps.append(_dot8_pair_u4(builder, isa, lo, hi, xlo2, xhi2))
    else:
        for k in range(ROWS):
            wv = _load(builder, pp, builder.add(blk, ir.Constant(_I64, 2 * ROWS + k * qb)), _V(_I8, 32))
            if not signed_w:
                wv = builder.xor(wv, ir.Constant(_V(_I8, 32), [0x80] * 32))
            ps.append(_dot8(builder, isa, wv, xv, signed_w))
    # in-lane horizontal add (vphaddd ymm): [a0+a1 a2+a3 c0+c1 c2+c3 | a4+a5 ...]
    ev = _idx([0, 2, 8, 10, 4, 6, 12, 14])
    od = _idx([1, 3, 9, 11, 5, 7, 13, 15])

    def hadd(a, c):
        return builder.add(builder.shuffle_vector(a, c, ev), builder.shuffle_vector(a, c, od))

    if kind == "q4_0":  # ps[j] = [R2j x4 | R2j+1 x4]
        return hadd(hadd(ps[0], ps[1]), hadd(ps[2], ps[3])), [0, 2, 4, 6, 1, 3, 5, 7]  # [A C E G | B D F H]
    h = [hadd(ps[0], ps[1]), hadd(ps[2], ps[3]), hadd(ps[4], ps[5]), hadd(ps[6], ps[7])]
    g0 = hadd(h[0], h[1])  # [A B C D | A B C D] (sums of the low / high 128-bit halves)
    g1 = hadd(h[2], h[3])  # [E F G H | E F G H]
    return (builder.add(builder.shuffle_vector(g0, g1, _idx([0, 1, 2, 3, 8, 9, 10, 11])),
                        builder.shuffle_vector(g0, g1, _idx([4, 5, 6, 7, 12, 13, 14, 15]))), list(range(ROWS)))


def _rows8(kind: str, isa: str):
    """Intrinsic rows8(p, off, nb, xq, xd, xs, out, r): out[r + k] = W[r + k] . x for k < 8,
    p the x8-layout bytes (repack_x8), off = byte offset of this group of rows."""
    bpb = Q8_0_BYTES if kind == "q8_0" else Q4_0_BYTES
    # Q8_0 on vnni: (w + 128) as u8, then subtract 128 * sum(xq); Q4_0: nibble, subtract
    # 8 * sum(xq). Q8_0 on avx2 uses the |w|, sign(w) * x form: no correction.
    signed_w = kind == "q8_0" and isa != "vnni"
    corr = 0 if signed_w else (128 if kind == "q8_0" else 8)
    zmm = kind == "q4_0" and isa == "vnni"

    @intrinsic
    def rows8(typingctx, p, off, nb, xq, xd, xs, out, r):
        if not (_is_byte_array(p) and _is_byte_array(xq)):
            return None

        def codegen(context, builder, sig, args):
            pa, off, nb, xa, xda, xsa, outa, r = args
            pp = _data(context, builder, sig.args[0], pa)
            xp = _data(context, builder, sig.args[3], xa)
            xdp = _data(context, builder, sig.args[4], xda)
            xsp = _data(context, builder, sig.args[5], xsa)
            outp = _data(context, builder, sig.args[6], outa)
            off = context.cast(builder, off, sig.args[1], types.int64)
            nb = context.cast(builder, nb, sig.args[2], types.int64)
            r = context.cast(builder, r, sig.args[7], types.int64)
            f8, i8x8 = _V(_F32, 8), _V(_I32, 8)
            entry = builder.block
            loop = builder.append_basic_block("rows8.loop")
            done = builder.append_basic_block("rows8.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            b = builder.phi(_I64)
            acc = builder.phi(f8)
            b.add_incoming(ir.Constant(_I64, 0), entry)
            acc.add_incoming(ir.Constant(f8, None), entry)

            blk = builder.add(off, builder.mul(b, ir.Constant(_I64, ROWS * bpb)))
            pf = _fn(builder, "llvm.prefetch.p0", ir.VoidType(), [_I8.as_pointer(), _I32, _I32, _I32])
            for line in range(0, ROWS * bpb, 64):  # (read, locality, data cache)
                builder.call(pf, [builder.gep(pp, [builder.add(blk, ir.Constant(_I64, PREFETCH_AHEAD + line))]),
                                  ir.Constant(_I32, 0), ir.Constant(_I32, PREFETCH_LOCALITY), ir.Constant(_I32, 1)])
            if zmm:
                t, perm = _q4_0_block_dots_zmm(builder, pp, blk, xp, b), list(range(ROWS))
            else:
                xv = _load(builder, xp, builder.mul(b, ir.Constant(_I64, QK)), _V(_I8, 32))
                t, perm = _block_dots_ymm(builder, kind, isa, signed_w, pp, blk, xv)
            if corr:
                xs_b = builder.load(builder.gep(xsp, [b]))
                c = builder.mul(xs_b, ir.Constant(_I32, corr))
                cv = builder.insert_element(ir.Constant(i8x8, ir.Undefined), c, ir.Constant(_I32, 0))
                t = builder.sub(t, builder.shuffle_vector(cv, cv, _idx([0] * 8)))
            tf = builder.sitofp(t, f8)
            hv = _load(builder, pp, blk, _V(_I16, ROWS))  # the 8 rows' float16 scales
            if perm != list(range(ROWS)):
                hv = builder.shuffle_vector(hv, hv, _idx(perm))
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
            res = accn
            if perm != list(range(ROWS)):
                res = builder.shuffle_vector(accn, accn, _idx([perm.index(k) for k in range(ROWS)]))
            builder.store(res, builder.bitcast(builder.gep(outp, [r]), f8.as_pointer()), align=4)
            return context.get_dummy_value()

        return types.none(p, off, nb, xq, xd, xs, out, r), codegen

    return rows8


def _is_byte_array(t):
    return isinstance(t, types.Array) and t.dtype.bitwidth == 8 and t.layout == "C"


rows8_q8_0_vnni = _rows8("q8_0", "vnni")
rows8_q4_0_vnni = _rows8("q4_0", "vnni")
rows8_q8_0_avx2 = _rows8("q8_0", "avx2")
rows8_q4_0_avx2 = _rows8("q4_0", "avx2")


@njit(cache=True, parallel=True, nogil=True)
def repack_x8(w, bpb, out):
    """GGML rows w uint8[rows, nb * bpb] -> x8 layout out uint8[rows // 8 * nb * 8 * bpb]:
    per group of 8 rows and block: 8 float16 scales, then the 8 rows' quants. Rows past the
    last full group are not copied (the kernels read them from w)."""
    rows, rb = w.shape
    nb = rb // bpb
    qb = bpb - 2
    wf = w.reshape(rows * rb)  # flat, so the quants copy as one slice (a memcpy; 2-D
    for g in prange(rows // ROWS):  # indexing with wraparound checks copied ~0.7 GB/s)
        for b in range(nb):
            o = (g * nb + b) * ROWS * bpb
            for k in range(ROWS):
                s = (ROWS * g + k) * rb + b * bpb
                out[o + 2 * k] = wf[s]
                out[o + 2 * k + 1] = wf[s + 1]
                d = o + 2 * ROWS + k * qb
                out[d:d + qb] = wf[s + 2:s + 2 + qb]


# x86: eight rows per step from the x8 copy p, the last rows % 8 with the generic row from w.
# One plain function per (type, ISA), not closures made by a factory: numba's cache keys a closure
# by its pickled values, and an intrinsic or a dispatcher pickles differently in every process,
# so factory-made kernels would be recompiled (seconds) at every start.
@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q8_0_vnni(p, w, wd, xq, xd, xs, out):
    rows, nb = w.shape[0], xd.shape[0]
    for g in prange(rows // ROWS):
        rows8_q8_0_vnni(p, g * nb * ROWS * Q8_0_BYTES, nb, xq, xd, xs, out, ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        out[r] = _row_q8_0(w, wd, r, xq, xd, xs)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q8_0_avx2(p, w, wd, xq, xd, xs, out):
    rows, nb = w.shape[0], xd.shape[0]
    for g in prange(rows // ROWS):
        rows8_q8_0_avx2(p, g * nb * ROWS * Q8_0_BYTES, nb, xq, xd, xs, out, ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        out[r] = _row_q8_0(w, wd, r, xq, xd, xs)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q4_0_vnni(p, w, wd, xq, xd, xs, out):
    rows, nb = w.shape[0], xd.shape[0]
    for g in prange(rows // ROWS):
        rows8_q4_0_vnni(p, g * nb * ROWS * Q4_0_BYTES, nb, xq, xd, xs, out, ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        out[r] = _row_q4_0(w, wd, r, xq, xd, xs)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q4_0_avx2(p, w, wd, xq, xd, xs, out):
    rows, nb = w.shape[0], xd.shape[0]
    for g in prange(rows // ROWS):
        rows8_q4_0_avx2(p, g * nb * ROWS * Q4_0_BYTES, nb, xq, xd, xs, out, ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        out[r] = _row_q4_0(w, wd, r, xq, xd, xs)


# ------------------------------------------------------------ small-batch kernels (n rows of X)
# out[t, r] = W[r] . X[t] for the quantized activations XQ int8[n, cols], XD/XS [n, nb]; the
# weights of one step stay in L1 across the n activations.

@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q8_0(p, w, wd, XQ, XD, XS, out):
    for r in prange(w.shape[0]):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q8_0(w, wd, r, XQ[t], XD[t], XS[t])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q4_0(p, w, wd, XQ, XD, XS, out):
    for r in prange(w.shape[0]):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q4_0(w, wd, r, XQ[t], XD[t], XS[t])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q8_0_avx2(p, w, wd, XQ, XD, XS, out):
    rows, nb = w.shape[0], XD.shape[1]
    for g in prange(rows // ROWS):
        for t in range(XQ.shape[0]):
            rows8_q8_0_avx2(p, g * nb * ROWS * Q8_0_BYTES, nb, XQ[t], XD[t], XS[t], out[t], ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q8_0(w, wd, r, XQ[t], XD[t], XS[t])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q4_0_avx2(p, w, wd, XQ, XD, XS, out):
    rows, nb = w.shape[0], XD.shape[1]
    for g in prange(rows // ROWS):
        for t in range(XQ.shape[0]):
            rows8_q4_0_avx2(p, g * nb * ROWS * Q4_0_BYTES, nb, XQ[t], XD[t], XS[t], out[t], ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q4_0(w, wd, r, XQ[t], XD[t], XS[t])


# --------------------------------------------------- x86 VNNI small batch: transposed 16-row tiles
# The small-batch kernels above run rows8 once per activation row: each row re-unpacks the group's
# weights and folds every block's eight 4-products-per-lane vectors with horizontal adds
# (shuffles), which bound it (~12 MAC/cycle). Here each pair of 8-row groups is first rewritten
# ONCE per call into a scratch tile, "dword-interleaved": for block b and dword j (weights
# 4j..4j+3), 64 bytes = those 4 weights of rows 0..15 as u8 (Q4_0 nibbles unpacked, Q8_0
# w + 128), and the 16 scales as float32. Then per activation row and block: 8 zmm vpdpbusd of a
# tile vector by the broadcast activation dword j land each row's dot in its own lane -- no
# horizontal adds -- and 4 activation rows share every tile load. The integer block dots are exact
# and the float steps (- corr * sum(xq), * d_w * d_x, fma in block order) are rows8's, so results
# equal the matvec kernels bit for bit. 16 rows per tile instead of 8 halve the activation
# broadcasts per multiply-add, which bound the 8-row tiles (load-bound at ~60 % of the dot rate):
# one thread, Q4_0, 48 rows, 130-134 -> 143-167 GMAC/s. A last odd group of 8 rows (no model
# matrix has one) runs rows8 per activation row.
TILE_T = 4  # activation rows per pass over a tile; fewer rows than this take rows8 per row
# (1 thread, 1024 x 3072 Q4_0, 8-row tiles, GMAC/s rows8 / tiles: n=1 68/24, 2 70/46, 4 72/80,
# 8 73/104, 16 73/120, 32 74/131: the tile costs about two matvec passes)


def _tile8(kind: str, G: int):
    """Intrinsic tile8(p, off, nb, tq, td): the G groups of 8 rows from byte off of the x8 copy p
    (consecutive groups: G * 8 rows) -> tq uint8[nb * 8 * 32 * G] (dword-interleaved u8 weights:
    per block and dword j, group 0's 32 bytes, then group 1's ...), td float32[nb * 8 * G] (the
    scales, in the same row order)."""
    bpb = Q8_0_BYTES if kind == "q8_0" else Q4_0_BYTES
    qb = bpb - 2

    @intrinsic
    def tile8(typingctx, p, off, nb, tq, td):
        if not (_is_byte_array(p) and _is_byte_array(tq)):
            return None

        def codegen(context, builder, sig, args):
            pa, off, nb, tqa, tda = args
            pp = _data(context, builder, sig.args[0], pa)
            tqp = _data(context, builder, sig.args[3], tqa)
            tdp = _data(context, builder, sig.args[4], tda)
            off = context.cast(builder, off, sig.args[1], types.int64)
            nb = context.cast(builder, nb, sig.args[2], types.int64)
            v8, f8 = _V(_I32, 8), _V(_F32, 8)
            entry = builder.block
            loop = builder.append_basic_block("tile8.loop")
            done = builder.append_basic_block("tile8.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            b = builder.phi(_I64)
            b.add_incoming(ir.Constant(_I64, 0), entry)
            gstride = builder.mul(nb, ir.Constant(_I64, ROWS * bpb))  # bytes of one group
            dst0 = builder.mul(b, ir.Constant(_I64, G * ROWS * QK))

            def shuf(a, c, idx):
                return builder.shuffle_vector(a, c, _idx(idx))

            def q(v):  # <8 x i32> <-> <4 x i64> views for the 64-bit shuffle stage
                return builder.bitcast(v, _V(_I64, 4))

            for gi in range(G):
                blk = builder.add(builder.add(off, builder.mul(gstride, ir.Constant(_I64, gi))),
                                  builder.mul(b, ir.Constant(_I64, ROWS * bpb)))
                dst = builder.add(dst0, ir.Constant(_I64, gi * 32))
                if kind == "q4_0":
                    # A[m] = [row 2m dwords 0..3 | row 2m+1 dwords 0..3] (packed nibble bytes)
                    A = [_load(builder, pp, builder.add(blk, ir.Constant(_I64, 2 * ROWS + 2 * m * qb)), v8)
                         for m in range(ROWS // 2)]
                    lo01 = shuf(A[0], A[1], [0, 4, 8, 12, 1, 5, 9, 13])    # rows 0-3: dwords 0, 1
                    hi01 = shuf(A[0], A[1], [2, 6, 10, 14, 3, 7, 11, 15])  # rows 0-3: dwords 2, 3
                    lo23 = shuf(A[2], A[3], [0, 4, 8, 12, 1, 5, 9, 13])    # rows 4-7
                    hi23 = shuf(A[2], A[3], [2, 6, 10, 14, 3, 7, 11, 15])
                    V = [shuf(lo01, lo23, [0, 1, 2, 3, 8, 9, 10, 11]), shuf(lo01, lo23, [4, 5, 6, 7, 12, 13, 14, 15]),
                         shuf(hi01, hi23, [0, 1, 2, 3, 8, 9, 10, 11]), shuf(hi01, hi23, [4, 5, 6, 7, 12, 13, 14, 15])]
                    m4 = ir.Constant(v8, [0x0F0F0F0F] * 8)
                    # byte i of a row holds weight i (low nibble) and weight i + 16 (high nibble):
                    # dword d's low nibbles are weights 4d..4d+3 (slot d), its high ones slot d + 4
                    out = [builder.and_(v, m4) for v in V] + \
                          [builder.and_(builder.lshr(v, ir.Constant(v8, [4] * 8)), m4) for v in V]
                else:
                    R = [_load(builder, pp, builder.add(blk, ir.Constant(_I64, 2 * ROWS + k * qb)), v8)
                         for k in range(ROWS)]
                    # 8x8 dword transpose: pairs of rows, then 64-bit pairs, then 128-bit halves
                    P = []
                    for k in range(0, ROWS, 2):
                        P.append(shuf(R[k], R[k + 1], [0, 8, 1, 9, 2, 10, 3, 11]))   # dwords 0-3
                        P.append(shuf(R[k], R[k + 1], [4, 12, 5, 13, 6, 14, 7, 15]))  # dwords 4-7
                    # P[2m + h]: rows 2m, 2m+1 interleaved, dwords 4h..4h+3
                    Q = {}
                    for h in range(2):
                        for s in range(2):  # rows 0-3 from P[h], P[2 + h]; rows 4-7 from P[4 + h], P[6 + h]
                            a, c = q(P[2 * (2 * s) + h]), q(P[2 * (2 * s + 1) + h])
                            Q[(s, h, 0)] = shuf(a, c, [0, 4, 1, 5])   # dwords 4h, 4h+1 of 4 rows
                            Q[(s, h, 1)] = shuf(a, c, [2, 6, 3, 7])   # dwords 4h+2, 4h+3
                    out = [None] * 8
                    for h in range(2):
                        for e in range(2):
                            lo, hi = Q[(0, h, e)], Q[(1, h, e)]
                            out[4 * h + 2 * e] = builder.bitcast(shuf(lo, hi, [0, 1, 4, 5]), v8)
                            out[4 * h + 2 * e + 1] = builder.bitcast(shuf(lo, hi, [2, 3, 6, 7]), v8)
                    out = [builder.xor(v, ir.Constant(v8, [-0x7F7F7F80] * 8)) for v in out]  # 0x80808080
                for j in range(8):
                    builder.store(out[j], builder.bitcast(
                        builder.gep(tqp, [builder.add(dst, ir.Constant(_I64, j * 32 * G))]), v8.as_pointer()), align=1)
                hv = _load(builder, pp, blk, _V(_I16, ROWS))
                dw = builder.fpext(builder.bitcast(hv, _V(ir.HalfType(), 8)), f8)
                dd = builder.add(builder.mul(b, ir.Constant(_I64, G * ROWS)), ir.Constant(_I64, gi * ROWS))
                builder.store(dw, builder.bitcast(builder.gep(tdp, [dd]), f8.as_pointer()), align=4)
            bn = builder.add(b, ir.Constant(_I64, 1))
            b.add_incoming(bn, loop)
            builder.cbranch(builder.icmp_signed("<", bn, nb), loop, done)
            builder.position_at_end(done)
            return context.get_dummy_value()

        return types.none(p, off, nb, tq, td), codegen

    return tile8


def _tile_dots(kind: str, T: int, G: int):
    """Intrinsic tile_dots(tq, td, nb, XQ, XD, XS, t0, out, r): out[t0 + i, r:r + 8G] = the tile's
    8G rows . X[t0 + i] for i < T (G even: G/2 zmm vectors per dword, each the dot of one broadcast
    activation dword with 16 rows) (XQ int8[n, cols], XD float32[n, nb], XS int32[n, nb], out
    float32[n, rows], all C-contiguous)."""
    corr = 128 if kind == "q8_0" else 8

    @intrinsic
    def tile_dots(typingctx, tq, td, nb, XQ, XD, XS, t0, out, r):
        if not (_is_byte_array(tq) and isinstance(XQ, types.Array) and XQ.ndim == 2 and XQ.layout == "C"
                and XD.layout == "C" and XS.layout == "C" and out.layout == "C"):
            return None

        def codegen(context, builder, sig, args):
            tqa, tda, nb, xqa, xda, xsa, t0, outa, r = args
            tqp = _data(context, builder, sig.args[0], tqa)
            tdp = _data(context, builder, sig.args[1], tda)
            xp = _data(context, builder, sig.args[3], xqa)
            xdp = _data(context, builder, sig.args[4], xda)
            xsp = _data(context, builder, sig.args[5], xsa)
            outp = _data(context, builder, sig.args[7], outa)
            nb = context.cast(builder, nb, sig.args[2], types.int64)
            t0 = context.cast(builder, t0, sig.args[6], types.int64)
            r = context.cast(builder, r, sig.args[8], types.int64)
            oshape = cgutils.unpack_tuple(builder, context.make_array(sig.args[7])(context, builder, outa).shape)
            rows = oshape[1]
            cols = builder.mul(nb, ir.Constant(_I64, QK))
            L = 8 * G  # rows of the tile; V zmm vectors of 16 rows each (vpdpbusd is 16 lanes wide)
            V = L // 16
            i32x16, f32x16 = _V(_I32, 16), _V(_F32, 16)
            dp = _fn(builder, "llvm.x86.avx512.vpdpbusd.512", i32x16, [i32x16, i32x16, i32x16])
            fma = _fn(builder, "llvm.fma.i32x16f32", f32x16, [f32x16, f32x16, f32x16])
            ts = [builder.add(t0, ir.Constant(_I64, i)) for i in range(T)]
            xrow = [builder.mul(t, cols) for t in ts]
            brow = [builder.mul(t, nb) for t in ts]

            def bcast(val, vty):
                v = builder.insert_element(ir.Constant(vty, ir.Undefined), val, ir.Constant(_I32, 0))
                return builder.shuffle_vector(v, v, _idx([0] * 16))

            entry = builder.block
            loop = builder.append_basic_block("tile_dots.loop")
            done = builder.append_basic_block("tile_dots.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            b = builder.phi(_I64)
            b.add_incoming(ir.Constant(_I64, 0), entry)
            acc = []
            for i in range(T):
                row = []
                for h in range(V):
                    a = builder.phi(f32x16)
                    a.add_incoming(ir.Constant(f32x16, None), entry)
                    row.append(a)
                acc.append(row)
            tb = builder.mul(b, ir.Constant(_I64, L * QK))
            # W[j][h]: dword j of rows 16h..16h+15 (the tile keeps a dword's L rows together)
            W = [[_load(builder, tqp, builder.add(tb, ir.Constant(_I64, 4 * L * j + 64 * h)), i32x16)
                  for h in range(V)] for j in range(8)]
            dbase = builder.mul(b, ir.Constant(_I64, L))
            dw = [builder.load(builder.bitcast(builder.gep(tdp, [builder.add(dbase, ir.Constant(_I64, 16 * h))]),
                                               f32x16.as_pointer()), align=4) for h in range(V)]
            xb = builder.mul(b, ir.Constant(_I64, QK))
            xo = [builder.add(xrow[i], xb) for i in range(T)]
            bi = [builder.add(brow[i], b) for i in range(T)]
            # Two int32 chains per row and vector, the even dwords' starting at -corr * sum(xq):
            # half as many dependent vpdpbusd in a row (their latency bound the loop), the
            # subtraction folded in, and dword j's weights live only while the T rows use them.
            # Integer sums are exact: the block dot equals rows8's bit for bit.
            s = [[[bcast(builder.mul(builder.load(builder.gep(xsp, [bi[i]])), ir.Constant(_I32, -corr)), i32x16),
                   ir.Constant(i32x16, None)] for _ in range(V)] for i in range(T)]
            for j in range(8):
                for i in range(T):
                    xw = bcast(_load(builder, xp, builder.add(xo[i], ir.Constant(_I64, 4 * j)), _I32), i32x16)
                    for h in range(V):
                        s[i][h][j % 2] = builder.call(dp, [s[i][h][j % 2], W[j][h], xw])
            nxt = []
            for i in range(T):
                xd_b = bcast(builder.load(builder.gep(xdp, [bi[i]])), f32x16)
                nxt.append([builder.call(fma, [builder.sitofp(builder.add(s[i][h][0], s[i][h][1]), f32x16),
                                               builder.fmul(dw[h], xd_b, flags=("fast",)), acc[i][h]])
                            for h in range(V)])
            bn = builder.add(b, ir.Constant(_I64, 1))
            b.add_incoming(bn, loop)
            for i in range(T):
                for h in range(V):
                    acc[i][h].add_incoming(nxt[i][h], loop)
            builder.cbranch(builder.icmp_signed("<", bn, nb), loop, done)
            builder.position_at_end(done)
            for i in range(T):
                for h in range(V):
                    o = builder.add(builder.add(builder.mul(ts[i], rows), r), ir.Constant(_I64, 16 * h))
                    builder.store(nxt[i][h], builder.bitcast(builder.gep(outp, [o]), f32x16.as_pointer()), align=4)
            return context.get_dummy_value()

        return types.none(tq, td, nb, XQ, XD, XS, t0, out, r), codegen

    return tile_dots


# 32-row tiles (four x8 groups, two zmm per dword): each activation broadcast feeds two vpdpbusd,
# half the broadcasts per multiply-add of 16-row ones; 16-row tiles for a model's last pair
tile32_q8_0 = _tile8("q8_0", 4)
tile32_q4_0 = _tile8("q4_0", 4)
dots32_q8_0_x4, dots32_q8_0_x1 = _tile_dots("q8_0", 4, 4), _tile_dots("q8_0", 1, 4)
dots32_q4_0_x4, dots32_q4_0_x1 = _tile_dots("q4_0", 4, 4), _tile_dots("q4_0", 1, 4)
tile16_q8_0 = _tile8("q8_0", 2)
tile16_q4_0 = _tile8("q4_0", 2)
dots16_q8_0_x1 = _tile_dots("q8_0", 1, 2)
dots16_q4_0_x1 = _tile_dots("q4_0", 1, 2)


# The two types share one body; q4 picks the intrinsics (a branch per tile call, not per block).
@njit(cache=True, nogil=True, inline="always")
def _tile(q4, G, p, g, nb, tq, td):
    if q4:
        off = g * nb * ROWS * Q4_0_BYTES
        if G == 4:
            tile32_q4_0(p, off, nb, tq, td)
        else:
            tile16_q4_0(p, off, nb, tq, td)
    else:
        off = g * nb * ROWS * Q8_0_BYTES
        if G == 4:
            tile32_q8_0(p, off, nb, tq, td)
        else:
            tile16_q8_0(p, off, nb, tq, td)


@njit(cache=True, nogil=True, inline="always")
def _rows8_vnni(q4, p, g, nb, xq, xd, xs, out_t):
    if q4:
        rows8_q4_0_vnni(p, g * nb * ROWS * Q4_0_BYTES, nb, xq, xd, xs, out_t, ROWS * g)
    else:
        rows8_q8_0_vnni(p, g * nb * ROWS * Q8_0_BYTES, nb, xq, xd, xs, out_t, ROWS * g)


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def vnni_quad(q4, p, nb, ng, XQ, XD, XS, out, gq):
    """out[:, 32 gq .. 32 gq + 32] (at most up to group ng) for every activation row: the 8-row
    groups 4 gq .. 4 gq + 3 of the x8 copy p as one 32-row tile; for fewer than TILE_T rows, or
    the matrix's last 1-3 groups, 16-row tiles for pairs and rows8 per row for the rest. One unit
    of _matmul_vnni's loop (and of the fused prefill's products, kernels/decoder.py)."""
    n = XQ.shape[0]
    g = 4 * gq
    if n >= TILE_T and g + 3 < ng:
        tq = np.empty(nb * 4 * ROWS * QK, np.uint8)
        td = np.empty(nb * 4 * ROWS, np.float32)
        _tile(q4, 4, p, g, nb, tq, td)
        t = 0
        while t + TILE_T <= n:
            if q4:
                dots32_q4_0_x4(tq, td, nb, XQ, XD, XS, t, out, ROWS * g)
            else:
                dots32_q8_0_x4(tq, td, nb, XQ, XD, XS, t, out, ROWS * g)
            t += TILE_T
        while t < n:
            if q4:
                dots32_q4_0_x1(tq, td, nb, XQ, XD, XS, t, out, ROWS * g)
            else:
                dots32_q8_0_x1(tq, td, nb, XQ, XD, XS, t, out, ROWS * g)
            t += 1
        return
    # few activation rows, or the last 1-3 groups: a 16-row tile for a pair of groups, rows8
    # per activation row for the rest
    end = min(g + 4, ng)
    while g < end:
        if n >= TILE_T and g + 1 < end:
            tq = np.empty(nb * 2 * ROWS * QK, np.uint8)
            td = np.empty(nb * 2 * ROWS, np.float32)
            _tile(q4, 2, p, g, nb, tq, td)
            for t in range(n):
                if q4:
                    dots16_q4_0_x1(tq, td, nb, XQ, XD, XS, t, out, ROWS * g)
                else:
                    dots16_q8_0_x1(tq, td, nb, XQ, XD, XS, t, out, ROWS * g)
            g += 2
        else:  # too few rows to pay for a tile, or a last odd group
            for t in range(n):
                _rows8_vnni(q4, p, g, nb, XQ[t], XD[t], XS[t], out[t])
            g += 1


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def _matmul_vnni(q4, p, w, wd, XQ, XD, XS, out):
    rows, nb, n = w.shape[0], XD.shape[1], XQ.shape[0]
    ng = rows // ROWS
    for gq in prange((ng + 3) // 4):  # quads of 8-row groups: one 32-row tile
        vnni_quad(q4, p, nb, ng, XQ, XD, XS, out, gq)
    for r in range(rows // ROWS * ROWS, rows):
        for t in range(n):
            out[t, r] = _row_q4_0(w, wd, r, XQ[t], XD[t], XS[t]) if q4 else _row_q8_0(w, wd, r, XQ[t], XD[t], XS[t])


@njit(cache=True, nogil=True)
def matmul_q8_0_vnni(p, w, wd, XQ, XD, XS, out):
    _matmul_vnni(False, p, w, wd, XQ, XD, XS, out)


@njit(cache=True, nogil=True)
def matmul_q4_0_vnni(p, w, wd, XQ, XD, XS, out):
    _matmul_vnni(True, p, w, wd, XQ, XD, XS, out)


# (dtype, isa) -> (matvec kernel, small-batch kernel, reads the x8 copy); Matrix uses
# quant.KERNEL_ISA's entry
QUANT_KERNELS = {
    ("Q8_0", "generic"): (matvec_q8_0, matmul_q8_0, False),
    ("Q4_0", "generic"): (matvec_q4_0, matmul_q4_0, False),
    ("Q8_0", "avx2"): (matvec_q8_0_avx2, matmul_q8_0_avx2, True),
    ("Q4_0", "avx2"): (matvec_q4_0_avx2, matmul_q4_0_avx2, True),
    ("Q8_0", "vnni"): (matvec_q8_0_vnni, matmul_q8_0_vnni, True),
    ("Q4_0", "vnni"): (matvec_q4_0_vnni, matmul_q4_0_vnni, True),
}
# (dtype, isa) -> the 8-row step on the x8 copy (the fused decoder calls it directly)
ROWS8 = {
    ("Q8_0", "avx2"): rows8_q8_0_avx2, ("Q4_0", "avx2"): rows8_q4_0_avx2,
    ("Q8_0", "vnni"): rows8_q8_0_vnni, ("Q4_0", "vnni"): rows8_q4_0_vnni,
}
from . import matmul_arm  # noqa: E402,F401  (adds the aarch64 sets to the two tables above)


def pack_x8(w: np.ndarray, dtype: str) -> np.ndarray:
    """The x8-layout copy of GGML rows w (empty when there is no full group of 8 rows)."""
    bpb = _BLOCK_BYTES[dtype]
    out = np.empty(w.shape[0] // ROWS * w.shape[1] * ROWS, np.uint8)
    if out.size:
        repack_x8(w, bpb, out)
    out.flags.writeable = False
    return out


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def dequantize_f16_rows(w, r0, r1, out):
    cols = w.shape[1]
    for r in prange(r0, r1):
        for i in range(cols):
            out[r - r0, i] = f16_to_f32(w[r, i])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def dequantize_bf16_rows(w, r0, r1, out):
    cols = w.shape[1]
    for r in prange(r0, r1):
        for i in range(cols):
            out[r - r0, i] = bf16_to_f32(w[r, i])


@njit(cache=True, parallel=True, nogil=True)
def _dequantize_q8_0_range(w, r0, r1, out):
    for r in prange(r0, r1):
        dequantize_q8_0_rows(w, r, r + 1, out[r - r0:r - r0 + 1])


@njit(cache=True, parallel=True, nogil=True)
def _dequantize_q4_0_range(w, r0, r1, out):
    for r in prange(r0, r1):
        dequantize_q4_0_rows(w, r, r + 1, out[r - r0:r - r0 + 1])


# -------------------------------------------------------------------------------- the class

def _readonly(a: np.ndarray) -> np.ndarray:
    # one numba specialization for mmapped (read-only) and in-memory weights alike
    v = np.ascontiguousarray(a).view(np.ndarray)
    v = v.view()
    v.flags.writeable = False
    return v


class Matrix:
    """Weight matrix [rows=out, cols=in], stored type read in place (no dequantized copy)."""

    def __init__(self, dtype: str, data: np.ndarray, rows: int, cols: int):
        if dtype not in DTYPES:
            raise ValueError(f"Matrix: unsupported type {dtype} (use from_tensor to convert)")
        rows, cols = int(rows), int(cols)
        if dtype in _BLOCK_BYTES:
            if cols % QK:
                raise ValueError(f"Matrix: {dtype} needs cols % 32 == 0, got {cols}")
            shape, npdt = (rows, cols // QK * _BLOCK_BYTES[dtype]), np.uint8
        else:
            shape = (rows, cols)
            npdt = {"F32": np.float32, "F16": np.uint16, "BF16": np.uint16}[dtype]
        if dtype == "F16" and data.dtype == np.float16:
            data = data.view(np.uint16)
        if data.dtype != npdt or data.size != shape[0] * shape[1]:
            raise ValueError(f"Matrix: {dtype} [{rows}x{cols}] wants {np.dtype(npdt).name} data of "
                             f"shape {shape}, got {data.dtype.name} {data.shape}")
        self.dtype = dtype
        self.rows = rows
        self.cols = cols
        self.data = _readonly(data.reshape(shape))
        self.nbytes = int(self.data.nbytes)
        self._table = None  # RowTable over self.data, made on the first rows_f32
        if dtype in _BLOCK_BYTES:
            self._wd = self.data.view(np.uint16)  # block scales, read in the kernel
            nb = cols // QK
            self._xq = np.zeros(cols, np.int8)    # this Matrix's activation scratch
            self._xd = np.zeros(nb, np.float32)
            self._xs = np.zeros(nb, np.int32)
            self._mv, self._mm, self._wants_x8 = QUANT_KERNELS[(dtype, KERNEL_ISA)]
            self._x8 = _EMPTY  # x8-layout copy for the x86 kernels, made on first use
            self._drop_plain = False  # self.data is a private load-time copy: drop it for x8

    def __repr__(self) -> str:
        return f"Matrix({self.dtype}, {self.rows}x{self.cols})"

    def _packed(self) -> np.ndarray:
        if self._wants_x8 and self._x8 is _EMPTY and self.rows >= ROWS:
            self._keep_x8(pack_x8(self.data, self.dtype))
        return self._x8

    def _keep_x8(self, x8: np.ndarray) -> None:
        """Make x8 the ONE resident copy of the rows in full groups of 8: the file-mapped source
        pages are released (they stay in the page cache); an in-memory plain copy made at load
        (requantized types, _drop_plain) is replaced by lazily-zeroed pages holding only the
        last rows % 8 (the kernels read those from self.data). Rows in x8 are read back
        through _plain_rows; other in-memory matrices (from_f32) keep self.data whole."""
        self._x8 = x8
        r8 = x8.size // self.data.shape[1]
        if file_backed(self.data):
            release_pages(self.data[:r8])
        elif self._drop_plain:
            data = lazy_zeros(self.data.shape, np.uint8)
            data[r8:] = self.data[r8:]
            self.data = _readonly(data)
            self._wd = self.data.view(np.uint16)

    def _plain_rows(self, r0: int, r1: int) -> np.ndarray:
        """GGML rows r0..r1 (uint8[r1 - r0, row_bytes]) of a quantized matrix: the rows in x8
        un-interleaved into a new array, the others read from self.data."""
        r8 = self._x8.size // self.data.shape[1]
        if r0 >= r8 or r1 <= r0:
            return self.data[r0:r1]
        bpb = _BLOCK_BYTES[self.dtype]
        qb, nb = bpb - 2, self.cols // QK
        g0, g1 = r0 // ROWS, min(-(-r1 // ROWS), r8 // ROWS)
        p = self._x8.reshape(-1, nb, ROWS * bpb)[g0:g1]
        G = g1 - g0
        out = np.empty((G, ROWS, nb, bpb), np.uint8)
        out[..., :2] = p[:, :, :2 * ROWS].reshape(G, nb, ROWS, 2).transpose(0, 2, 1, 3)
        out[..., 2:] = p[:, :, 2 * ROWS:].reshape(G, nb, ROWS, qb).transpose(0, 2, 1, 3)
        out = out.reshape(G * ROWS, nb * bpb)
        if r1 > r8:
            out = np.concatenate([out, self.data[r8:r1]])
        return out[r0 - g0 * ROWS: r1 - g0 * ROWS]

    def prepare(self) -> "Matrix":
        """Make the kernel-side copy now (x86 Q8_0/Q4_0: the x8 layout, same size as the
        weights, which then replaces the plain rows as the one resident copy) instead of on the
        first product. Embedding tables used only through rows_f32 never need it."""
        if self.dtype in _BLOCK_BYTES:
            self._packed()
        return self

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_tensor(cls, t) -> "Matrix":
        """An edgetts.weights.Tensor (>= 2 dims; leading dims are rows). Types the kernels do
        not read (Q4_K, Q6_K, ...) are dequantized and requantized to Q8_0 (F32 when
        cols % 32 != 0)."""
        if len(t.shape) < 2:
            raise ValueError(f"{t.name}: a matrix needs 2 dims, got shape {t.shape}")
        cols = int(t.shape[-1])
        rows = int(np.prod(t.shape[:-1]))
        if t.dtype in DTYPES:
            data = t.data
            if t.dtype in _BLOCK_BYTES:
                data = data.reshape(rows, -1)
            else:
                data = data.reshape(rows, cols)
            return cls(t.dtype, data, rows, cols)
        x = np.ascontiguousarray(t.numpy().reshape(rows, cols), dtype=np.float32)
        m = cls.from_f32(x, "Q8_0" if cols % QK == 0 else "F32")
        if m.dtype in _BLOCK_BYTES:
            m._drop_plain = True
        return m

    @classmethod
    def from_f32(cls, x: np.ndarray, dtype: str = "F32") -> "Matrix":
        """Quantize / convert a float32 [rows, cols] array (gguf-exact for Q8_0 / Q4_0)."""
        from .quant import quantize_q4_0

        x = np.ascontiguousarray(x, dtype=np.float32)
        rows, cols = x.shape
        if dtype == "F32":
            return cls("F32", x, rows, cols)
        if dtype == "F16":
            return cls("F16", x.astype(np.float16).view(np.uint16), rows, cols)
        if dtype == "BF16":  # round to nearest even
            u = x.view(np.uint32).astype(np.uint64)
            bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
            return cls("BF16", bits, rows, cols)
        out = np.empty((rows, cols // QK * _BLOCK_BYTES[dtype]), np.uint8)
        (quantize_q8_0 if dtype == "Q8_0" else quantize_q4_0)(x, out)
        return cls(dtype, out, rows, cols)

    @classmethod
    def concat_rows(cls, mats: list["Matrix"]) -> "Matrix":
        """Stack matrices of equal cols (fused q|k|v, gate|up) into one copy. Mixed types
        convert exactly: {Q4_0, Q8_0} -> Q8_0 (a Q4_0 block is a Q8_0 block with q - 8),
        anything else mixed -> F32.
        Quantized results for the x86 kernels are prepared: each part is repacked straight into
        its row range of the x8 copy (when every part but the last has rows % 8 == 0) and its
        file pages released, so the product holds one resident copy and no concatenated one."""
        if not mats:
            raise ValueError("concat_rows: no matrices")
        cols = mats[0].cols
        if any(m.cols != cols for m in mats):
            raise ValueError(f"concat_rows: cols differ {[m.cols for m in mats]}")
        types = {m.dtype for m in mats}
        rows = sum(m.rows for m in mats)

        def plain(m):  # the part's GGML rows, in the stacked type
            d = m._plain_rows(0, m.rows) if m.dtype in _BLOCK_BYTES else m.data
            return d if m.dtype == dtype else _q4_0_as_q8_0(d)

        if len(types) == 1:
            dtype = mats[0].dtype
        elif types <= {"Q8_0", "Q4_0"}:
            dtype = "Q8_0"
        else:
            dtype = "F32"
            return cls(dtype, np.concatenate([m.to_f32() for m in mats], axis=0), rows, cols)
        if dtype not in _BLOCK_BYTES:
            return cls(dtype, np.concatenate([m.data for m in mats], axis=0), rows, cols)
        if not (QUANT_KERNELS[(dtype, KERNEL_ISA)][2] and rows >= ROWS
                and all(m.rows % ROWS == 0 for m in mats[:-1])):
            out = cls(dtype, np.concatenate([plain(m) for m in mats], axis=0), rows, cols)
            out._drop_plain = True
            return out.prepare()
        bpb = _BLOCK_BYTES[dtype]
        rb = cols // QK * bpb
        x8 = np.empty(rows // ROWS * ROWS * rb, np.uint8)
        data = lazy_zeros((rows, rb), np.uint8)  # only the last rows % 8 are written
        r0 = 0
        for m in mats:
            part, k = plain(m), m.rows // ROWS * ROWS
            if k:
                repack_x8(part, bpb, x8[r0 * rb:(r0 + k) * rb])
            data[r0 + k:r0 + m.rows] = part[k:]
            release_pages(m.data)
            r0 += m.rows
        out = cls(dtype, data, rows, cols)
        x8.flags.writeable = False
        out._x8 = x8
        return out

    # ------------------------------------------------------------------ products
    def matvec(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out[rows] = W @ x for x float32[cols]. Allocates nothing."""
        if x.shape != (self.cols,) or out.shape != (self.rows,):
            raise ValueError(f"matvec {self}: x {x.shape}, out {out.shape}")
        if x.dtype != np.float32 or out.dtype != np.float32:
            raise TypeError("matvec: x and out must be float32")
        dt = self.dtype
        if dt == "Q8_0" or dt == "Q4_0":
            quantize_act(x, self._xq, self._xd, self._xs)
            self._mv(self._packed(), self.data, self._wd, self._xq, self._xd, self._xs, out)
        elif dt == "F32":
            matvec_f32(self.data, x, out)
        elif dt == "F16":
            matvec_f16(self.data, x, out)
        else:
            matvec_bf16(self.data, x, out)
        return out

    def matmul(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """X float32[n, cols] -> out float32[n, rows] (= X @ W.T)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.cols:
            raise ValueError(f"matmul {self}: X {X.shape}")
        n = X.shape[0]
        if out is None:
            out = np.empty((n, self.rows), np.float32)
        elif out.shape != (n, self.rows):
            raise ValueError(f"matmul {self}: out {out.shape}, want {(n, self.rows)}")
        if n == 0:
            return out
        if self.dtype == "F32":
            np.matmul(X, self.data.T, out=out)
            return out
        if self.dtype in _BLOCK_BYTES and n < BLAS_MIN_ROWS:
            nb = self.cols // QK
            XQ = np.empty((n, self.cols), np.int8)
            XD = np.empty((n, nb), np.float32)
            XS = np.empty((n, nb), np.int32)
            quantize_act_rows(X, XQ, XD, XS)
            res = out if out.flags.c_contiguous else np.empty((n, self.rows), np.float32)
            self._mm(self._packed(), self.data, self._wd, XQ, XD, XS, res)
            if res is not out:
                out[...] = res
            return out
        if n == 1:
            tmp = np.empty(self.rows, np.float32)
            out[0] = self.matvec(X[0], tmp)
            return out
        # dequantize tiles of rows, BLAS each
        tile = max(1, min(self.rows, _TILE_BYTES // (4 * self.cols)))
        buf = np.empty((tile, self.cols), np.float32)
        for r0 in range(0, self.rows, tile):
            r1 = min(self.rows, r0 + tile)
            t = buf[: r1 - r0]
            self._dequantize_range(r0, r1, t)
            out[:, r0:r1] = X @ t.T
        return out

    # ------------------------------------------------------------------ dequantization
    def _dequantize_range(self, r0: int, r1: int, out: np.ndarray) -> None:
        dt = self.dtype
        if dt == "F32":
            out[...] = self.data[r0:r1]
        elif dt == "F16":
            dequantize_f16_rows(self.data, r0, r1, out)
        elif dt == "BF16":
            dequantize_bf16_rows(self.data, r0, r1, out)
        elif dt == "Q8_0":
            _dequantize_q8_0_range(self._plain_rows(r0, r1), 0, r1 - r0, out)
        else:
            _dequantize_q4_0_range(self._plain_rows(r0, r1), 0, r1 - r0, out)

    def rows_f32(self, idx: int, out: np.ndarray) -> np.ndarray:
        """Row idx as float32 into out[cols] (embedding lookup). Exact."""
        idx = int(idx)
        if not 0 <= idx < self.rows:
            raise IndexError(f"{self}: row {idx} out of range")
        if out.shape != (self.cols,) or out.dtype != np.float32:
            raise ValueError(f"rows_f32 {self}: out {out.shape} {out.dtype}")
        dt = self.dtype
        if dt in _BLOCK_BYTES:
            in_x8 = idx < self._x8.size // self.data.shape[1]
            row = self._plain_rows(idx, idx + 1) if in_x8 else self._row(idx)
            (dequantize_q8_0_rows if dt == "Q8_0" else dequantize_q4_0_rows)(row, 0, 1, out.reshape(1, -1))
        elif dt == "F32":
            out[:] = self._row(idx)[0]
        elif dt == "F16":
            out[:] = self._row(idx)[0].view(np.float16)
        else:
            out.view(np.uint32)[:] = self._row(idx)[0].astype(np.uint32) << 16
        return out

    def _row(self, idx: int) -> np.ndarray:
        """self.data[idx:idx + 1], read from the file when the table is file-mapped (RowTable:
        an embedding lookup then leaves no pages resident)."""
        return self.row_table().row(idx)

    def row_table(self) -> RowTable:
        """The RowTable over self.data (its fd is None unless the rows come from a file)."""
        if self._table is None or self._table.a is not self.data:
            self._table = RowTable(self.data)
        return self._table

    def to_f32(self) -> np.ndarray:
        """Full dequantized float32 [rows, cols] copy."""
        out = np.empty((self.rows, self.cols), np.float32)
        dt = self.dtype
        if dt == "Q8_0":
            dequantize_q8_0_par(self._plain_rows(0, self.rows), out)
        elif dt == "Q4_0":
            dequantize_q4_0_par(self._plain_rows(0, self.rows), out)
        else:
            self._dequantize_range(0, self.rows, out)
        return out


def _q4_0_as_q8_0(q4: np.ndarray) -> np.ndarray:
    """Exact: each Q4_0 block (d, nibbles) -> Q8_0 block (d, nibble - 8)."""
    rows = q4.shape[0]
    b4 = q4.reshape(rows, -1, Q4_0_BYTES)
    nb = b4.shape[1]
    b8 = np.empty((rows, nb, Q8_0_BYTES), np.uint8)
    b8[:, :, :2] = b4[:, :, :2]
    nib = b4[:, :, 2:]
    q = np.concatenate([nib & 15, nib >> 4], axis=2).astype(np.int16) - 8
    b8[:, :, 2:] = q.astype(np.int8).view(np.uint8)
    return b8.reshape(rows, nb * Q8_0_BYTES)
