"""Few-row float32 GEMM on weights stored [K, N] (x @ W): the codec's low-rate products.

A streaming codec push multiplies 1-64 activation rows by weights of 8-72 MB. OpenBLAS first
packs the weight panel it works on, so at a few rows it reads every weight about twice and
reaches 4-6 GB/s on one thread here (sgemm [4, 1024] @ [1024, 4096]: 3.0 ms). This kernel reads
each weight once, from panels of COLS = V x 16 columns repacked at load (pack_panels): for R = 4
activation rows and one panel it keeps the R x V accumulator vectors in registers over the
whole K loop (one weight vector load feeds R multiply-adds, one broadcast activation V), so at
a few rows it runs at memory speed (1.6 ms for that product) and at 64 rows it matches sgemm.

Every output element is one fma chain over k = 0 .. K-1 in order, whatever M and whatever
column split the caller makes: a row's result does not depend on the rows that came with it
(streamed == one-shot decoding, bit for bit, for the layers that use it).

gemm_panels(x, wp, out, p0, p1): out[:M, p0*COLS:p1*COLS] = x[:M] @ W[:, p0*COLS:p1*COLS] with
wp = pack_panels(W) (done once at load); x [M, K] with M a multiple of R (pad with zeros), all
float32 C-contiguous, N % COLS == 0.

W may be float16 (a checkpoint's F16 weights as stored): its panels hold the float16 bits
(uint16) and the kernel widens each loaded vector in registers (vcvtph2ps). The widening is
exact, so the products equal those of the float32 panels of the widened weight bit for bit,
from half the bytes: at a few rows, where the kernel runs at memory speed, about twice as fast.
"""
from __future__ import annotations

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16   # floats per accumulator vector (one zmm; two ymm / four NEON q registers)
R = 4        # activation rows per tile


def _wide_registers() -> bool:
    """32 vector registers of 16 floats (AVX-512, and numba compiling for this host): then 4
    vectors of columns per tile."""
    import numba

    if numba.config.CPU_NAME not in (None, "host"):
        return False  # a portable build (NUMBA_CPU_NAME=generic ...)
    try:
        return bool(llvm.get_host_cpu_features().get("avx512f", False))
    except Exception:
        return False


V = 4 if _wide_registers() else 1   # column vectors per tile: R x V accumulators
COLS = V * LANES                     # columns per tile

_I64, _F32 = ir.IntType(64), ir.FloatType()
_VF = ir.VectorType(_F32, LANES)
_VH = ir.VectorType(ir.IntType(16), LANES)    # float16 bits
_VHF = ir.VectorType(ir.HalfType(), LANES)


def _tile(nv: int):
    """Intrinsic tile(x, w, out, m, cw, co, K): out[m:m+R, co:co+nv*16] = x[m:m+R] @ w[:, cw:cw+nv*16]."""

    @intrinsic
    def tile(typingctx, x, w, out, m, cw, co, K):
        if not all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" for a in (x, w, out)):
            return None
        if x.dtype != types.float32 or out.dtype != types.float32 or w.dtype not in (types.float32, types.uint16):
            return None
        f16 = w.dtype == types.uint16  # float16 bits

        def codegen(context, builder, sig, args):
            xa, wa, oa, m_, cw_, co_, k_ = args
            arrs = [context.make_array(t)(context, builder, v) for t, v in zip(sig.args[:3], (xa, wa, oa))]
            xp, wp, op = (a.data for a in arrs)
            x_cols = cgutils.unpack_tuple(builder, arrs[0].shape)[1]
            w_cols = cgutils.unpack_tuple(builder, arrs[1].shape)[1]
            o_cols = cgutils.unpack_tuple(builder, arrs[2].shape)[1]
            m = context.cast(builder, m_, sig.args[3], types.int64)
            cw = context.cast(builder, cw_, sig.args[4], types.int64)
            co = context.cast(builder, co_, sig.args[5], types.int64)
            K = context.cast(builder, k_, sig.args[6], types.int64)
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VF, [_VF, _VF, _VF]),
                                                 "llvm.fma.v16f32")
            xrow = [builder.mul(builder.add(m, ir.Constant(_I64, i)), x_cols) for i in range(R)]

            def vload(ptr, off):
                return builder.load(builder.bitcast(builder.gep(ptr, [off]), _VF.as_pointer()), align=4)

            def bcast(val):
                v = builder.insert_element(ir.Constant(_VF, ir.Undefined), val, ir.Constant(ir.IntType(32), 0))
                return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))

            entry = builder.block
            loop = builder.append_basic_block("gemm_rows.loop")
            done = builder.append_basic_block("gemm_rows.done")
            builder.cbranch(builder.icmp_signed(">", K, ir.Constant(_I64, 0)), loop, done)
            builder.position_at_end(loop)
            k = builder.phi(_I64)
            k.add_incoming(ir.Constant(_I64, 0), entry)
            acc = [[builder.phi(_VF) for _ in range(nv)] for _ in range(R)]
            for row in acc:
                for a in row:
                    a.add_incoming(ir.Constant(_VF, None), entry)
            wrow = builder.add(builder.mul(k, w_cols), cw)
            if f16:
                wv = [builder.fpext(builder.bitcast(builder.load(builder.bitcast(
                    builder.gep(wp, [builder.add(wrow, ir.Constant(_I64, LANES * j))]), _VH.as_pointer()),
                    align=2), _VHF), _VF) for j in range(nv)]
            else:
                wv = [vload(wp, builder.add(wrow, ir.Constant(_I64, LANES * j))) for j in range(nv)]
            nxt = []
            for i in range(R):
                xv = bcast(builder.load(builder.gep(xp, [builder.add(xrow[i], k)])))
                nxt.append([builder.call(fma, [xv, wv[j], acc[i][j]]) for j in range(nv)])
            kn = builder.add(k, ir.Constant(_I64, 1))
            k.add_incoming(kn, loop)
            for i in range(R):
                for j in range(nv):
                    acc[i][j].add_incoming(nxt[i][j], loop)
            builder.cbranch(builder.icmp_signed("<", kn, K), loop, done)
            builder.position_at_end(done)
            res = []
            for i in range(R):  # (phis first: K == 0 stores zeros)
                res.append([])
                for j in range(nv):
                    v = builder.phi(_VF)
                    v.add_incoming(ir.Constant(_VF, None), entry)
                    v.add_incoming(nxt[i][j], loop)
                    res[i].append(v)
            for i in range(R):
                orow = builder.add(builder.mul(builder.add(m, ir.Constant(_I64, i)), o_cols), co)
                for j in range(nv):
                    builder.store(res[i][j], builder.bitcast(
                        builder.gep(op, [builder.add(orow, ir.Constant(_I64, LANES * j))]), _VF.as_pointer()), align=4)
            return context.get_dummy_value()

        return types.none(x, w, out, m, cw, co, K), codegen

    return tile


