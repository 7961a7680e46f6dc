"""Reduced-precision GEMM for the codec: out[M, N] ~= A[M, K] @ W[K, N], A float32 at run time,
W packed once at load. Two kinds (docs/kernels.md §6):

  int8  W per output column: w_q = round(W / s_w), s_w = max|W[:, n]| / 127, stored int8.
        A per row: a_q = round(A / s_a) + 128 as uint8, s_a = max|A[m, :]| / 127.
        acc = sum_k a_u8 w_s8 (vpdpbusd, exact int32), out = (acc - 128 colsum(w_q)) s_a s_w.
  bf16  W and A rounded to bfloat16 (nearest even), products summed in float32 (vdpbf16ps).

Packed layouts (P = values per 32-bit lane: 4 int8 or 2 bf16; a weight of `taps` row blocks of
Cin rows each -- a tap-major conv weight, or taps=1 -- with each block's rows padded to KA*P):
  W  int32[NT, taps*KA, NV*16]: column tile t holds columns t*NV*16 .. +NV*16 (N padded with zero
     columns), for each group of P k's the NV*16 columns' P values side by side -- one linear
     stream per tile, NV 64-byte loads per k group.
  A  int32[rows, KA]: every input row once (u8 + zero point, or bf16 pairs), padding rows zero
     point / zero. A causal conv is `taps` passes over W's row blocks, pass j reading A's rows
     shifted by j*d (no im2col); the int8 partial sums are scaled per pass and added in float32.
The micro-kernel (LLVM IR intrinsic) keeps MR x NV accumulators of 16 lanes in zmm registers:
per k group, NV weight loads, MR 4-byte broadcasts of A, MR*NV dot instructions.
Parallel callers split column tiles (or row blocks) over threads: every kernel here is nogil.
Built only on hosts with AVX512-VNNI / AVX512_BF16 (HAS_INT8 / HAS_BF16).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from . import amx

MR = 4   # rows of A per micro-tile
LANES = 16  # 32-bit lanes per zmm vector

_V = ir.VectorType
_I32, _I64, _F32 = ir.IntType(32), ir.IntType(64), ir.FloatType()


def _host_features():
    import numba
    from llvmlite import binding as llvm

    if numba.config.CPU_NAME not in (None, "host"):
        return {}
    try:
        return dict(llvm.get_host_cpu_features())
    except Exception:
        return {}


_F = _host_features()
HAS_INT8 = bool(_F.get("avx512vnni") and _F.get("avx512f") and _F.get("avx512bw"))
HAS_BF16 = bool(_F.get("avx512bf16") and _F.get("avx512f") and _F.get("avx512bw"))


class _BFloat(ir.Type):
    """LLVM's bfloat (llvmlite has no class for it): the vdpbf16ps intrinsic's operand type."""

    def _to_string(self):
        return "bfloat"

    def __eq__(self, other):
        return isinstance(other, _BFloat)

    def __hash__(self):
        return hash("bfloat")


def _data(context, builder, aryty, ary):
    return context.make_array(aryty)(context, builder, value=ary).data


def _fn(builder, name, ret, args):
    from numba.core import cgutils

    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


def _splat(builder, scalar, vty):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, v, ir.Constant(_V(_I32, vty.count), [0] * vty.count))


def _tile(kind: str, mr: int, nv: int):
    """Intrinsic tile(A, W, out, m0, t, sx, sw, zc, arow, k0, k1, j, accum): for output rows
    m0..m0+mr and column tile t (nv*16 columns), the dot of A rows arow..arow+mr (int32[RA, KA],
    k group k - k0) with W[t, k0:k1] (int32[NT, KP, nv*16]); then stored (accum 0) or added
    (accum 1) to out f32[Mp, ldo]. int8: val = float(acc - zc[j]) * (sw * sx[arow + r]), sx f32[RA]
    row scales, sw f32[Npad] column scales, zc i32[taps, Npad] = 128 colsum of tap j's w_q.
    bf16: val = acc (sx, sw, zc unused). A conv runs one call per tap j (arow = m0 + j*d)."""
    v16i, v16f = _V(_I32, LANES), _V(_F32, LANES)
    acc_ty = v16i if kind == "int8" else v16f
    nw = nv * LANES

    @intrinsic
    def tile(typingctx, A, W, out, m0, t, sx, sw, zc, arow, k0, k1, j, accum):
        def codegen(context, builder, sig, args):
            Aa, Wa, Oa, m0v, tv, sxa, swa, zca, arowv, k0v, k1v, jv, accv = args
            i64 = [context.cast(builder, v, ty, types.int64)
                   for v, ty in zip((m0v, tv, arowv, k0v, k1v, jv, accv), sig.args[3:5] + sig.args[8:])]
            m0v, tv, arowv, k0v, k1v, jv, accv = i64
            ap = _data(context, builder, sig.args[0], Aa)
            wp = _data(context, builder, sig.args[1], Wa)
            op = _data(context, builder, sig.args[2], Oa)
            sxp = _data(context, builder, sig.args[5], sxa)
            swp = _data(context, builder, sig.args[6], swa)
            zcp = _data(context, builder, sig.args[7], zca)

            def dim(i, ary_i, val):
                return builder.extract_value(context.make_array(sig.args[ary_i])(context, builder, value=val).shape, i)
            ka = dim(1, 0, Aa)
            kp = dim(1, 1, Wa)
            ldo = dim(1, 2, Oa)
            npad = dim(1, 7, zca)
            if kind == "int8":
                dot = _fn(builder, "llvm.x86.avx512.vpdpbusd.512", v16i, [v16i, v16i, v16i])
            else:
                bv = _V(_BFloat(), 32)
                dot = _fn(builder, "llvm.x86.avx512bf16.dpbf16ps.512", v16f, [v16f, bv, bv])
            wbase = builder.mul(tv, builder.mul(kp, ir.Constant(_I64, nw)))
            arow = [builder.sub(builder.mul(builder.add(arowv, ir.Constant(_I64, r)), ka), k0v) for r in range(mr)]

            entry = builder.block
            loop = builder.append_basic_block("tile.loop")
            done = builder.append_basic_block("tile.done")
            builder.cbranch(builder.icmp_signed("<", k0v, k1v), loop, done)
            builder.position_at_end(loop)
            k = builder.phi(_I64)
            k.add_incoming(k0v, entry)
            accs = []
            for i in range(mr * nv):
                p = builder.phi(acc_ty)
                p.add_incoming(ir.Constant(acc_ty, None), entry)
                accs.append(p)
            woff = builder.add(wbase, builder.mul(k, ir.Constant(_I64, nw)))
            wv = []
            for v in range(nv):
                ptr = builder.gep(wp, [builder.add(woff, ir.Constant(_I64, v * LANES))])
                wv.append(builder.load(builder.bitcast(ptr, v16i.as_pointer()), align=4))
            new = []
            for r in range(mr):
                a = builder.load(builder.gep(ap, [builder.add(arow[r], k)]))
                av = _splat(builder, a, v16i)
                for v in range(nv):
                    acc = accs[r * nv + v]
                    if kind == "int8":
                        new.append(builder.call(dot, [acc, av, wv[v]]))
                    else:
                        new.append(builder.call(dot, [acc, builder.bitcast(av, bv), builder.bitcast(wv[v], bv)]))
            kn = builder.add(k, ir.Constant(_I64, 1))
            k.add_incoming(kn, loop)
            for p, n_ in zip(accs, new):
                p.add_incoming(n_, loop)
            builder.cbranch(builder.icmp_signed("<", kn, k1v), loop, done)

            builder.position_at_end(done)
            res = []
            for i in range(mr * nv):
                ph = builder.phi(acc_ty)
                ph.add_incoming(ir.Constant(acc_ty, None), entry)
                ph.add_incoming(new[i], loop)
                res.append(ph)
            col0 = builder.mul(tv, ir.Constant(_I64, nw))
            add = builder.icmp_signed("!=", accv, ir.Constant(_I64, 0))
            for r in range(mr):
                obase = builder.add(builder.mul(builder.add(m0v, ir.Constant(_I64, r)), ldo), col0)
                if kind == "int8":
                    sxr = builder.load(builder.gep(sxp, [builder.add(arowv, ir.Constant(_I64, r))]))
                    sxv = _splat(builder, sxr, v16f)
                for v in range(nv):
                    val = res[r * nv + v]
                    c = builder.add(col0, ir.Constant(_I64, v * LANES))
                    if kind == "int8":
                        zoff = builder.add(builder.mul(jv, npad), c)
                        zv = builder.load(builder.bitcast(builder.gep(zcp, [zoff]), v16i.as_pointer()), align=4)
                        sv = builder.load(builder.bitcast(builder.gep(swp, [c]), v16f.as_pointer()), align=4)
                        f = builder.sitofp(builder.sub(val, zv), v16f)
                        val = builder.fmul(f, builder.fmul(sv, sxv))
                    ptr = builder.bitcast(builder.gep(op, [builder.add(obase, ir.Constant(_I64, v * LANES))]),
                                          v16f.as_pointer())
                    old = builder.load(ptr, align=4)
                    val = builder.select(add, builder.fadd(old, val), val)
                    builder.store(val, ptr, align=4)
            return context.get_dummy_value()

        return types.none(A, W, out, m0, t, sx, sw, zc, arow, k0, k1, j, accum), codegen

    return tile


# one intrinsic per (kind, NV); NV = vectors of 16 columns per tile, fixed per weight at packing
if HAS_INT8:
    _i8_1, _i8_2, _i8_3, _i8_4 = (_tile("int8", MR, nv) for nv in (1, 2, 3, 4))
if HAS_BF16:
    _bf_1, _bf_2, _bf_3, _bf_4 = (_tile("bf16", MR, nv) for nv in (1, 2, 3, 4))


# Drivers: output rows m0..m1 (multiples of MR) x column tiles t0..t1, `taps` k-slices of W of
# equal size, tap j reading A rows shifted by j*d (a causal conv without im2col: A holds each
# input row once, with its own scale). One plain function per kind (no factory closures: numba's
# cache would recompile them every process, see matmul.py).
if HAS_INT8:
    @njit(cache=True, nogil=True)
    def gemm_int8(A, W, out, sx, sw, zc, m0, m1, t0, t1, d):
        nv = W.shape[2] // LANES
        taps = zc.shape[0]
        kpt = W.shape[1] // taps
        for t in range(t0, t1):
            for m in range(m0, m1, MR):
                for j in range(taps):
                    a, k0, k1 = m + j * d, j * kpt, (j + 1) * kpt
                    if nv == 4:
                        _i8_4(A, W, out, m, t, sx, sw, zc, a, k0, k1, j, j)
                    elif nv == 3:
                        _i8_3(A, W, out, m, t, sx, sw, zc, a, k0, k1, j, j)
                    elif nv == 2:
                        _i8_2(A, W, out, m, t, sx, sw, zc, a, k0, k1, j, j)
                    else:
                        _i8_1(A, W, out, m, t, sx, sw, zc, a, k0, k1, j, j)

if HAS_BF16:
    @njit(cache=True, nogil=True)
    def gemm_bf16(A, W, out, sx, sw, zc, m0, m1, t0, t1, d):
        nv = W.shape[2] // LANES
        taps = zc.shape[0]
        kpt = W.shape[1] // taps
        for t in range(t0, t1):
            for m in range(m0, m1, MR):
                for j in range(taps):
                    a, k0, k1 = m + j * d, j * kpt, (j + 1) * kpt
                    if nv == 4:
                        _bf_4(A, W, out, m, t, sx, sw, zc, a, k0, k1, j, j)
                    elif nv == 3:
                        _bf_3(A, W, out, m, t, sx, sw, zc, a, k0, k1, j, j)
                    elif nv == 2:
                        _bf_2(A, W, out, m, t, sx, sw, zc, a, k0, k1, j, j)
                    else:
                        _bf_1(A, W, out, m, t, sx, sw, zc, a, k0, k1, j, j)


# ------------------------------------------------------------------ activations (run time)
@njit(cache=True, nogil=True)
def row_absmax_bits(xb, out):
    """out[m] = bits of max_k |x[m, k]| for x f32[M, K] given as uint32 (xb): non-negative floats
    order like their bits, so this is an integer max (vectorized without fastmath)."""
    M, K = xb.shape
    for m in range(M):
        a = np.uint32(0)
        for k in range(K):
            a = max(a, xb[m, k] & np.uint32(0x7FFFFFFF))
        out[m] = a


@njit(cache=True, nogil=True)
def quant_rows_u8(x, amax, q, sx):
    """x f32[M, K], amax f32[M] = max|x[m]| -> q uint8[R, KA*4] = floor(x / s + 128.5) (a_q + 128:
    round half up around the zero point; pad columns 128), sx f32[R] = s = amax / 127; rows past
    M are zero point with scale 0. No fastmath: x * inv + 128.5 must not fuse into an FMA (twin)."""
    M, K = x.shape
    q[M:, :] = 128
    q[:, K:] = 128
    sx[M:] = 0.0
    for m in range(M):
        s = amax[m] / np.float32(127.0)
        inv = np.float32(1.0) / s if amax[m] > 0 else np.float32(0.0)
        sx[m] = s
        for k in range(K):
            q[m, k] = np.uint8(np.int32(x[m, k] * inv + np.float32(128.5)))


@njit(cache=True, nogil=True)
def round_rows_bf16(xb, q):
    """xb = x f32[M, K] viewed as uint32 -> q uint16[Mp, KP*2] bfloat16 bits (nearest even);
    pad rows / columns 0."""
    M, K = xb.shape
    for m in range(q.shape[0]):
        if m >= M:
            q[m, :] = 0
            continue
        for i in range(K):
            b = xb[m, i]
            q[m, i] = np.uint16((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
        for i in range(K, q.shape[1]):
            q[m, i] = 0


# ------------------------------------------------------------------ weights (load time)
def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 array -> uint16 bfloat16 bits, nearest even (what the kernels compute)."""
    b = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return ((b + np.uint32(0x7FFF) + ((b >> 16) & 1)) >> 16).astype(np.uint16)


