"""Causal GQA self-attention over a ring-buffer KV cache, with per-head q/k RMSNorm and RoPE.

One call per layer does: q/k per-head RMSNorm -> RoPE -> write k, v into the cache -> attention.
No model knowledge: sizes come from the array shapes and the arguments.
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .expf import exp_f32

_I64, _I32, _F32 = ir.IntType(64), ir.IntType(32), ir.FloatType()

_FM = {"reassoc", "contract", "nsz"}  # vectorized dot products and sums


@njit(cache=True, nogil=True, fastmath=_FM)
def _head_rmsnorm_rope(x, w, eps, cos_row, sin_row):
    d = x.shape[0]
    half = d // 2
    ss = np.float32(0.0)
    for j in range(d):
        ss += x[j] * x[j]
    inv = np.float32(1.0) / np.sqrt(ss / np.float32(d) + np.float32(eps))
    for j in range(d):
        x[j] = w[j] * (x[j] * inv)
    for i in range(half):
        a = x[i]
        b = x[i + half]
        c = cos_row[i]
        s = sin_row[i]
        x[i] = a * c - b * s
        x[i + half] = b * c + a * s


# attend_head runs inside different callers (qkv_attention's per-head loop, the fused decoder's
# per-kv-head phase) and LLVM vectorizes a reassociable sum differently after inlining into each:
# on aarch64 the two disagreed in the last bit. So its sums have an order fixed in the source:
# no "reassoc"; eight explicit partial sums per dot (lanes LLVM may pack into one vector without
# changing a bit), combined pairwise.
_FM_EXACT = {"contract", "nsz"}


@njit(cache=True, nogil=True, fastmath=_FM_EXACT, inline="always")
def _dot(q, kr, hd):
    p0 = p1 = p2 = p3 = p4 = p5 = p6 = p7 = np.float32(0.0)
    for j in range(0, hd - 7, 8):
        p0 += q[j] * kr[j]
        p1 += q[j + 1] * kr[j + 1]
        p2 += q[j + 2] * kr[j + 2]
        p3 += q[j + 3] * kr[j + 3]
        p4 += q[j + 4] * kr[j + 4]
        p5 += q[j + 5] * kr[j + 5]
        p6 += q[j + 6] * kr[j + 6]
        p7 += q[j + 7] * kr[j + 7]
    for j in range(hd // 8 * 8, hd):
        p0 += q[j] * kr[j]
    return ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7))


@intrinsic
def _dot4(typingctx, q, k0, k1, k2, k3, hd):
    """_dot4(q, k0, k1, k2, k3, hd) -> 4 float32: _dot of q with each key row, the eight partial
    sums of _dot as the eight lanes of one vector (p_i += q[j + i] k[j + i] is lane i of a
    vector multiply-add: the same operations in the same order, bit for bit), the four chains
    interleaved. LLVM does not pack _dot's loop-carried scalar sums into vectors itself
    (scalar vfmadd231ss, ~30 ns per key of 128 here). 1-D contiguous float32 rows."""
    rows = (q, k0, k1, k2, k3)
    if not isinstance(hd, types.Integer):
        return None
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"
               and a.dtype == types.float32 for a in rows):
        return None

    def codegen(context, builder, sig, args):
        ptrs = [context.make_array(t)(context, builder, value=v).data for t, v in zip(sig.args[:-1], args[:-1])]
        n = context.cast(builder, args[-1], sig.args[-1], types.int64)
        vec = ir.VectorType(_F32, 8)
        vfma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                              "llvm.fmuladd.v8f32")
        sfma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_F32, [_F32] * 3),
                                              "llvm.fmuladd.f32")
        n8 = builder.and_(n, ir.Constant(_I64, -8))

        def loop(lo, hi, init, ty, body, name):
            """for j in lo..hi-1 (step 8 for vectors): accs = body(j, accs); -> final accs."""
            entry = builder.block
            head = builder.append_basic_block(name)
            done = builder.append_basic_block(name + ".done")
            builder.cbranch(builder.icmp_signed("<", lo, hi), head, done)
            builder.position_at_end(head)
            j = builder.phi(_I64)
            j.add_incoming(lo, entry)
            acc = [builder.phi(ty) for _ in init]
            for a, a0 in zip(acc, init):
                a.add_incoming(a0, entry)
            nxt, step = body(j, acc)
            jn = builder.add(j, ir.Constant(_I64, step))
            j.add_incoming(jn, builder.block)
            for a, b in zip(acc, nxt):
                a.add_incoming(b, builder.block)
            body_end = builder.block
            builder.cbranch(builder.icmp_signed("<", jn, hi), head, done)
            builder.position_at_end(done)
            out = []
            for a0, b in zip(init, nxt):
                r = builder.phi(ty)
                r.add_incoming(a0, entry)
                r.add_incoming(b, body_end)
                out.append(r)
            return out

        def vload(p, j):
            return builder.load(builder.bitcast(builder.gep(p, [j]), vec.as_pointer()), align=4)

        def vbody(j, acc):
            qv = vload(ptrs[0], j)
            return [builder.call(vfma, [qv, vload(ptrs[1 + r], j), acc[r]]) for r in range(4)], 8

        lanes = loop(ir.Constant(_I64, 0), n8, [ir.Constant(vec, None)] * 4, vec, vbody, "dots.vec")
        lane = [[builder.extract_element(v, ir.Constant(_I32, i)) for i in range(8)] for v in lanes]

        def sbody(j, acc):
            qj = builder.load(builder.gep(ptrs[0], [j]))
            return [builder.call(sfma, [qj, builder.load(builder.gep(ptrs[1 + r], [j])), acc[r]])
                    for r in range(4)], 1

        p0 = loop(n8, n, [lane[r][0] for r in range(4)], _F32, sbody, "dots.tail")
        res = []
        for r in range(4):
            p = [p0[r]] + lane[r][1:]
            res.append(builder.fadd(builder.fadd(builder.fadd(p[0], p[1]), builder.fadd(p[2], p[3])),
                                    builder.fadd(builder.fadd(p[4], p[5]), builder.fadd(p[6], p[7]))))
        return context.make_tuple(builder, sig.return_type, res)

    return types.UniTuple(types.float32, 4)(*rows, hd), codegen


@njit(cache=True, nogil=True, fastmath=_FM_EXACT)
def _scores(q, k_cache, kv, s0, s1, scale, scores, t0):
    """scores[t0 + i] = scale * q . K[kv, s1 - 1 - i] for the slots s1 - 1 down to s0 (newest
    first), four keys per pass; returns the next t."""
    hd = k_cache.shape[2]
    t = t0
    s = s1 - 1
    while s - 3 >= s0:
        e0, e1, e2, e3 = _dot4(q, k_cache[kv, s], k_cache[kv, s - 1], k_cache[kv, s - 2],
                               k_cache[kv, s - 3], hd)
        scores[t] = e0 * scale
        scores[t + 1] = e1 * scale
        scores[t + 2] = e2 * scale
        scores[t + 3] = e3 * scale
        t += 4
        s -= 4
    while s >= s0:
        scores[t] = _dot(q, k_cache[kv, s], hd) * scale
        t += 1
        s -= 1
    return t


@njit(cache=True, nogil=True, fastmath=_FM_EXACT)
def _weighted_sum(v_cache, kv, s0, s1, w, t0, o):
    """o += sum_i w[t0 + i] * V[kv, s1 - 1 - i] over the slots s1 - 1 down to s0, four value
    rows per pass over o (element-wise: the order is the source's); returns the next t."""
    hd = v_cache.shape[2]
    s = s1 - 4
    t = t0
    while s >= s0:
        v0 = v_cache[kv, s + 3]
        v1 = v_cache[kv, s + 2]
        v2 = v_cache[kv, s + 1]
        v3 = v_cache[kv, s]
        w0, w1, w2, w3 = w[t], w[t + 1], w[t + 2], w[t + 3]
        for j in range(hd):
            o[j] += ((w0 * v0[j] + w1 * v1[j]) + w2 * v2[j]) + w3 * v3[j]
        t += 4
        s -= 4
    for s in range(s + 3, s0 - 1, -1):
        vr = v_cache[kv, s]
        ww = w[t]
        for j in range(hd):
            o[j] += ww * vr[j]
        t += 1
    return t


@njit(cache=True, nogil=True, fastmath=_FM_EXACT)
def attend_head(q, k_cache, v_cache, kv, p, n, scale, scores, o):
    """Softmax attention of one query head q over the n newest cache slots of kv head kv
    (ring buffer, position p newest) into o. scores: scratch of at least n. float32 throughout,
    exp by expf.exp_f32 (a libm exp per score and float64 sums cost ~4x the whole dot products).
    The n slots are one or two contiguous runs of the ring (newest - n + 1 .. newest, wrapping
    below slot 0 to the top), walked newest first."""
    cap = k_cache.shape[1]
    newest = p % cap
    lo = newest + 1 - n  # < 0: the run wraps to slots cap + lo .. cap - 1
    t = _scores(q, k_cache, kv, max(lo, 0), newest + 1, scale, scores, 0)
    if lo < 0:
        _scores(q, k_cache, kv, cap + lo, cap, scale, scores, t)
    m = np.float32(-np.inf)
    for t in range(n):
        m = max(m, scores[t])
    for t in range(n):  # (apart from the sum: this loop vectorizes)
        scores[t] = exp_f32(scores[t] - m)
    tot = np.float32(0.0)
    for t in range(n):
        tot += scores[t]
    inv = np.float32(1.0) / tot
    for t in range(n):
        scores[t] *= inv
    o[:] = 0.0
    t = _weighted_sum(v_cache, kv, max(lo, 0), newest + 1, scores, 0, o)
    if lo < 0:
        _weighted_sum(v_cache, kv, cap + lo, cap, scores, t, o)


@njit(cache=True, nogil=True, parallel=True, fastmath=_FM)
def qkv_attention(qkv, n_heads, n_kv_heads, q_norm, k_norm, eps, cos, sin, pos0,
                  k_cache, v_cache, out, scores):
    """Rows of qkv [L, (n_heads + 2*n_kv_heads) * head_dim] at positions pos0 .. pos0+L-1.

    q is normalized + rotated in place; k (normalized + rotated) and v go into the caches
    k_cache, v_cache [n_kv_heads, capacity, head_dim] at slot pos % capacity; then each row
    attends causally to every cached position <= its own (at most `capacity` of them).
    out: [L, n_heads * head_dim]; scores: float32 work buffer of at least `capacity` (one row;
    several rows split the heads over the threads, each with its own scratch).
    cos, sin: [n_pos, head_dim // 2] RoPE tables. The caller keeps capacity >= L.
    Every (row, head) runs attend_head on the same numbers whatever the split: equal to the
    rows fed one at a time, bit for bit.
    """
    L = qkv.shape[0]
    hd = k_cache.shape[2]
    cap = k_cache.shape[1]
    group = n_heads // n_kv_heads
    koff = n_heads * hd
    voff = koff + n_kv_heads * hd
    scale = np.float32(1.0 / np.sqrt(hd))
    if L == 1:
        slot = pos0 % cap
        for h in range(n_heads):
            _head_rmsnorm_rope(qkv[0, h * hd:(h + 1) * hd], q_norm, eps, cos[pos0], sin[pos0])
        for h in range(n_kv_heads):
            k = qkv[0, koff + h * hd: koff + (h + 1) * hd]
            _head_rmsnorm_rope(k, k_norm, eps, cos[pos0], sin[pos0])
            for j in range(hd):
                k_cache[h, slot, j] = k[j]
                v_cache[h, slot, j] = qkv[0, voff + h * hd + j]
        n = min(pos0 + 1, cap)
        for h in range(n_heads):
            attend_head(qkv[0, h * hd:(h + 1) * hd], k_cache, v_cache, h // group, pos0, n, scale, scores,
                        out[0, h * hd:(h + 1) * hd])
        return
    # several rows: one kv head per iteration (its k rows normed, rotated and cached, then its
    # query heads over every row): norms and RoPE split over the threads too (0.77 -> 0.52 ms
    # per talker layer of 42 rows at 2 threads, with _dot4)
    for g in prange(n_kv_heads):
        kv_head_rows(qkv, g, n_heads, n_kv_heads, q_norm, k_norm, eps, cos, sin, pos0, k_cache, v_cache,
                     out, np.empty(cap, np.float32))


@njit(cache=True, nogil=True, fastmath=_FM)
def kv_head_rows(qkv, g, n_heads, n_kv_heads, q_norm, k_norm, eps, cos, sin, pos0, k_cache, v_cache, out,
                 work):
    """qkv_attention's work for kv head g over all L rows: its k rows normed, rotated and cached
    (with the v rows), then each of its query heads over every row. work: f32 [capacity]."""
    L = qkv.shape[0]
    hd = k_cache.shape[2]
    cap = k_cache.shape[1]
    group = n_heads // n_kv_heads
    koff = n_heads * hd
    voff = koff + n_kv_heads * hd
    scale = np.float32(1.0 / np.sqrt(hd))
    for i in range(L):
        p = pos0 + i
        slot = p % cap
        k = qkv[i, koff + g * hd: koff + (g + 1) * hd]
        _head_rmsnorm_rope(k, k_norm, eps, cos[p], sin[p])
        for j in range(hd):
            k_cache[g, slot, j] = k[j]
            v_cache[g, slot, j] = qkv[i, voff + g * hd + j]
    for h in range(g * group, (g + 1) * group):
        for i in range(L):
            p = pos0 + i
            q = qkv[i, h * hd:(h + 1) * hd]
            _head_rmsnorm_rope(q, q_norm, eps, cos[p], sin[p])
            attend_head(q, k_cache, v_cache, g, p, min(p + 1, cap), scale, work, out[i, h * hd:(h + 1) * hd])
