"""The 8-row quantized kernels (x86: avx2, vnni; aarch64: neon, dotprod) bit for bit against ONE
numpy twin of their arithmetic: exact int32 block dots, then per block
acc = fma(float(t), float32(d_w) * d_x, acc) in float32. Each host checks the sets it can run, so
the aarch64 kernels (checked under emulation) give the x86 kernels' bits. Also: the ISA choice,
and the instructions in the aarch64 loops."""
from __future__ import annotations

import platform
import re

import numpy as np
import pytest
from numba import njit

from edgetts.kernels import quant
from edgetts.kernels.matmul import QUANT_KERNELS, ROWS, Matrix, pack_x8
from edgetts.kernels.matmul_arm import loop_instructions

ARM = platform.machine().lower() in ("aarch64", "arm64")
EIGHT_ROW_ISAS = [i for i in quant.ISAS if i != "generic"]


def fma32(a, b, c):
    """float32 fma(a, b, c) (one rounding) from float64: a * b is exact in float64; the sum's
    float64 rounding error e is exact (two-sum); only a float64 sum lying exactly halfway
    between two float32 values needs e to round the right way."""
    p = a.astype(np.float64) * b.astype(np.float64)
    c = c.astype(np.float64)
    z = p + c
    bb = z - p
    e = (p - (z - bb)) + (c - bb)
    r = z.astype(np.float32)
    d = z - r.astype(np.float64)
    other = np.nextafter(r, np.where(d > 0, np.float32(np.inf), np.float32(-np.inf)).astype(np.float32))
    tie = (d != 0) & (np.abs(d) * 2 == np.abs(other.astype(np.float64) - r.astype(np.float64)))
    return np.where(tie & (e != 0) & (np.sign(e) == np.sign(d)), other, r)


def twin_rows8(data, dtype, xq, xd):
    """out[rows // 8 * 8] of the 8-row kernels, from the GGML bytes and the int8 activation."""
    rows = data.shape[0] // ROWS * ROWS
    bpb = 34 if dtype == "Q8_0" else 18
    nb = xd.shape[0]
    blocks = np.ascontiguousarray(data[:rows]).reshape(rows, nb, bpb)
    dw = blocks[:, :, :2].copy().view(np.float16)[:, :, 0].astype(np.float32)
    if dtype == "Q8_0":
        qw = blocks[:, :, 2:].view(np.int8).astype(np.int64)
    else:
        nib = blocks[:, :, 2:]
        qw = np.concatenate([nib & 15, nib >> 4], axis=2).astype(np.int64) - 8
    t = np.einsum("rbi,bi->rb", qw, xq.reshape(nb, 32).astype(np.int64))
    assert np.abs(t).max(initial=0) < 2 ** 24  # float(t) exact
    acc = np.zeros(rows, np.float32)
    for b in range(nb):
        sc = dw[:, b] * np.float32(xd[b])  # float32 multiply
        acc = fma32(t[:, b].astype(np.float32), sc, acc)
    return acc


