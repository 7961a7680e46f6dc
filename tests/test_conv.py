"""Conv kernels (edgetts.kernels.conv) against plain numpy twins on random odd shapes."""
from __future__ import annotations

import numpy as np
import pytest

from edgetts.kernels import conv as kc

rng = np.random.default_rng(1234)


def _r(*shape):
    return rng.standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------ numpy twins (channel-first)
def conv1d_causal_twin(x_ct, w, b, dilation):
    """PyTorch-semantics causal Conv1d: x [Cin, T], w [Cout, Cin, k], left pad (k-1)*d."""
    cout, cin, k = w.shape
    pad = (k - 1) * dilation
    xp = np.concatenate([np.zeros((cin, pad), np.float64), x_ct.astype(np.float64)], 1)
    T = x_ct.shape[1]
    y = np.zeros((cout, T)) + b[:, None]
    for j in range(k):
        y += w[:, :, j].astype(np.float64) @ xp[:, j * dilation: j * dilation + T]
    return y


def trans_conv_twin(x_ct, w, b, s):
    """ConvTranspose1d (w [Cin, Cout, k], stride s) then drop the last k-s samples."""
    cin, cout, k = w.shape
    T = x_ct.shape[1]
    y = np.zeros((cout, (T - 1) * s + k))
    for i in range(T):
        for r in range(k):
            y[:, i * s + r] += w[:, :, r].astype(np.float64).T @ x_ct[:, i]
    y += b[:, None]
    return y[:, : T * s]


def dwconv_twin(x_ct, w, b):
    """Depthwise causal conv: w [C, 1, k]."""
    C, T = x_ct.shape
    k = w.shape[2]
    xp = np.concatenate([np.zeros((C, k - 1)), x_ct], 1)
    y = np.zeros((C, T)) + b[:, None]
    for j in range(k):
        y += w[:, 0, j][:, None] * xp[:, j: j + T]
    return y


# --------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("cin,cout,k,d,T", [(5, 7, 7, 1, 13), (3, 4, 7, 3, 9), (6, 5, 7, 9, 31),
                                            (4, 6, 3, 1, 1), (7, 3, 1, 1, 5), (16, 9, 7, 2, 2)])
def test_causal_conv(cin, cout, k, d, T):
    x, w, b = _r(cin, T), _r(cout, cin, k), _r(cout)
    ref = conv1d_causal_twin(x, w, b, d)
    wt = kc.conv_weight(w)
    xp = np.concatenate([np.zeros(((k - 1) * d, cin), np.float32), x.T], 0)
    cols = np.empty((T, k * cin), np.float32)     # the codec's causal conv: im2col + one GEMM
    kc.im2col(cols, xp, k, d)
    out = kc.matmul(cols, wt)
    assert np.abs(out + b - ref.T).max() < 1e-4


def trans_conv(x, wt, k, s, b, carry):
    """The codec's transposed conv from the kernels: GEMM, overlap-add rows (in two halves, as
    when split over threads), then the carry update."""
    n, cout = x.shape[0], b.shape[0]
    y3 = kc.matmul(x, wt).reshape(n, cout, k)
    out = np.empty((n * s, cout), np.float32)
    half = n * s // 2
    kc.overlap_add_rows(y3, carry, b, s, out, half, n * s)
    kc.overlap_add_rows(y3, carry, b, s, out, 0, half)
    kc.overlap_carry(y3, s, carry)
    return out


@pytest.mark.parametrize("cin,cout,k,s,T", [(5, 3, 16, 8, 7), (4, 6, 10, 5, 1), (3, 3, 2, 2, 11),
                                            (6, 4, 6, 3, 5), (2, 5, 7, 3, 4)])
def test_trans_conv_and_carry(cin, cout, k, s, T):
    x, w, b = _r(cin, T), _r(cin, cout, k), _r(cout)
    ref = trans_conv_twin(x, w, b, s)
    wt = kc.trans_conv_weight(w)
    carry = np.zeros((k - s, cout), np.float32)
    out = trans_conv(np.ascontiguousarray(x.T), wt, k, s, b, carry)
    assert np.abs(out - ref.T).max() < 1e-4
    # the same input in pieces: the carry makes the result identical
    carry = np.zeros((k - s, cout), np.float32)
    parts, i = [], 0
    for n in (1, 2, 3, 5, 8):
        if i >= T:
            break
        parts.append(trans_conv(np.ascontiguousarray(x.T[i: i + n]), wt, k, s, b, carry))
        i += n
    if i < T:
        parts.append(trans_conv(np.ascontiguousarray(x.T[i:]), wt, k, s, b, carry))
    assert np.abs(np.concatenate(parts) - out).max() == 0.0


@pytest.mark.parametrize("C,T,k", [(5, 9, 7), (33, 1, 7), (8, 17, 3)])
def test_dwconv(C, T, k):
    x, w, b = _r(C, T), _r(C, 1, k), _r(C)
    ref = dwconv_twin(x, w, b)
    xp = np.concatenate([np.zeros((k - 1, C), np.float32), x.T], 0)
    out = np.empty((T, C), np.float32)
    kc.dwconv_causal(xp, np.ascontiguousarray(w[:, 0, :].T), b, out)
    assert np.abs(out - ref.T).max() < 1e-5


def test_im2col():
    xp = _r(20, 3)
    cols = np.empty((8, 4 * 3), np.float32)
    kc.im2col(cols, xp, 4, 3)
    for t in range(8):
        assert np.array_equal(cols[t], np.concatenate([xp[t + 3 * j] for j in range(4)]))


@pytest.mark.parametrize("K,N", [(48, 64), (512, 1024), (37, 5)])
def test_matmul_rows_round_alike(K, N):
    """A single row goes through sgemm, not sgemv, so it rounds like a row of a bigger product up
    to float32 summation order (OpenBLAS's Haswell sgemm kernels sum a row slightly differently
    with the row count M, so this is a tolerance, not equality)."""
    a, b = _r(9, K), _r(K, N)
    full = kc.matmul(a, b)
    assert np.abs(full - a.astype(np.float64) @ b).max() < 1e-3
    tol = 1e-6 * (np.abs(a) @ np.abs(b)).max()   # a few float32 ulps of the sum of |terms|
    for i in range(3):
        one = kc.matmul(a[i:i + 1], b)[0]
        assert np.abs(one - full[i]).max() < tol
    out = np.empty((1, N), np.float32)
    kc.matmul(a[4:5], b, out)
    assert np.abs(out[0] - full[4]).max() < tol


def test_widen_f16():
    """Every float16 bit pattern (zeros, subnormals, normals, inf, nan) widens like numpy's astype."""
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    with np.errstate(invalid="ignore"):  # aarch64 flags the signalling NaNs' conversion
        ref = bits.view(np.float16).astype(np.float32)
    out = np.empty(bits.shape, np.float32)
    kc.widen_f16(bits, out, kc.F16_TABLE)
    finite = np.isfinite(ref)
    assert np.array_equal(out[finite], ref[finite])
    assert np.array_equal(np.isnan(out), np.isnan(ref)) and np.array_equal(out[np.isinf(ref)], ref[np.isinf(ref)])
    w = _r(7, 5).astype(np.float16)
    out2 = np.empty((7, 5), np.float32)
    kc.widen_f16(w.view(np.uint16), out2, kc.F16_TABLE)
    assert np.array_equal(out2, w.astype(np.float32))
