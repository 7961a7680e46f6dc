"""aarch64 kernels for the Q8_0 / Q4_0 products, registered in matmul.QUANT_KERNELS / ROWS8 under
the ISAs quant.KERNEL_ISA picks on ARM:

  dotprod  ARMv8.2 SDOT (Cortex-A76: Raspberry Pi 5, RK3588; Neoverse N1+ / Graviton 2+; Apple M):
           llvm.aarch64.neon.sdot: 16 int8 x int8 products summed 4 by 4 into int32 lanes;
  neon     ARMv8.0 Advanced SIMD (Cortex-A72: Raspberry Pi 4): smull / smlal(2) widening
           multiplies into int16 lanes, saddlp / sadalp pairwise sums into int32.

Both read the x86 kernels' "x8" layout (matmul.repack_x8: per 8 rows and block, the 8 float16
scales then the 8 rows' quants) and do what the x86 rows8 does, per block of 32:
  t_k = exact int32 dot of row k's block with the int8 activation block      (k = 0..7)
  acc = fma(float(t), float([dw_0 .. dw_7]) * d_x, acc)                       (8 float lanes)
so the results are bit-identical to the x86 kernels (same integers, same float operations in the
same order; tests/test_matmul_arm.py checks both against one twin). Signed x signed throughout:
Q8_0 weights as they are, Q4_0 nibbles re-centred to int8 (q - 8), so no sum(xq) correction.

Exactness of the int16 steps (neon): |xq| <= 127 (quant.quantize_act: d = max|x| / 127), Q8_0
|w| <= 128, so a lane of smull + smlal2 holds two products, |sum| <= 2 * 128 * 127 = 32512 < 2^15;
Q4_0 |w| <= 8: four products, |sum| <= 4096.
"""
from __future__ import annotations

from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from . import matmul as _matmul
from .matmul import ROWS, _data, _fn, _idx, _is_byte_array, _load, _row_q4_0, _row_q8_0
from .quant import QK, Q4_0_BYTES, Q8_0_BYTES

_V = ir.VectorType
_I8, _I16, _I32, _I64, _F32 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64), ir.FloatType()
_B16, _B8, _W8, _D4 = _V(_I8, 16), _V(_I8, 8), _V(_I16, 8), _V(_I32, 4)


def _half(builder, v, hi):
    """Low or high 8 bytes of a <16 x i8> (the high half feeds smull2 / smlal2)."""
    return builder.shuffle_vector(v, v, _idx(range(8, 16) if hi else range(8)))


def _dot4(builder, isa, ws, xs, per_lane):
    """Exact int32 partial dots <4 x i32> of the int8 vectors ws[i] . xs[i] (<16 x i8> pairs);
    the four lanes sum to the block dot. neon: per_lane int16 products are summed in a lane
    before widening (2 for Q8_0, 4 for Q4_0: see the module's bounds)."""
    if isa == "dotprod":
        sdot = _fn(builder, "llvm.aarch64.neon.sdot.v4i32.v16i8", _D4, [_D4, _B16, _B16])
        acc = ir.Constant(_D4, None)
        for w, x in zip(ws, xs):
            acc = builder.call(sdot, [acc, w, x])
        return acc
    smull = _fn(builder, "llvm.aarch64.neon.smull.v8i16", _W8, [_B8, _B8])
    saddlp = _fn(builder, "llvm.aarch64.neon.saddlp.v4i32.v8i16", _D4, [_W8])
    acc, m, n = None, None, 0
    for w, x in zip(ws, xs):
        for hi in (False, True):
            p = builder.call(smull, [_half(builder, w, hi), _half(builder, x, hi)])
            m = p if m is None else builder.add(m, p)  # smlal / smlal2
            n += 1
            if n == per_lane:
                s = builder.call(saddlp, [m])
                acc = s if acc is None else builder.add(acc, s)  # sadalp
                m, n = None, 0
    return acc