@njit(cache=True, nogil=True)
def pack_int8(w, out, sw, zc):
    """w f32[taps, cin, N] -> out int8[NT, taps*KA, NV*16, 4] (the packed layout, zero padded):
    w_q = rint(w / s_w) in [-127, 127] with s_w = max_(tap, k) |w[:, :, n]| / 127 (sw[:N]), and
    zc[tap, n] = 128 sum_k w_q (the zero-point correction)."""
    taps, cin, N = w.shape
    nw = out.shape[2]
    ka = out.shape[1] // taps
    out[:] = 0
    amax = np.zeros(N, np.float32)
    for j in range(taps):
        for c in range(cin):
            for n in range(N):
                amax[n] = max(amax[n], abs(w[j, c, n]))
    inv = np.zeros(N, np.float32)
    for n in range(N):
        sw[n] = amax[n] / np.float32(127.0)
        if amax[n] > 0:
            inv[n] = np.float32(1.0) / sw[n]
    for j in range(taps):
        for c in range(cin):
            kg = j * ka + c // 4
            i = c % 4
            for t in range(out.shape[0]):
                for v in range(min(nw, N - t * nw)):
                    n = t * nw + v
                    qi = np.int32(min(max(np.rint(w[j, c, n] * inv[n]), np.float32(-127.0)), np.float32(127.0)))
                    out[t, kg, v, i] = qi
                    zc[j, n] += 128 * qi


