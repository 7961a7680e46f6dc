"""Codec element-wise / norm / attention kernels against plain numpy twins, odd shapes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgetts.kernels import codec_attn as ka
from edgetts.kernels import snake as ks
from edgetts.kernels.rope import rope_cos_sin

rng = np.random.default_rng(99)


def _r(*shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("T,C,scale", [(7, 5, 1.0), (1, 33, 3.0), (13, 4, 40.0), (9, 101, 2.0), (3, 96, 1.0)])
def test_snake_beta(T, C, scale):
    x, bias = _r(T, C, scale=scale), _r(C)
    alpha, beta = _r(C, scale=0.3), _r(C, scale=0.3)
    a = np.exp(alpha).astype(np.float32)
    ib = (1.0 / (np.exp(beta) + 1e-9)).astype(np.float32)
    v = (x + bias).astype(np.float64)
    ref = v + (1.0 / (np.exp(beta.astype(np.float64)) + 1e-9)) * np.sin(np.exp(alpha.astype(np.float64)) * v) ** 2
    out = np.empty_like(x)
    ks.snake_beta(x, bias, a, ib, out)
    assert np.abs(out - ref).max() < 1e-4 * max(1.0, scale)
    ks.snake_beta(x, bias, a, ib, x)  # in place
    assert np.array_equal(x, out)


def test_residual_and_scale():
    x, y, b, g = _r(6, 7), _r(6, 7), _r(7), _r(7)
    x1 = x.copy()
    ks.residual_add(x1, y, b)
    assert np.allclose(x1, x + y + b, atol=1e-6)
    x2 = x.copy()
    ks.scale_residual(x2, y, b, g)
    assert np.allclose(x2, x + g * (y + b), atol=1e-6)


@pytest.mark.parametrize("T,C", [(5, 9), (1, 64)])
def test_layer_norm(T, C):
    x, w, b = _r(T, C, scale=2.0) + 3.0, _r(C), _r(C)
    xd = x.astype(np.float64)
    ref = (xd - xd.mean(1, keepdims=True)) / np.sqrt(xd.var(1, keepdims=True) + 1e-6) * w + b
    out = np.empty_like(x)
    ks.layer_norm(x, w, b, 1e-6, out)
    assert np.abs(out - ref).max() < 1e-5


def test_gelu_erf():
    x, b = _r(5, 11, scale=3.0), _r(11)
    v = (x + b).astype(np.float64)
    ref = 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2)))
    ks.gelu_erf(x, b)
    assert np.abs(x - ref).max() < 1e-6


def test_rms_norm():
    x, w = _r(4, 13), _r(13)
    ref = x / np.sqrt((x.astype(np.float64) ** 2).mean(1, keepdims=True) + 1e-5) * w
    out = np.empty_like(x)
    ka.rms_norm(x, w, np.float32(1e-5), out)
    assert np.abs(out - ref).max() < 1e-5


def test_rope():
    T, H, hd = 5, 3, 8
    x = _r(T, H, hd)
    pos = np.arange(7, 7 + T)
    cos, sin = rope_cos_sin(pos, hd, 10000.0)
    inv = 1.0 / 10000.0 ** (np.arange(0, hd, 2) / hd)
    ang = pos[:, None] * inv[None]
    c = np.concatenate([np.cos(ang)] * 2, 1)[:, None]
    s = np.concatenate([np.sin(ang)] * 2, 1)[:, None]
    rot = np.concatenate([-x[..., hd // 2:], x[..., : hd // 2]], -1)
    ref = x * c + rot * s
    ka.rope_rotate(x, cos, sin)
    assert np.abs(x - ref).max() < 1e-5


@pytest.mark.parametrize("n,pos,window,H,Hkv,R", [(5, 0, 3, 4, 4, 7), (1, 6, 7, 4, 2, 7), (9, 4, 5, 2, 1, 13),
                                                  (3, 2, 100, 3, 3, 102), (4, 23, 6, 2, 2, 9)])
def test_ring_attention(n, pos, window, H, Hkv, R):
    """Keys / values stored at row p % R (wrapping), query i at pos + i sees the window before it."""
    hd = 6
    lo = max(pos - window + 1, 0)          # the oldest position any new query sees
    q, k, v = _r(n, H, hd), _r(pos + n, Hkv, hd), _r(pos + n, Hkv, hd)
    kr = np.full((R, Hkv, hd), np.nan, np.float32)
    vr = np.full((R, Hkv, hd), np.nan, np.float32)
    for p in range(lo, pos):               # the past the ring still holds
        kr[p % R], vr[p % R] = k[p], v[p]
    ka.ring_store(kr, vr, k[pos:], v[pos:], pos, n, 0, Hkv)
    scale = np.float32(hd ** -0.5)
    out = np.empty((n, H, hd), np.float32)
    ka.ring_attention(q, kr, vr, pos, n, window, scale, out, 0, H, np.empty(window, np.float32))
    ref = np.zeros((n, H, hd))
    for h in range(H):
        kh = h // (H // Hkv)
        s = (q[:, h].astype(np.float64) @ k[:, kh].T) * scale
        qpos = np.arange(n)[:, None] + pos
        kpos = np.arange(pos + n)[None]
        s[(kpos > qpos) | (kpos <= qpos - window)] = -np.inf
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        ref[:, h] = p @ v[:, kh]
    assert np.abs(out - ref).max() < 1e-5
    # a head range computes those heads alone
    out2 = np.zeros_like(out)
    ka.ring_attention(q, kr, vr, pos, n, window, scale, out2, 1, H, np.empty(window, np.float32))
    assert np.array_equal(out2[:, 1:], out[:, 1:]) and not out2[:, 0].any()


def test_silu_mul():
    g, u = _r(3, 10, scale=3.0), _r(3, 10)
    ref = g / (1 + np.exp(-g.astype(np.float64))) * u
    ka.silu_mul(g, u)
    assert np.abs(g - ref).max() < 1e-5


@pytest.mark.parametrize("M,K,N", [(4, 7, 5), (8, 33, 17), (12, 64, 3)])
def test_linear_rows(M, K, N):
    x, w = _r(M, K), _r(N, K)
    out = np.full((M, N), np.nan, np.float32)
    ka.linear_rows(x, w, out, 0, N)
    assert np.abs(out - x.astype(np.float64) @ w.T.astype(np.float64)).max() < 1e-4
    # a column range, and rows computed alone (padded to 4) round exactly alike
    part = np.zeros((M, N), np.float32)
    ka.linear_rows(x, w, part, 1, N)
    assert np.array_equal(part[:, 1:], out[:, 1:])
    x4 = np.zeros((4, K), np.float32)
    x4[0] = x[M - 1]
    one = np.empty((4, N), np.float32)
    ka.linear_rows(x4, w, one, 0, N)
    assert np.array_equal(one[0], out[M - 1])


@pytest.mark.parametrize("M,K,panels", [(1, 7, 1), (4, 33, 2), (9, 64, 3), (64, 300, 2)])
def test_panel_gemm(M, K, panels):
    """The few-row panel kernel against numpy; every row alike whatever rows come with it and
    however the panels are split (streamed == one-shot)."""
    from edgetts.kernels.gemm_rows import COLS, Panels, gemm_panels

    N = panels * COLS
    x, w = _r(M, K), _r(K, N)
    p = Panels(w)
    y = p.matmul(x)
    assert y.shape == (M, N)
    np.testing.assert_allclose(y, x.astype(np.float64) @ w.astype(np.float64), rtol=1e-5, atol=1e-4)
    for m in range(M):  # each row alone (padded to a tile of 4 rows)
        np.testing.assert_array_equal(p.matmul(x[m:m + 1])[0], y[m])
    xp = np.zeros((-(-M // 4) * 4, K), np.float32)
    xp[:M] = x
    out = np.full((xp.shape[0], N), np.nan, np.float32)
    for p0 in range(panels):  # one panel per call
        gemm_panels(xp, p.wp, out, p0, p0 + 1)
    np.testing.assert_array_equal(out[:M], y)
    into = np.zeros((M, N), np.float32)
    assert p.matmul(x, into) is into and np.array_equal(into, y)


@pytest.mark.parametrize("M,K,panels", [(1, 7, 1), (5, 33, 2), (64, 300, 2)])
def test_panel_gemm_f16(M, K, panels):
    """float16 panels (a checkpoint's F16 weights as stored) widen in registers: the products of
    the float32 panels of the widened weight, bit for bit, from half the bytes."""
    from edgetts.kernels.gemm_rows import COLS, Panels

    N = panels * COLS
    x, w16 = _r(M, K), _r(K, N).astype(np.float16)
    p16, p32 = Panels(w16), Panels(w16.astype(np.float32))
    assert p16.wp.dtype == np.uint16 and p16.nbytes * 2 == p32.nbytes
    y = p16.matmul(x)
    assert np.array_equal(y, p32.matmul(x))
    np.testing.assert_allclose(y, x.astype(np.float64) @ w16.astype(np.float64), rtol=1e-5, atol=1e-4)
    for m in range(M):
        np.testing.assert_array_equal(p16.matmul(x[m:m + 1])[0], y[m])