def _rows8(kind: str, isa: str):
    """Intrinsic rows8(p, off, nb, xq, xd, xs, out, r): out[r + k] = W[r + k] . x for k < 8,
    p the x8-layout bytes, off = byte offset of this group of rows (matmul._rows8's contract)."""
    bpb = Q8_0_BYTES if kind == "q8_0" else Q4_0_BYTES
    qb = bpb - 2

    @intrinsic
    def rows8(typingctx, p, off, nb, xq, xd, xs, out, r):
        if not (_is_byte_array(p) and _is_byte_array(xq)):
            return None

        def codegen(context, builder, sig, args):
            pa, off, nb, xa, xda, _xsa, outa, r = args
            pp = _data(context, builder, sig.args[0], pa)
            xp = _data(context, builder, sig.args[3], xa)
            xdp = _data(context, builder, sig.args[4], xda)
            outp = _data(context, builder, sig.args[6], outa)
            off = context.cast(builder, off, sig.args[1], types.int64)
            nb = context.cast(builder, nb, sig.args[2], types.int64)
            r = context.cast(builder, r, sig.args[7], types.int64)
            f8 = _V(_F32, 8)
            entry = builder.block
            loop = builder.append_basic_block("rows8.loop")
            done = builder.append_basic_block("rows8.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            b = builder.phi(_I64)
            acc = builder.phi(f8)
            b.add_incoming(ir.Constant(_I64, 0), entry)
            acc.add_incoming(ir.Constant(f8, None), entry)

            xo = builder.mul(b, ir.Constant(_I64, QK))
            x0 = _load(builder, xp, xo, _B16)
            x1 = _load(builder, xp, builder.add(xo, ir.Constant(_I64, 16)), _B16)
            blk = builder.add(off, builder.mul(b, ir.Constant(_I64, ROWS * bpb)))
            ps = []
            for k in range(ROWS):
                q = builder.add(blk, ir.Constant(_I64, 2 * ROWS + k * qb))
                if kind == "q8_0":
                    ws = [_load(builder, pp, q, _B16),
                          _load(builder, pp, builder.add(q, ir.Constant(_I64, 16)), _B16)]
                else:  # value j in the low nibble of byte j, value j + 16 in the high nibble
                    v = _load(builder, pp, q, _B16)
                    eight = ir.Constant(_B16, [8] * 16)
                    ws = [builder.sub(builder.and_(v, ir.Constant(_B16, [15] * 16)), eight),
                          builder.sub(builder.lshr(v, ir.Constant(_B16, [4] * 16)), eight)]
                ps.append(_dot4(builder, isa, ws, [x0, x1], 2 if kind == "q8_0" else 4))
            addp = _fn(builder, "llvm.aarch64.neon.addp.v4i32", _D4, [_D4, _D4])

            def fold(a, b_, c, d):  # [sum a, sum b, sum c, sum d]
                return builder.call(addp, [builder.call(addp, [a, b_]), builder.call(addp, [c, d])])

            t = builder.shuffle_vector(fold(*ps[:4]), fold(*ps[4:]), _idx(range(8)))
            # from here the x86 rows8's float steps, operation for operation
            tf = builder.sitofp(t, f8)
            hv = _load(builder, pp, blk, _V(_I16, ROWS))  # the 8 rows' float16 scales
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

        return types.none(p, off, nb, xq, xd, xs, out, r), codegen

    return rows8


rows8_q8_0_dotprod = _rows8("q8_0", "dotprod")
rows8_q4_0_dotprod = _rows8("q4_0", "dotprod")
rows8_q8_0_neon = _rows8("q8_0", "neon")
rows8_q4_0_neon = _rows8("q4_0", "neon")


# eight rows per step from the x8 copy p, the last rows % 8 with the generic row from w
# (the same drivers as the x86 kernels in matmul.py)
@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q8_0_dotprod(p, w, wd, xq, xd, xs, out):
    rows, nb = w.shape[0], xd.shape[0]
    for g in prange(rows // ROWS):
        rows8_q8_0_dotprod(p, g * nb * ROWS * Q8_0_BYTES, nb, xq, xd, xs, out, ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        out[r] = _row_q8_0(w, wd, r, xq, xd, xs)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q4_0_dotprod(p, w, wd, xq, xd, xs, out):
    rows, nb = w.shape[0], xd.shape[0]
    for g in prange(rows // ROWS):
        rows8_q4_0_dotprod(p, g * nb * ROWS * Q4_0_BYTES, nb, xq, xd, xs, out, ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        out[r] = _row_q4_0(w, wd, r, xq, xd, xs)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q8_0_neon(p, w, wd, xq, xd, xs, out):
    rows, nb = w.shape[0], xd.shape[0]
    for g in prange(rows // ROWS):
        rows8_q8_0_neon(p, g * nb * ROWS * Q8_0_BYTES, nb, xq, xd, xs, out, ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        out[r] = _row_q8_0(w, wd, r, xq, xd, xs)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q4_0_neon(p, w, wd, xq, xd, xs, out):
    rows, nb = w.shape[0], xd.shape[0]
    for g in prange(rows // ROWS):
        rows8_q4_0_neon(p, g * nb * ROWS * Q4_0_BYTES, nb, xq, xd, xs, out, ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        out[r] = _row_q4_0(w, wd, r, xq, xd, xs)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q8_0_dotprod(p, w, wd, XQ, XD, XS, out):
    rows, nb = w.shape[0], XD.shape[1]
    for g in prange(rows // ROWS):
        for t in range(XQ.shape[0]):
            rows8_q8_0_dotprod(p, g * nb * ROWS * Q8_0_BYTES, nb, XQ[t], XD[t], XS[t], out[t], ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q8_0(w, wd, r, XQ[t], XD[t], XS[t])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q4_0_dotprod(p, w, wd, XQ, XD, XS, out):
    rows, nb = w.shape[0], XD.shape[1]
    for g in prange(rows // ROWS):
        for t in range(XQ.shape[0]):
            rows8_q4_0_dotprod(p, g * nb * ROWS * Q4_0_BYTES, nb, XQ[t], XD[t], XS[t], out[t], ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q4_0(w, wd, r, XQ[t], XD[t], XS[t])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q8_0_neon(p, w, wd, XQ, XD, XS, out):
    rows, nb = w.shape[0], XD.shape[1]
    for g in prange(rows // ROWS):
        for t in range(XQ.shape[0]):
            rows8_q8_0_neon(p, g * nb * ROWS * Q8_0_BYTES, nb, XQ[t], XD[t], XS[t], out[t], ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q8_0(w, wd, r, XQ[t], XD[t], XS[t])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q4_0_neon(p, w, wd, XQ, XD, XS, out):
    rows, nb = w.shape[0], XD.shape[1]
    for g in prange(rows // ROWS):
        for t in range(XQ.shape[0]):
            rows8_q4_0_neon(p, g * nb * ROWS * Q4_0_BYTES, nb, XQ[t], XD[t], XS[t], out[t], ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q4_0(w, wd, r, XQ[t], XD[t], XS[t])


# registered in matmul.QUANT_KERNELS: (dtype, isa) -> (matvec, small batch, reads the x8 copy)
# (here, so that importing this module or matmul first both leave the tables whole)
QUANT_KERNELS = {
    ("Q8_0", "dotprod"): (matvec_q8_0_dotprod, matmul_q8_0_dotprod, True),
    ("Q4_0", "dotprod"): (matvec_q4_0_dotprod, matmul_q4_0_dotprod, True),
    ("Q8_0", "neon"): (matvec_q8_0_neon, matmul_q8_0_neon, True),
    ("Q4_0", "neon"): (matvec_q4_0_neon, matmul_q4_0_neon, True),
}
# registered in matmul.ROWS8 (the fused decoder's 8-row step): (dtype, isa) -> rows8 intrinsic
ROWS8 = {
    ("Q8_0", "dotprod"): rows8_q8_0_dotprod, ("Q4_0", "dotprod"): rows8_q4_0_dotprod,
    ("Q8_0", "neon"): rows8_q8_0_neon, ("Q4_0", "neon"): rows8_q4_0_neon,
}
_matmul.QUANT_KERNELS.update(QUANT_KERNELS)
_matmul.ROWS8.update(ROWS8)


# ------------------------------------------------------------------ introspection (tests, bench)

def loop_instructions(dtype: str, isa: str) -> list[str]:
    """The instructions of the block loop of the 8-row kernel (dtype, isa) as compiled here (one
    iteration = one block of 32 for 8 rows: 8 * 34 or 8 * 18 weight bytes). Only for the sets
    this CPU runs (quant.ISAS)."""
    import re

    import numpy as np

    from .matmul import ROWS8, Matrix, pack_x8
    from .quant import quantize_act

    r8 = ROWS8[(dtype, isa)]

    @njit(fastmath=True)
    def only(p, off, nb, xq, xd, xs, out, r):
        r8(p, off, nb, xq, xd, xs, out, r)

    m = Matrix.from_f32(np.ones((ROWS, 2 * QK), np.float32), dtype)
    xq, xd, xs = np.empty(2 * QK, np.int8), np.empty(2, np.float32), np.empty(2, np.int32)
    quantize_act(np.ones(2 * QK, np.float32), xq, xd, xs)
    only(pack_x8(m.data, dtype), 0, 2, xq, xd, xs, np.empty(ROWS, np.float32), 0)
    asm = next(iter(only.inspect_asm().values()))
    lines = [ln.strip() for ln in asm.splitlines()]
    ins = [ln for ln in lines if ln.endswith(":") or (ln and not ln.startswith((".", "//", "#", ";")))]
    labels = {ln[:-1]: i for i, ln in enumerate(ins) if ln.endswith(":")}
    for i, ln in enumerate(ins):  # the first backward branch closes the loop
        tgt = ln.split()[-1]
        if re.match(r"^(b\.\w+|j\w+|cbnz|cbz|tbnz|tbz)\b", ln) and labels.get(tgt, i) < i:
            return [x for x in ins[labels[tgt] + 1:i + 1] if not x.endswith(":")]
    raise RuntimeError(f"no loop in the {dtype} {isa} kernel's assembly")