def _nv_for(nb: int) -> int:
    for nv in (4, 3, 2):
        if nb % nv == 0:
            return nv
    return 1 if nb < 4 else 4


class PackedGemm:
    """W[taps*Cin, N] float32 (tap-major, taps=1: a plain [K, N]) packed for one kind ("int8" |
    "bf16"). matmul(x) ~= x @ W; conv(xp, d) ~= the causal conv of xp (k = taps, dilation d)."""

    packed = True  # pool.Rows.gemm / lin hand products on it here

    def __init__(self, w: np.ndarray, kind: str, taps: int = 1):
        if kind == "int8" and not HAS_INT8 or kind == "bf16" and not HAS_BF16:
            raise ValueError(f"{kind} GEMM kernels need AVX512 {'VNNI' if kind == 'int8' else 'BF16'}")
        w = np.asarray(w)
        K, N = w.shape
        if K % taps:
            raise ValueError(f"{K} weight rows do not split into {taps} taps")
        self.kind, self.K, self.N, self.taps = kind, K, N, taps
        self.cin = cin = K // taps
        P = 4 if kind == "int8" else 2
        self.P = P
        self.KA = KA = -(-cin // P)  # 32-bit groups per activation row (one tap)
        nb = -(-N // LANES)
        self.nv = nv = _nv_for(nb)
        self.nt = nt = -(-nb // nv)
        self.npad = npad = nt * nv * LANES
        if kind == "int8":  # one numba pass (the numpy formulation is the test's twin)
            self.w = np.empty((nt, taps * KA, nv * LANES), np.int32)
            self.sw = np.zeros(npad, np.float32)
            self.zc = np.zeros((taps, npad), np.int32)
            pack_int8(np.asarray(w, np.float32).reshape(taps, cin, N), self.w.view(np.int8).reshape(
                nt, taps * KA, nv * LANES, P), self.sw, self.zc)
        else:
            vals = np.zeros((taps, KA * P, npad), np.uint16)
            vals[:, :cin, :N] = bf16_bits(np.asarray(w).reshape(taps, cin, N))
            self.sw = np.zeros(1, np.float32)
            self.zc = np.zeros((taps, 1), np.int32)
            # [taps, KA*P, npad] -> [nt, taps*KA, nv*16, P] -> int32 [nt, taps*KA, nv*16]
            v = vals.reshape(taps * KA, P, nt, nv * LANES).transpose(2, 0, 3, 1)
            self.w = np.ascontiguousarray(v).view(np.int32).reshape(nt, taps * KA, nv * LANES)
        self._kern = gemm_int8 if kind == "int8" else gemm_bf16

    @property
    def nbytes(self) -> int:
        return self.w.nbytes + self.sw.nbytes + self.zc.nbytes

    @property
    def shape(self):
        return (self.K, self.N)

    def act(self, m: int, ctx: int = 0):
        """Scratch for the activations of m output rows plus ctx rows of left context: (A
        int32[Mp + ctx, KA], row scales f32[Mp + ctx]), Mp = m rounded up to MR."""
        r = -(-m // MR) * MR + ctx
        return np.empty((r, self.KA), np.int32), np.empty(r, np.float32)

    def load_rows(self, x, A, sx):
        """Quantize (int8) / round (bf16) float32 rows x [R, Cin] into A[:R]; the rest padding."""
        if self.kind == "int8":
            x = np.ascontiguousarray(x, np.float32)
            amax = np.empty(x.shape[0], np.uint32)
            row_absmax_bits(x.view(np.uint32), amax)
            quant_rows_u8(x, amax.view(np.float32), A.view(np.uint8), sx)
        else:
            round_rows_bf16(np.ascontiguousarray(x, np.float32).view(np.uint32), A.view(np.uint16))

    def out(self, m: int):
        return np.empty((-(-m // MR) * MR, self.npad), np.float32)

    def run(self, A, sx, out, m0, m1, t0, t1, d=1):
        """Output rows m0..m1 (multiples of MR) x column tiles t0..t1 into out (from out())."""
        self._kern(A, self.w, out, sx, self.sw, self.zc, m0, m1, t0, t1, d)

    def matmul(self, x, par=None):
        """x f32[M, K] -> f32[M, N]; par(fn, n) (pool.Rows.par) splits the work over threads."""
        return self.conv(x, 1, par)

    def conv(self, xp, d=1, par=None):
        """Causal conv (k = taps, dilation d) of xp [n + (taps-1)*d, Cin], left context in front
        -> f32[n, N]. No im2col: each input row is quantized once, tap j reads rows + j*d."""
        ctx = (self.taps - 1) * d
        n = xp.shape[0] - ctx
        A, sx = self.act(n, ctx)
        self.load_rows(xp, A, sx)
        out = self.out(n)
        mp = out.shape[0]
        if par is None or mp * self.K * self.npad < (1 << 21):
            self.run(A, sx, out, 0, mp, 0, self.nt, d)
        elif self.nt >= 4:
            par(lambda a, b: self.run(A, sx, out, 0, mp, a, b, d), self.nt)
        else:
            par(lambda a, b: self.run(A, sx, out, a * MR, b * MR, 0, self.nt, d), mp // MR)
        return out[:n, :self.N]


class PackedBF16x3(PackedGemm):
    """W[taps*Cin, N] float32 packed for the AMX "bf16x3" product (kernels/amx.py): a hi/lo
    bfloat16 pair per weight (as many bytes as float32), xh Wh + xh Wl + xl Wh in float32 tile
    accumulators, ~100 dB against the float32 product. A PackedGemm to its callers (matmul, conv,
    nbytes, shape); act / load_rows / out / run are the int8 / bf16 kernels' and unused here."""

    def __init__(self, w: np.ndarray, taps: int = 1):
        if not amx.HAS_AMX_BF16:
            raise ValueError("bf16x3 GEMM kernels need AMX-BF16")
        w = np.asarray(w)
        K, N = w.shape
        if K % taps:
            raise ValueError(f"{K} weight rows do not split into {taps} taps")
        self.kind, self.K, self.N, self.taps = "bf16x3", K, N, taps
        self.cin = K // taps
        self.wh, self.wl = amx.pack_weight(w, taps)
        self.nt = self.wh.shape[0]  # column tiles of 16 (an even count)
        self.kp = self.wh.shape[2] * amx.TK  # padded K per tap
        self.npad = self.nt * amx.TN

    # Values below which conv() splits its activations on the calling thread: ~50 us of
    # split_rows, about the wake-up of an idle worker thread (Rows.par, ~100 us here)
    SPLIT_PAR = 1 << 17

    @property
    def nbytes(self) -> int:
        return self.wh.nbytes + self.wl.nbytes

    def conv(self, xp, d=1, par=None):
        """Causal conv (k = taps, dilation d) of xp [n + (taps-1)*d, Cin] -> f32[n, N]; every
        input row split into its bfloat16 pair once, tap j reading rows + j*d."""
        ctx = (self.taps - 1) * d
        R, n = xp.shape[0], xp.shape[0] - ctx
        mp = -(-n // amx.BM) * amx.BM
        AH = np.empty((mp + ctx, self.kp), np.uint16)
        AL = np.empty_like(AH)
        out = np.empty((mp, self.npad), np.float32)
        nb = self.nt // 2
        xp = np.ascontiguousarray(xp, np.float32)
        mc = amx.row_chunk(self.kp)

        def run(m0, m1, b0, b1):
            amx.gemm_bf16x3(AH, AL, self.wh, self.wl, out, amx.TILE_CFG, m0, m1, b0, b1, d, mc)
        if par is None or mp * self.K * self.npad < (1 << 22):
            amx.split_rows(xp, AH, AL)
            run(0, mp, 0, nb)
            return out[:n, :self.N]
        if R * self.kp < self.SPLIT_PAR:  # a thread hand-off costs more than the split
            amx.split_rows(xp, AH, AL)
        else:
            AH[R:] = 0
            AL[R:] = 0
            par(lambda a, b: amx.split_rows(xp[a:b], AH[a:b], AL[a:b]), R)
        if nb >= 4 or mp < 2 * amx.BM:
            par(lambda a, b: run(0, mp, a, b), nb)
        else:
            par(lambda a, b: run(a * amx.BM, b * amx.BM, 0, nb), mp // amx.BM)
        return out[:n, :self.N]
