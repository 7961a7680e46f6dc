"""Reduced-precision GEMM for the codec: out[M, N] ~= A[M, K] @ W[K, N], A float32 at run time,
W packed once at load. Two kinds (docs/kernels.md §6):

  int8  W per output column: w_q = round(W / s_w), s_w = max|W[:, n]| / 127, stored int8.
        A per row: a_q = round(A / s_a) + 128 as uint8, s_a = max|A[m, :]| / 127.
        acc = sum_k a_u8 w_s8 (vpdpbusd, exact int32), out = (acc - 128 colsum(w_q)) s_a s_w.
  bf16  W and A rounded to bfloat16 (nearest even), products summed in float32 (vdpbf16ps).

Packed layouts (P = values per 32-bit lane: 4 int8 or 2 bf16; K padded to KP*P with zeros):
  W  int32[NT, KP, NV*16]: column tile t holds columns t*NV*16 .. +NV*16 (N padded with zero
     columns), for each group of P k's the NV*16 columns' P values side by side -- one linear
     stream per tile, NV 64-byte loads per k group.
  A  int32[Mp, KP] (Mp = M rounded up to MR rows; padding rows are zero / zero point).
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
    """Intrinsic tile(A, W, out, m0, t, sx, sw, zc): out[m0:m0+mr, t*nv*16 : (t+1)*nv*16] from
    A int32[Mp, KP], W int32[NT, KP, nv*16]. int8: sx f32[Mp] row scales, sw f32[Npad] column
    scales, zc i32[Npad] = 128 colsum(w_q); bf16: those three are ignored."""
    v16i, v16f = _V(_I32, LANES), _V(_F32, LANES)
    acc_ty = v16i if kind == "int8" else v16f
    nw = nv * LANES

    @intrinsic
    def tile(typingctx, A, W, out, m0, t, sx, sw, zc):
        def codegen(context, builder, sig, args):
            Aa, Wa, Oa, m0v, tv, sxa, swa, zca = args
            ap = _data(context, builder, sig.args[0], Aa)
            wp = _data(context, builder, sig.args[1], Wa)
            op = _data(context, builder, sig.args[2], Oa)
            sxp = _data(context, builder, sig.args[5], sxa)
            swp = _data(context, builder, sig.args[6], swa)
            zcp = _data(context, builder, sig.args[7], zca)
            wshape = context.make_array(sig.args[1])(context, builder, value=Wa).shape
            kp = builder.extract_value(wshape, 1)
            oshape = context.make_array(sig.args[2])(context, builder, value=Oa).shape
            ldo = builder.extract_value(oshape, 1)
            m0v = context.cast(builder, m0v, sig.args[3], types.int64)
            tv = context.cast(builder, tv, sig.args[4], types.int64)
            if kind == "int8":
                dot = _fn(builder, "llvm.x86.avx512.vpdpbusd.512", v16i, [v16i, v16i, v16i])
            else:
                bv = _V(_BFloat(), 32)
                dot = _fn(builder, "llvm.x86.avx512bf16.dpbf16ps.512", v16f, [v16f, bv, bv])
            wbase = builder.mul(tv, builder.mul(kp, ir.Constant(_I64, nw)))
            arow = [builder.mul(builder.add(m0v, ir.Constant(_I64, r)), kp) for r in range(mr)]

            entry = builder.block
            loop = builder.append_basic_block("tile.loop")
            done = builder.append_basic_block("tile.done")
            builder.cbranch(builder.icmp_signed(">", kp, ir.Constant(_I64, 0)), loop, done)
            builder.position_at_end(loop)
            k = builder.phi(_I64)
            k.add_incoming(ir.Constant(_I64, 0), entry)
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
            builder.cbranch(builder.icmp_signed("<", kn, kp), loop, done)

            builder.position_at_end(done)
            res = []
            for i in range(mr * nv):
                ph = builder.phi(acc_ty)
                ph.add_incoming(ir.Constant(acc_ty, None), entry)
                ph.add_incoming(new[i], loop)
                res.append(ph)
            col0 = builder.mul(tv, ir.Constant(_I64, nw))
            for r in range(mr):
                row = builder.add(m0v, ir.Constant(_I64, r))
                obase = builder.add(builder.mul(row, ldo), col0)
                if kind == "int8":
                    sxv = _splat(builder, builder.load(builder.gep(sxp, [row])), v16f)
                for v in range(nv):
                    val = res[r * nv + v]
                    c = builder.add(col0, ir.Constant(_I64, v * LANES))
                    if kind == "int8":
                        zv = builder.load(builder.bitcast(builder.gep(zcp, [c]), v16i.as_pointer()), align=4)
                        sv = builder.load(builder.bitcast(builder.gep(swp, [c]), v16f.as_pointer()), align=4)
                        f = builder.sitofp(builder.sub(val, zv), v16f)
                        val = builder.fmul(f, builder.fmul(sv, sxv))
                    ptr = builder.gep(op, [builder.add(obase, ir.Constant(_I64, v * LANES))])
                    builder.store(val, builder.bitcast(ptr, v16f.as_pointer()), align=4)
            return context.get_dummy_value()

        return types.none(A, W, out, m0, t, sx, sw, zc), codegen

    return tile


# one intrinsic per (kind, NV); NV = vectors of 16 columns per tile, fixed per weight at packing
if HAS_INT8:
    _i8_1, _i8_2, _i8_3, _i8_4 = (_tile("int8", MR, nv) for nv in (1, 2, 3, 4))
if HAS_BF16:
    _bf_1, _bf_2, _bf_3, _bf_4 = (_tile("bf16", MR, nv) for nv in (1, 2, 3, 4))


# Drivers: rows m0..m1 (multiples of MR) x column tiles t0..t1. One plain function per kind (no
# factory closures: numba's cache would recompile them every process, see matmul.py).
if HAS_INT8:
    @njit(cache=True, nogil=True)
    def gemm_int8(A, W, out, sx, sw, zc, m0, m1, t0, t1):
        nv = W.shape[2] // LANES
        for t in range(t0, t1):
            for m in range(m0, m1, MR):
                if nv == 4:
                    _i8_4(A, W, out, m, t, sx, sw, zc)
                elif nv == 3:
                    _i8_3(A, W, out, m, t, sx, sw, zc)
                elif nv == 2:
                    _i8_2(A, W, out, m, t, sx, sw, zc)
                else:
                    _i8_1(A, W, out, m, t, sx, sw, zc)

if HAS_BF16:
    @njit(cache=True, nogil=True)
    def gemm_bf16(A, W, out, sx, sw, zc, m0, m1, t0, t1):
        nv = W.shape[2] // LANES
        for t in range(t0, t1):
            for m in range(m0, m1, MR):
                if nv == 4:
                    _bf_4(A, W, out, m, t, sx, sw, zc)
                elif nv == 3:
                    _bf_3(A, W, out, m, t, sx, sw, zc)
                elif nv == 2:
                    _bf_2(A, W, out, m, t, sx, sw, zc)
                else:
                    _bf_1(A, W, out, m, t, sx, sw, zc)


# ------------------------------------------------------------------ activations (run time)
@njit(cache=True, nogil=True, fastmath=True)
def _amax(x):
    a = np.float32(0.0)
    for v in x:
        a = max(a, abs(v))
    return a


@njit(cache=True, nogil=True)  # no fastmath: x * inv + 128.5 must not fuse into an FMA (the twin)
def _q_u8(src, inv, dst):
    """dst = floor(src * inv + 128.5) as uint8 (src * inv within +-127.x: round half up of the
    zero-point value, the numpy twin's formula)."""
    for i in range(src.shape[0]):
        dst[i] = np.uint8(np.int32(src[i] * inv + np.float32(128.5)))


@njit(cache=True, nogil=True)
def _scale(amax):
    s = amax / np.float32(127.0)
    return s, (np.float32(1.0) / s if amax > 0 else np.float32(0.0))


@njit(cache=True, nogil=True)
def quant_rows_u8(x, q, sx):
    """x f32[M, K] -> q uint8[Mp, KP*4] (a_q + 128; pad columns 128), sx f32[Mp] = max|x|/127
    (rows past M: zero point, scale 0)."""
    M, K = x.shape
    q[M:, :] = 128
    q[:, K:] = 128
    sx[M:] = 0.0
    for m in range(M):
        s, inv = _scale(_amax(x[m]))
        sx[m] = s
        _q_u8(x[m], inv, q[m, :K])


@njit(cache=True, nogil=True)
def quant_im2col_u8(xp, k, d, q, sx, amax_rows):
    """im2col fused with quant_rows_u8: row t of the [T, k*C] im2col of xp ([T + (k-1)d, C]) is
    quantized straight into q (no float32 copy). amax_rows f32[T + (k-1)d] is scratch."""
    R, C = xp.shape
    T = R - (k - 1) * d
    for r in range(R):
        amax_rows[r] = _amax(xp[r])
    q[T:, :] = 128
    q[:, k * C:] = 128
    sx[T:] = 0.0
    for t in range(T):
        amax = np.float32(0.0)
        for j in range(k):
            amax = max(amax, amax_rows[t + j * d])
        s, inv = _scale(amax)
        sx[t] = s
        for j in range(k):
            _q_u8(xp[t + j * d], inv, q[t, j * C:(j + 1) * C])


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


@njit(cache=True, nogil=True)
def im2col_bf16(xb, k, d, q):
    """im2col fused with round_rows_bf16: xb = xp f32[T + (k-1)d, C] as uint32."""
    R, C = xb.shape
    T = R - (k - 1) * d
    for t in range(q.shape[0]):
        if t >= T:
            q[t, :] = 0
            continue
        for j in range(k):
            src = t + j * d
            for c in range(C):
                b = xb[src, c]
                q[t, j * C + c] = np.uint16((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
        for i in range(k * C, q.shape[1]):
            q[t, i] = 0


# ------------------------------------------------------------------ weights (load time)
def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 array -> uint16 bfloat16 bits, nearest even (what the kernels compute)."""
    b = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return ((b + np.uint32(0x7FFF) + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def _nv_for(nb: int) -> int:
    for nv in (4, 3, 2):
        if nb % nv == 0:
            return nv
    return 1 if nb < 4 else 4


class PackedGemm:
    """W[K, N] float32 packed for one kind ("int8" | "bf16"); matmul(a) ~= a @ W."""

    def __init__(self, w: np.ndarray, kind: str):
        if kind == "int8" and not HAS_INT8 or kind == "bf16" and not HAS_BF16:
            raise ValueError(f"{kind} GEMM kernels need AVX512 {'VNNI' if kind == 'int8' else 'BF16'}")
        w = np.asarray(w)
        K, N = w.shape
        self.kind, self.K, self.N = kind, K, N
        P = 4 if kind == "int8" else 2
        self.P = P
        self.KP = KP = -(-K // P)
        nb = -(-N // LANES)
        self.nv = nv = _nv_for(nb)
        self.nt = nt = -(-nb // nv)
        self.npad = npad = nt * nv * LANES
        if kind == "int8":
            wf = np.asarray(w, np.float32)
            amax = np.abs(wf).max(axis=0)
            sw = np.where(amax > 0, amax / np.float32(127), np.float32(0)).astype(np.float32)
            inv = np.where(sw > 0, 1 / np.where(sw > 0, sw, 1), 0).astype(np.float32)
            wq = np.zeros((KP * P, npad), np.int8)
            wq[:K, :N] = np.clip(np.rint(wf * inv), -127, 127).astype(np.int8)
            self.sw = np.zeros(npad, np.float32)
            self.sw[:N] = sw
            self.zc = (128 * wq.astype(np.int32).sum(axis=0)).astype(np.int32)
            vals = wq
        else:
            vals = np.zeros((KP * P, npad), np.uint16)
            vals[:K, :N] = bf16_bits(w)
            self.sw = np.zeros(1, np.float32)
            self.zc = np.zeros(1, np.int32)
        # [KP*P, npad] -> [nt, KP, nv*16, P] -> int32 [nt, KP, nv*16]
        v = vals.reshape(KP, P, nt, nv * LANES).transpose(2, 0, 3, 1)
        self.w = np.ascontiguousarray(v).view(np.int32).reshape(nt, KP, nv * LANES)
        self._kern = gemm_int8 if kind == "int8" else gemm_bf16

    @property
    def nbytes(self) -> int:
        return self.w.nbytes + self.sw.nbytes + self.zc.nbytes

    @property
    def shape(self):
        return (self.K, self.N)

    def act(self, m: int):
        """Scratch for m rows of activations: (packed A int32[Mp, KP], row scales f32[Mp])."""
        mp = -(-m // MR) * MR
        return np.empty((mp, self.KP), np.int32), np.empty(mp, np.float32)

    def load_rows(self, x, A, sx):
        """Quantize / round float32 rows x [M, K] into A (from act())."""
        if self.kind == "int8":
            quant_rows_u8(x, A.view(np.uint8), sx)
        else:
            round_rows_bf16(np.ascontiguousarray(x, np.float32).view(np.uint32), A.view(np.uint16))

    def load_im2col(self, xp, k, d, A, sx):
        """The im2col of xp ([T + (k-1)d, C], k taps, dilation d) into A."""
        if self.kind == "int8":
            quant_im2col_u8(xp, k, d, A.view(np.uint8), sx, np.empty(xp.shape[0], np.float32))
        else:
            im2col_bf16(np.ascontiguousarray(xp, np.float32).view(np.uint32), k, d, A.view(np.uint16))

    def out(self, m: int):
        return np.empty((-(-m // MR) * MR, self.npad), np.float32)

    def run(self, A, sx, out, m0, m1, t0, t1):
        """Micro-tiles rows m0..m1 (multiples of MR) x column tiles t0..t1 into out (from out())."""
        self._kern(A, self.w, out, sx, self.sw, self.zc, m0, m1, t0, t1)

    def matmul(self, x, par=None):
        """x f32[M, K] -> f32[M, N] view; par(fn, n) splits column tiles (or row tiles) over
        threads when given (pool.Rows.par)."""
        M = x.shape[0]
        A, sx = self.act(M)
        self.load_rows(x, A, sx)
        out = self.out(M)
        self.run_split(A, sx, out, M, par)
        return out[:M, :self.N]

    def run_split(self, A, sx, out, M, par=None):
        mp = A.shape[0]
        if par is None or mp * self.KP * self.npad * self.P < (1 << 21):
            self.run(A, sx, out, 0, mp, 0, self.nt)
        elif self.nt >= 4:
            par(lambda a, b: self.run(A, sx, out, 0, mp, a, b), self.nt)
        else:
            par(lambda a, b: self.run(A, sx, out, a * MR, b * MR, 0, self.nt), mp // MR)