_tile_wide = _tile(V)


def pack_panels(w):
    """float32 [K, N] (N % COLS == 0) -> [N // COLS, K, COLS]: each panel of COLS columns one
    contiguous run (float16 [K, N] -> the same of its bits, uint16). Read in place, a panel's rows sit N * 4 bytes apart: a power-of-two stride
    that maps them all onto a few cache sets, so a panel did not stay cached between row tiles
    (64 rows: 1.0 GB/s)."""
    K, N = w.shape
    w = np.asarray(w).view(np.uint16) if w.dtype == np.float16 else np.asarray(w, np.float32)
    out = np.empty((N // COLS, K, COLS), w.dtype)
    _pack(w, out)  # (numpy's strided copy of the transpose: ~0.5 GB/s)
    return out


@njit(cache=True, nogil=True, parallel=True)
def _pack(w, out):
    P, K, C = out.shape
    for p in prange(P):
        for k in range(K):
            out[p, k, :] = w[k, p * C:(p + 1) * C]


@njit(cache=True, nogil=True)
def gemm_panels(x, wp, out, p0, p1):
    """out[:, p0*COLS:p1*COLS] = x @ (the weight whose panels wp = pack_panels(w) holds)."""
    M, K = x.shape
    for p in range(p0, p1):
        w = wp[p]
        for m in range(0, M, R):
            _tile_wide(x, w, out, m, 0, p * COLS, K)


class Panels:
    """A float32 or float16 weight [K, N] held as pack_panels(w) for gemm_panels: the codec's
    few-row products (models/codec.py picks them). matmul(a, out, par) = a @ w (float32), the
    panels split over the threads when par (kernels/pool.Rows.par) is given."""

    def __init__(self, w: np.ndarray):
        self.K, self.N = w.shape
        self.shape, self.dtype = (self.K, self.N), np.dtype(np.float32)
        self.wp = pack_panels(w)
        self.nbytes = self.wp.nbytes

    @staticmethod
    def fits(w) -> bool:
        return (isinstance(w, np.ndarray) and w.ndim == 2 and w.dtype in (np.float32, np.float16)
                and w.shape[1] % COLS == 0)

    def matmul(self, a: np.ndarray, out: np.ndarray | None = None, par=None) -> np.ndarray:
        M = a.shape[0]
        M4 = -(-M // R) * R
        if M4 != M or not a.flags.c_contiguous or a.dtype != np.float32:
            x = np.zeros((M4, self.K), np.float32)
            x[:M] = a
        else:
            x = a
        direct = out is not None and M4 == M and out.flags.c_contiguous
        o = out if direct else np.empty((M4, self.N), np.float32)
        n = self.N // COLS
        if par is None:
            gemm_panels(x, self.wp, o, 0, n)
        else:
            par(lambda p0, p1: gemm_panels(x, self.wp, o, p0, p1), n)
        if direct:
            return out
        if out is None:
            return o[:M] if M4 == M else np.ascontiguousarray(o[:M])
        out[...] = o[:M]
        return out
