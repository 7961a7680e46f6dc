"""Small kernels for the codec decoder's transformer (time-major [T, D] float32).

rms_norm        x * rsqrt(mean(x^2) + eps) * w, per row
rope_rotate     rotate-half RoPE in place on [T, H, hd] with per-row cos/sin [T, hd/2]
                (rope_heads: rows 0..n, heads h0..h1 of it)
ring_store      keys / values of positions pos..pos+n-1 into a ring [R, Hkv, hd] (row p % R)
ring_attention  causal sliding-window attention of n new queries at pos.. over a ring's keys /
                values (query heads h0..h1), GQA by head grouping; softmax in float64-accumulated
                float32
silu_mul        g = silu(g) * u
linear_rows     few-row x @ w.T, w as stored [out, in]: float32, or float16 bits (uint16) widened
                in registers (exact: the same products as the widened float32 weight)
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .activations_lm import silu
from .matmul import PREFETCH_LOCALITY
from .quant import f16_to_f32


@intrinsic
def prefetch_bytes(typingctx, a, off):
    """Prefetch (read, matmul.PREFETCH_LOCALITY) the cache line at byte offset `off` of a's data."""
    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, value=args[0]).data
        p = builder.gep(builder.bitcast(data, ir.IntType(8).as_pointer()),
                        [context.cast(builder, args[1], sig.args[1], types.int64)])
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()] + [ir.IntType(32)] * 3),
            "llvm.prefetch.p0")
        builder.call(fn, [p, ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), PREFETCH_LOCALITY),
                          ir.Constant(ir.IntType(32), 1)])
        return context.get_dummy_value()
    return types.none(a, off), codegen


def _weight(v):
    """A weight value as float32: itself, or widened from float16 bits (uint16)."""
    raise NotImplementedError  # numba only (the overload below)


@overload(_weight, inline="always")
def _weight_impl(v):
    if isinstance(v, types.Integer) and v.bitwidth == 16:
        return lambda v: f16_to_f32(v)
    return lambda v: v


@njit(cache=True, nogil=True)
def rms_norm(x, w, eps, out):
    T, D = x.shape
    for t in range(T):
        ss = 0.0
        for i in range(D):
            v = np.float64(x[t, i])
            ss += v * v
        r = np.float32(1.0 / math.sqrt(ss / D + eps))
        for i in range(D):
            out[t, i] = w[i] * (x[t, i] * r)


@njit(cache=True, nogil=True)
def rope_heads(x, cos, sin, n, h0, h1):
    """x [T, H, hd], rows 0..n and heads h0..h1 in place: (x1, x2) -> (x1*cos - x2*sin,
    x2*cos + x1*sin), halves of hd."""
    half = x.shape[2] // 2
    for t in range(n):
        for h in range(h0, h1):
            for i in range(half):
                a = x[t, h, i]
                b = x[t, h, i + half]
                x[t, h, i] = a * cos[t, i] - b * sin[t, i]
                x[t, h, i + half] = b * cos[t, i] + a * sin[t, i]


@njit(cache=True, nogil=True)
def rope_rotate(x, cos, sin):
    """x [T, H, hd] in place (rope_heads over every row and head)."""
    rope_heads(x, cos, sin, x.shape[0], 0, x.shape[1])


@njit(cache=True, nogil=True)
def ring_store(kr, vr, k, v, pos, n, g0, g1):
    """Rows 0..n of k, v [T, Hkv, hd] (kv heads g0..g1) at positions pos.. into the rings
    kr, vr [R, Hkv, hd]: position p at row p % R."""
    R = kr.shape[0]
    for i in range(n):
        r = (pos + i) % R
        for g in range(g0, g1):
            for d in range(k.shape[2]):
                kr[r, g, d] = k[i, g, d]
                vr[r, g, d] = v[i, g, d]


@njit(cache=True, nogil=True)
def ring_attention(q, kr, vr, pos, n, window, scale, out, h0, h1, s):
    """q [T, H, hd]: rows 0..n at positions pos..pos+n-1, query heads h0..h1. Keys / values of
    positions p are at row p % R of the rings kr, vr [R, Hkv, hd] (ring_store); query i sees
    positions j with  pos + i - window < j <= pos + i  (R >= window + n - 1 keeps them all).
    out [T, H, hd]; s: float32 scratch of >= window values."""
    H = q.shape[1]
    hd = q.shape[2]
    R = kr.shape[0]
    group = H // kr.shape[1]
    for i in range(n):
        hi = pos + i
        lo = max(hi - window + 1, 0)
        for h in range(h0, h1):
            kh = h // group
            mx = -np.inf
            r = lo % R
            for j in range(hi - lo + 1):
                acc = np.float32(0.0)
                for d in range(hd):
                    acc += q[i, h, d] * kr[r, kh, d]
                acc *= scale
                s[j] = acc
                if acc > mx:
                    mx = acc
                r = r + 1 if r + 1 < R else 0
            tot = 0.0
            for j in range(hi - lo + 1):
                e = np.float32(math.exp(s[j] - mx))
                s[j] = e
                tot += e
            inv = np.float32(1.0 / tot)
            for d in range(hd):
                out[i, h, d] = 0.0
            r = lo % R
            for j in range(hi - lo + 1):
                p = s[j] * inv
                for d in range(hd):
                    out[i, h, d] += p * vr[r, kh, d]
                r = r + 1 if r + 1 < R else 0


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def silu_mul(g, u):
    """g = silu(g) * u in place ([T, D])."""
    T, D = g.shape
    for t in range(T):
        for i in range(D):
            g[t, i] = silu(g[t, i]) * u[t, i]


