"""edgetts.kernels.matmul / quant against plain numpy twins (gguf-py for the block formats)."""
from __future__ import annotations

import threading

import gguf
import numpy as np
import pytest

from edgetts.kernels import quant
from edgetts.kernels.matmul import QUANT_KERNELS, Matrix, pack_x8
from edgetts.weights import Tensor

QT = gguf.GGMLQuantizationType
TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0")
# (rows, cols): odd row counts, cols = 32 * odd k, one row, many rows
SHAPES = [(1, 32), (7, 96), (37, 160), (64, 224), (3, 1056), (301, 32)]


def rand_w(rng, rows, cols):
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    w[:, ::7] *= 4.0  # uneven magnitudes inside blocks
    return w


# --------------------------------------------------------------------------- numpy twins

def np_dequant(m: Matrix) -> np.ndarray:
    """float64 [rows, cols] weights from the stored bytes, without the kernels."""
    if m.dtype == "F32":
        return m.data.astype(np.float64)
    if m.dtype == "F16":
        return m.data.view(np.float16).astype(np.float64)
    if m.dtype == "BF16":
        return (m.data.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return gguf.quants.dequantize(np.ascontiguousarray(m.data), QT[m.dtype]).astype(np.float64)


def np_roundf(v):
    a = np.abs(v)
    f = np.floor(a)
    return np.sign(v) * (f + np.floor(np.float32(2) * (a - f)))


def np_quantize_act(x: np.ndarray):
    """Twin of quant.quantize_act: int8 blocks of 32, d = max|x|/127 (float32 arithmetic)."""
    b = x.astype(np.float32).reshape(-1, 32)
    d = (np.abs(b).max(axis=1) / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d > 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = np_roundf(b * inv[:, None]).astype(np.int8)
    return q.reshape(-1), d, q.astype(np.int32).sum(axis=1)


def np_matvec_int8(m: Matrix, x: np.ndarray):
    """Twin of the quantized matvec in float64: sum_b d_w d_x sum(q_w q_x). Returns the result
    and sum_b |d_w d_x s_b| (the scale of float32 accumulation error)."""
    xq, xd, _ = np_quantize_act(x)
    rows, nb = m.rows, m.cols // 32
    bpb = 34 if m.dtype == "Q8_0" else 18
    blocks = np.ascontiguousarray(m.data).reshape(rows, nb, bpb)
    dw = blocks[:, :, :2].copy().view(np.float16)[:, :, 0].astype(np.float64)
    if m.dtype == "Q8_0":
        qw = blocks[:, :, 2:].view(np.int8).astype(np.int64)
    else:
        nib = blocks[:, :, 2:]
        qw = np.concatenate([nib & 15, nib >> 4], axis=2).astype(np.int64) - 8
    s = np.einsum("rbi,bi->rb", qw, xq.reshape(nb, 32).astype(np.int64))
    terms = dw * xd.astype(np.float64)[None, :] * s
    return terms.sum(axis=1), np.abs(terms).sum(axis=1)


def act_error_bound(wd: np.ndarray, x: np.ndarray) -> np.ndarray:
    """|W (x - x_hat)| <= sum_b (d_x,b / 2) sum_{i in b} |w_i|: rounding to the int8 grid moves
    each element by at most half a step (plus a few ulps of x / d)."""
    _, xd, _ = np_quantize_act(x)
    step = np.repeat(xd.astype(np.float64), 32) * (0.5 + 1e-5)
    return np.abs(wd) @ step


def f32_slack(wd: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Float32 accumulation error allowance: a few ulps of sum |w x| (length-independent enough
    for these sizes: pairwise/vector accumulation, cols <= 1056)."""
    return 2e-6 * np.sqrt(wd.shape[1]) * (np.abs(wd) @ np.abs(x.astype(np.float64))) + 1e-30


# ---------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("dtype", ["Q8_0", "Q4_0"])
def test_quantizers_bit_exact_with_gguf(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((19, 32 * 9)).astype(np.float32)
    x[0, :32] = 0.0                              # zero block
    x[1, :32] = np.linspace(-1, 1, 32)           # exact ties (x / d = k + 0.5)
    x[2, 40] = -50.0                             # negative max (Q4_0 sign)
    x[3, 64:96] = 1e-6                           # tiny scale
    x[4, 96:128] = np.float32(3.0)               # all equal
    out = np.empty((19, 9 * (34 if dtype == "Q8_0" else 18)), np.uint8)
    (quant.quantize_q8_0 if dtype == "Q8_0" else quant.quantize_q4_0)(x, out)
    np.testing.assert_array_equal(out, gguf.quants.quantize(x, QT[dtype]))


def test_quantize_act_matches_gguf_q8_0_and_twin():
    rng = np.random.default_rng(1)
    for n in (32, 96, 1056):
        x = rng.standard_normal(n).astype(np.float32)
        x[:32] *= 1e-3
        xq = np.empty(n, np.int8)
        xd = np.empty(n // 32, np.float32)
        xs = np.empty(n // 32, np.int32)
        quant.quantize_act(x, xq, xd, xs)
        tq, td, ts = np_quantize_act(x)
        np.testing.assert_array_equal(xq, tq)
        np.testing.assert_array_equal(xd, td)
        np.testing.assert_array_equal(xs, ts)
        ref = gguf.quants.quantize(x[None], QT.Q8_0).reshape(-1, 34)[:, 2:].view(np.int8).ravel()
        np.testing.assert_array_equal(xq, ref)  # same grid as gguf's Q8_0 (scale kept in f32)
    z = np.zeros(64, np.float32)
    quant.quantize_act(z, xq[:64], xd[:2], xs[:2])
    assert not xq[:64].any() and not xd[:2].any()


@pytest.mark.parametrize("dtype", TYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matvec_vs_numpy(dtype, shape):
    rows, cols = shape
    rng = np.random.default_rng(rows * 1000 + cols)
    m = Matrix.from_f32(rand_w(rng, rows, cols), dtype)
    assert (m.rows, m.cols, m.dtype) == (rows, cols, dtype)
    wd = np_dequant(m)
    x = rng.standard_normal(cols).astype(np.float32)
    out = np.full(rows, np.nan, np.float32)
    assert m.matvec(x, out) is out
    ref = wd @ x.astype(np.float64)
    slack = f32_slack(wd, x)
    if dtype in ("Q8_0", "Q4_0"):
        twin, scale = np_matvec_int8(m, x)
        # the kernel computes exactly the twin's integers; only float32 rounding differs
        assert np.all(np.abs(out - twin) <= 1e-5 * scale + 1e-30)
        # and the twin differs from the float64 product by the activation rounding only
        assert np.all(np.abs(out - ref) <= act_error_bound(wd, x) + slack)
    else:
        assert np.all(np.abs(out - ref) <= slack)


@pytest.mark.parametrize("isa", quant.ISAS)
@pytest.mark.parametrize("dtype", ["Q8_0", "Q4_0"])
def test_quant_kernels_every_isa(isa, dtype):
    """Every kernel set this CPU can run (generic, avx2, vnni), matvec and small batch, against
    the integer twin; rows % 8 != 0 exercises the 8-row kernels' tails. The small-batch kernel
    equals the matvec one bit for bit (6 rows: the x86 VNNI kernel's 4-row tile pass and its
    1-row tail; 2 rows: its per-row path)."""
    mv, mm, _ = QUANT_KERNELS[(dtype, isa)]
    rng = np.random.default_rng(11)
    for rows, cols in [(1, 32), (7, 96), (45, 224), (16, 1056)]:
        m = Matrix.from_f32(rand_w(rng, rows, cols), dtype)
        X = rng.standard_normal((6, cols)).astype(np.float32)
        X[1] *= 1e-3
        nb = cols // 32
        XQ = np.empty((6, cols), np.int8)
        XD = np.empty((6, nb), np.float32)
        XS = np.empty((6, nb), np.int32)
        quant.quantize_act_rows(X, XQ, XD, XS)
        Y = np.empty((6, rows), np.float32)
        Y2 = np.empty((2, rows), np.float32)
        p = pack_x8(m.data, dtype)
        assert p.nbytes == rows // 8 * 8 * m.data.shape[1]  # same bytes as the rows it holds
        mm(p, m.data, m.data.view(np.uint16), XQ, XD, XS, Y)
        mm(p, m.data, m.data.view(np.uint16), XQ[4:], XD[4:], XS[4:], Y2)
        np.testing.assert_array_equal(Y2, Y[4:])
        for t in range(6):
            twin, scale = np_matvec_int8(m, X[t])
            out = np.empty(rows, np.float32)
            mv(p, m.data, m.data.view(np.uint16), XQ[t], XD[t], XS[t], out)
            assert np.all(np.abs(out - twin) <= 1e-5 * scale + 1e-30)
            assert np.all(np.abs(Y[t] - twin) <= 1e-5 * scale + 1e-30)
            np.testing.assert_array_equal(Y[t], out)


@pytest.mark.parametrize("dtype", ["Q8_0", "Q4_0"])
def test_small_batch_equals_matvec_bit_for_bit(dtype):
    """The int8 small-batch kernels (32- and 16-row tiles, the 8-row step, the last rows % 8)
    give every activation row exactly what matvec gives it alone: a prompt prefilled at once
    equals its rows fed one by one."""
    rng = np.random.default_rng(11)
    for rows in (8, 16, 24, 40, 56, 64, 72, 13, 100):
        m = Matrix.from_f32(rand_w(rng, rows, 96), dtype)
        for n in (2, 4, 5, 9, 17):
            X = rng.standard_normal((n, 96)).astype(np.float32)
            Y = m.matmul(X)
            out = np.empty(rows, np.float32)
            for t in range(n):
                np.testing.assert_array_equal(Y[t], m.matvec(X[t], out), err_msg=f"{rows} rows, n {n}")


@pytest.mark.parametrize("dtype", TYPES)
@pytest.mark.parametrize("n", [1, 3, 13])
def test_matmul_vs_matvec_and_numpy(dtype, n, monkeypatch):
    from edgetts.kernels import matmul as matmul_mod

    monkeypatch.setattr(matmul_mod, "BLAS_MIN_ROWS", 8)  # n = 13 takes the BLAS-tile path
    BLAS_MIN_ROWS = 8
    rows, cols = 45, 224
    rng = np.random.default_rng(n)
    m = Matrix.from_f32(rand_w(rng, rows, cols), dtype)
    wd = np_dequant(m)
    X = rng.standard_normal((n, cols)).astype(np.float32)
    Y = m.matmul(X)
    assert Y.shape == (n, rows) and Y.dtype == np.float32
    out = np.empty(rows, np.float32)
    for t in range(n):
        ref = wd @ X[t].astype(np.float64)
        slack = f32_slack(wd, X[t])
        mv = m.matvec(X[t], out).copy()
        if dtype in ("Q8_0", "Q4_0"):
            bound = act_error_bound(wd, X[t]) + slack
            assert np.all(np.abs(Y[t] - ref) <= bound)
            if n < BLAS_MIN_ROWS:  # same int8 algorithm as matvec
                _, scale = np_matvec_int8(m, X[t])
                assert np.all(np.abs(Y[t] - mv) <= 2e-5 * scale + 1e-30)
            else:  # BLAS on dequantized tiles: the exact product
                assert np.all(np.abs(Y[t] - ref) <= slack)
        else:
            assert np.all(np.abs(Y[t] - ref) <= slack)
            assert np.all(np.abs(Y[t] - mv) <= 2 * slack)
    # into a given (non-contiguous) out
    big = np.zeros((n, rows + 3), np.float32)
    m.matmul(X, out=big[:, :rows])
    np.testing.assert_array_equal(big[:, :rows], Y)


@pytest.mark.parametrize("dtype", TYPES)
def test_rows_f32_and_to_f32_exact(dtype):
    rng = np.random.default_rng(5)
    m = Matrix.from_f32(rand_w(rng, 13, 96), dtype)
    wd = np_dequant(m)
    full = m.to_f32()
    np.testing.assert_array_equal(full, wd.astype(np.float32))
    out = np.empty(96, np.float32)
    for r in (0, 6, 12):
        np.testing.assert_array_equal(m.rows_f32(r, out), wd[r].astype(np.float32))
    with pytest.raises(IndexError):
        m.rows_f32(13, out)


def test_concat_rows():
    rng = np.random.default_rng(6)
    for dtype in TYPES:
        parts = [Matrix.from_f32(rand_w(rng, r, 64), dtype) for r in (16, 8, 5)]
        fused = Matrix.concat_rows(parts)
        assert (fused.dtype, fused.rows, fused.cols) == (dtype, 29, 64)
        np.testing.assert_array_equal(fused.to_f32(), np.concatenate([p.to_f32() for p in parts]))
        x = rng.standard_normal(64).astype(np.float32)
        y = fused.matvec(x, np.empty(29, np.float32))
        ys = np.concatenate([p.matvec(x, np.empty(p.rows, np.float32)) for p in parts])
        np.testing.assert_allclose(y, ys, rtol=1e-5, atol=1e-5)
    # mixed types convert exactly
    a, b = Matrix.from_f32(rand_w(rng, 4, 64), "Q4_0"), Matrix.from_f32(rand_w(rng, 3, 64), "Q8_0")
    f = Matrix.concat_rows([a, b])
    assert f.dtype == "Q8_0"
    np.testing.assert_array_equal(f.to_f32(), np.concatenate([a.to_f32(), b.to_f32()]))
    c = Matrix.from_f32(rand_w(rng, 2, 64), "BF16")
    f = Matrix.concat_rows([a, c])
    assert f.dtype == "F32"
    np.testing.assert_array_equal(f.to_f32(), np.concatenate([a.to_f32(), c.to_f32()]))
    with pytest.raises(ValueError):
        Matrix.concat_rows([a, Matrix.from_f32(rand_w(rng, 2, 96), "Q4_0")])


def _kquant_bytes(rng, dtype: str, rows: int, cols: int) -> np.ndarray:
    """Random Q4_K / Q6_K blocks with sane float16 scales (random bytes elsewhere)."""
    nbl = cols // 256
    if dtype == "Q4_K":
        blk = rng.integers(0, 256, (rows, nbl, 144), dtype=np.uint8)
        sc = rng.uniform(1e-3, 1e-2, (rows, nbl, 2)).astype(np.float16)
        blk[:, :, 0:4] = sc.view(np.uint8)  # d, dmin
    else:  # Q6_K: ql[128] qh[64] scales int8[16] d f16
        blk = rng.integers(0, 256, (rows, nbl, 210), dtype=np.uint8)
        blk[:, :, 208:210] = rng.uniform(1e-3, 1e-2, (rows, nbl, 1)).astype(np.float16).view(np.uint8)
    return blk.reshape(rows, nbl * blk.shape[2])


@pytest.mark.parametrize("dtype", ["Q4_K", "Q6_K"])
def test_from_tensor_kquants_requantize_to_q8_0(dtype):
    rng = np.random.default_rng(7)
    rows, cols = 5, 512
    data = _kquant_bytes(rng, dtype, rows, cols)
    m = Matrix.from_tensor(Tensor("w", dtype, (rows, cols), data))
    assert (m.dtype, m.rows, m.cols) == ("Q8_0", rows, cols)
    deq = gguf.quants.dequantize(data, QT[dtype]).astype(np.float32)
    assert np.isfinite(deq).all()
    np.testing.assert_array_equal(m.data, gguf.quants.quantize(deq, QT.Q8_0))


def test_from_tensor_passthrough_and_f32_fallback():
    rng = np.random.default_rng(8)
    w = rand_w(rng, 6, 64)
    q = gguf.quants.quantize(w, QT.Q4_0)
    m = Matrix.from_tensor(Tensor("w", "Q4_0", (6, 64), q))
    assert m.dtype == "Q4_0" and np.shares_memory(m.data, q)  # read in place, no copy
    bf = (w.view(np.uint32) >> 16).astype(np.uint16)
    m = Matrix.from_tensor(Tensor("w", "BF16", (2, 3, 64), bf.reshape(2, 3, 64)))
    assert (m.rows, m.cols, m.dtype) == (6, 64, "BF16")
    odd = rng.standard_normal((4, 33))  # float64 storage, cols % 32 != 0 -> F32
    m = Matrix.from_tensor(Tensor("w", "F64", (4, 33), odd))
    assert m.dtype == "F32"
    np.testing.assert_array_equal(m.to_f32(), odd.astype(np.float32))
    with pytest.raises(ValueError):
        Matrix.from_tensor(Tensor("b", "F32", (64,), np.zeros(64, np.float32)))


def test_matvec_two_threads_on_different_matrices():
    rng = np.random.default_rng(9)
    mats = [Matrix.from_f32(rand_w(rng, 300, 256), t) for t in ("Q8_0", "Q4_0")]
    xs = [rng.standard_normal(256).astype(np.float32) for _ in range(8)]
    want = [[m.matvec(x, np.empty(300, np.float32)).copy() for x in xs] for m in mats]
    got = [[None] * len(xs) for _ in mats]

    def work(i):
        out = np.empty(300, np.float32)
        for _ in range(20):
            for j, x in enumerate(xs):
                got[i][j] = mats[i].matvec(x, out).copy()

    th = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    for i in range(2):
        for j in range(len(xs)):
            np.testing.assert_array_equal(got[i][j], want[i][j])


def test_bad_arguments():
    m = Matrix.from_f32(np.ones((4, 64), np.float32), "Q8_0")
    with pytest.raises(ValueError):
        m.matvec(np.ones(32, np.float32), np.empty(4, np.float32))
    with pytest.raises(TypeError):
        m.matvec(np.ones(64, np.float64), np.empty(4, np.float32))
    with pytest.raises(ValueError):
        Matrix("Q4_0", np.zeros((4, 10), np.uint8), 4, 33)
    with pytest.raises(ValueError):
        Matrix("Q4_K", np.zeros((4, 144), np.uint8), 4, 256)