def act(x):
    n = x.shape[0]
    xq, xd, xs = np.empty(n, np.int8), np.empty(n // 32, np.float32), np.empty(n // 32, np.int32)
    quant.quantize_act(x, xq, xd, xs)
    return xq, xd, xs


def extreme(dtype, rows, cols, rng):
    """Raw blocks at the int16 limits of the neon kernels: Q8_0 quants -128 / 127, Q4_0 nibbles
    0 / 15 (-8 / 7), random scales (including float16 subnormals)."""
    nb = cols // 32
    bpb = 34 if dtype == "Q8_0" else 18
    d = np.empty((rows, nb, bpb), np.uint8)
    h = rng.standard_normal((rows, nb)).astype(np.float16)
    h[0, 0] = np.float16(3e-7)  # subnormal scale
    d[:, :, :2] = h.view(np.uint8).reshape(rows, nb, 2)
    if dtype == "Q8_0":
        d[:, :, 2:] = rng.choice(np.array([0x80, 0x7F, 0x81, 0x00], np.uint8), (rows, nb, 32))
    else:
        d[:, :, 2:] = rng.choice(np.array([0x00, 0xFF, 0x0F, 0xF0], np.uint8), (rows, nb, 16))
    return Matrix(dtype, d.reshape(rows, nb * bpb), rows, cols)


@pytest.mark.skipif(not EIGHT_ROW_ISAS, reason="no 8-row kernel set on this CPU")
@pytest.mark.parametrize("isa", EIGHT_ROW_ISAS)
@pytest.mark.parametrize("dtype", ["Q8_0", "Q4_0"])
def test_rows8_bit_identical_to_twin(isa, dtype):
    mv, mm, uses_x8 = QUANT_KERNELS[(dtype, isa)]
    assert uses_x8
    rng = np.random.default_rng(3)
    for rows, cols, ext in [(8, 32, False), (45, 224, False), (64, 1056, False), (24, 256, True)]:
        if ext:
            m = extreme(dtype, rows, cols, rng)
        else:
            w = rng.standard_normal((rows, cols)).astype(np.float32)
            w[:, ::7] *= 4.0
            m = Matrix.from_f32(w, dtype)
        p = pack_x8(m.data, dtype)
        X = rng.standard_normal((3, cols)).astype(np.float32)
        X[1] *= 1e-3
        X[2] = np.where(np.arange(cols) % 2, 1.0, -1.0)  # xq = +-127 everywhere
        A = [act(x) for x in X]
        Y = np.empty((3, rows), np.float32)
        mm(p, m.data, m.data.view(np.uint16), np.stack([a[0] for a in A]), np.stack([a[1] for a in A]),
           np.stack([a[2] for a in A]), Y)
        r8 = rows // ROWS * ROWS
        for t, (xq, xd, xs) in enumerate(A):
            twin = twin_rows8(m.data, dtype, xq, xd)
            out = np.full(rows, np.nan, np.float32)
            mv(p, m.data, m.data.view(np.uint16), xq, xd, xs, out)
            np.testing.assert_array_equal(out[:r8].view(np.uint32), twin.view(np.uint32))
            np.testing.assert_array_equal(Y[t, :r8].view(np.uint32), twin.view(np.uint32))
            assert np.all(np.isfinite(out[r8:]))


def test_fma32_twin():
    """The twin's fma against exact rational arithmetic on hard cases (ties, cancellation)."""
    from fractions import Fraction

    rng = np.random.default_rng(0)
    a = rng.standard_normal(2000).astype(np.float32)
    b = rng.standard_normal(2000).astype(np.float32)
    c = (-(a.astype(np.float64) * b)).astype(np.float32)  # cancellation
    c[::2] = rng.standard_normal(1000).astype(np.float32) * 1e-4
    # ties: a*b exactly halfway between float32s after adding c = 0 -> 1 + 2^-24 (+ tiny)
    a[:4] = np.float32(1 + 2 ** -23)
    b[:4] = np.float32(1 + 2 ** -23)
    c[:4] = np.array([0, 2 ** -60, -2 ** -60, 2 ** -40], np.float32)
    got = fma32(a, b, c)
    for i in range(a.size):
        exact = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
        lo = np.float32(float(exact))  # float() rounds correctly to float64: check neighbours
        cands = [lo, np.nextafter(lo, np.float32(np.inf)), np.nextafter(lo, np.float32(-np.inf))]
        best = min(cands, key=lambda v: (abs(Fraction(float(v)) - exact),
                                         int(np.array(v).view(np.uint32)) & 1))
        assert got[i].view(np.uint32) == np.float32(best).view(np.uint32), i


def test_dotprod_target_detection(monkeypatch):
    import numba

    monkeypatch.setattr(numba.config, "CPU_FEATURES", None)
    for name, want in [("cortex-a76", True), ("cortex-a72", False), ("neoverse-n1", True),
                       ("generic", False), ("cortex-a53", False), ("apple-m1", True)]:
        monkeypatch.setattr(numba.config, "CPU_NAME", name)
        assert quant._numba_target_has_dotprod() is want, name
    monkeypatch.setattr(numba.config, "CPU_NAME", "generic")
    monkeypatch.setattr(numba.config, "CPU_FEATURES", "+neon,+dotprod")
    assert quant._numba_target_has_dotprod()
    monkeypatch.setattr(numba.config, "CPU_NAME", "cortex-a76")
    monkeypatch.setattr(numba.config, "CPU_FEATURES", "+neon,-dotprod")
    assert not quant._numba_target_has_dotprod()


@pytest.mark.skipif(not ARM, reason="aarch64 only")
def test_arm_isa_is_the_cpus_and_the_targets():
    """Under qemu: QEMU_CPU=cortex-a76 + NUMBA_CPU_NAME=cortex-a76 -> dotprod (Pi 5),
    cortex-a72 -> neon (Pi 4). numpy's own CPU detection is the independent witness here."""
    import os

    try:
        from numpy._core._multiarray_umath import __cpu_features__ as f
    except ImportError:
        from numpy.core._multiarray_umath import __cpu_features__ as f
    if os.environ.get("EDGETTS_KERNEL_ISA"):
        pytest.skip("ISA forced")
    assert quant._arm_hwcaps() == (bool(f["ASIMD"]), bool(f["ASIMDDP"]))
    want = "dotprod" if f["ASIMDDP"] and quant._numba_target_has_dotprod() else "neon"
    assert quant.KERNEL_ISA == want
    cpu = os.environ.get("NUMBA_CPU_NAME", "")
    if cpu == "cortex-a76":
        assert quant.KERNEL_ISA == "dotprod"
    elif cpu == "cortex-a72":
        assert quant.KERNEL_ISA == "neon"


# ----------------------------------------------------------------- the instructions in the loops

@pytest.mark.parametrize("isa", EIGHT_ROW_ISAS)
def test_loop_found_for_every_8_row_kernel(isa):
    body = loop_instructions("Q4_0", isa)
    assert 20 < len(body) < 400, body


@pytest.mark.skipif(not ARM, reason="aarch64 only")
@pytest.mark.parametrize("isa", [i for i in ("neon", "dotprod") if i in quant.ISAS])
@pytest.mark.parametrize("dtype", ["Q8_0", "Q4_0"])
def test_arm_loop_instructions(isa, dtype):
    body = loop_instructions(dtype, isa)
    ops = [l.split()[0] for l in body]
    scalar_mul = [l for l in body if re.match(r"^(mul|madd|msub|smull|smaddl|umull|umaddl)\s+[wx]\d", l)]
    assert not scalar_mul, scalar_mul  # no scalar multiply per weight
    if isa == "dotprod":
        assert ops.count("sdot") == 16, ops  # 8 rows x 2 (32 int8 products each)
    else:
        assert "sdot" not in ops
        assert ops.count("smull") + ops.count("smull2") + ops.count("smlal") + ops.count("smlal2") == 32, ops
        assert ops.count("saddlp") + ops.count("sadalp") >= 8, ops