@njit(cache=True, nogil=True, fastmath=True)
def linear_rows(x, w, out, n0, n1):
    """out[m, n] = sum_k x[m, k] * w[n, k] for output columns n0..n1 (w as PyTorch stores a
    Linear: [out, in]; read once, straight from the file's memory map when F32, or as float16
    bits (uint16, the F16 file's map): half the bytes, the same products).

    For the few-row products of the codec's low-rate stages (<= a few dozen rows), where BLAS
    spends more on packing the weights than on arithmetic. x must have a multiple of 4 rows
    (pad with zeros): every row then goes through the same loops, so a row's result does not
    depend on how many rows came with it (streamed == one-shot). Blocks of 4 rows x 4 columns:
    16 accumulators, each loaded x and w vector feeds 4 multiply-adds (a 4 x 1 block loads 5
    vectors per 4: load-bound at ~half the rate; [4, 1024] @ [512, 1024]^T 0.083 -> 0.053 ms
    from cache, 0.24 -> 0.17 ms from DRAM). Blocks are aligned to w's columns (multiples of
    4; the last N % 4 columns take 4 x 1), whatever n0 and n1: a column rounds alike however a
    caller splits the columns."""
    M, K = x.shape
    n_blocked = w.shape[0] // 4 * 4  # columns below this go in aligned 4-column blocks
    blk = np.empty((4, 4), np.float32)
    rb = K * w.itemsize   # bytes per weight row
    for n in range(n0 // 4 * 4, min(n1, n_blocked), 4):
        # the next block's 4 rows, every line requested at once: a push finds these weights in
        # DRAM (the other stages and the LM evict them), where 4 row streams alone got ~9.5 GB/s
        if n + 8 <= w.shape[0]:
            for off in range(0, 4 * rb, 64):
                prefetch_bytes(w, (n + 4) * rb + off)
        j0, j1 = max(n, n0) - n, min(n + 4, n1) - n  # this call's columns of the block
        w0 = w[n]
        w1 = w[n + 1]
        w2 = w[n + 2]
        w3 = w[n + 3]
        for m in range(0, M, 4):
            x0 = x[m]
            x1 = x[m + 1]
            x2 = x[m + 2]
            x3 = x[m + 3]
            a00 = a01 = a02 = a03 = np.float32(0.0)
            a10 = a11 = a12 = a13 = np.float32(0.0)
            a20 = a21 = a22 = a23 = np.float32(0.0)
            a30 = a31 = a32 = a33 = np.float32(0.0)
            for k in range(K):
                v0 = x0[k]
                v1 = x1[k]
                v2 = x2[k]
                v3 = x3[k]
                c0 = _weight(w0[k])
                c1 = _weight(w1[k])
                c2 = _weight(w2[k])
                c3 = _weight(w3[k])
                a00 += v0 * c0
                a01 += v0 * c1
                a02 += v0 * c2
                a03 += v0 * c3
                a10 += v1 * c0
                a11 += v1 * c1
                a12 += v1 * c2
                a13 += v1 * c3
                a20 += v2 * c0
                a21 += v2 * c1
                a22 += v2 * c2
                a23 += v2 * c3
                a30 += v3 * c0
                a31 += v3 * c1
                a32 += v3 * c2
                a33 += v3 * c3
            blk[0, 0] = a00
            blk[0, 1] = a01
            blk[0, 2] = a02
            blk[0, 3] = a03
            blk[1, 0] = a10
            blk[1, 1] = a11
            blk[1, 2] = a12
            blk[1, 3] = a13
            blk[2, 0] = a20
            blk[2, 1] = a21
            blk[2, 2] = a22
            blk[2, 3] = a23
            blk[3, 0] = a30
            blk[3, 1] = a31
            blk[3, 2] = a32
            blk[3, 3] = a33
            for i in range(4):
                for j in range(j0, j1):
                    out[m + i, n + j] = blk[i, j]
    for n in range(max(n0, n_blocked), n1):
        wr = w[n]
        for m in range(0, M, 4):
            x0 = x[m]
            x1 = x[m + 1]
            x2 = x[m + 2]
            x3 = x[m + 3]
            a0 = np.float32(0.0)
            a1 = np.float32(0.0)
            a2 = np.float32(0.0)
            a3 = np.float32(0.0)
            for k in range(K):
                wk = _weight(wr[k])
                a0 += x0[k] * wk
                a1 += x1[k] * wk
                a2 += x2[k] * wk
                a3 += x3[k] * wk
            out[m, n] = a0
            out[m + 1, n] = a1
            out[m + 2, n] = a2
            out[m + 3, n] = a3
