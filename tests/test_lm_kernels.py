"""LM-side numba kernels against plain numpy twins, on random shapes including odd sizes."""
import numpy as np
import pytest
from numba import njit

from edgetts.kernels import activations_lm as A
from edgetts.kernels import attention as T
from edgetts.kernels import expf as E
from edgetts.kernels import norm as N
from edgetts.kernels import rope as R
from edgetts.kernels import sampling as S


# ---------------------------------------------------------------------------- numpy twins
def np_rmsnorm(x, w, eps):
    x64 = x.astype(np.float64)
    return (w * (x64 / np.sqrt((x64 ** 2).mean(-1, keepdims=True) + eps))).astype(np.float32)


def np_rope(x, pos, theta):
    """x [..., hd] at integer positions pos [...]; rotate-half layout."""
    hd = x.shape[-1]
    # the reference's float32 steps, each rounded once: e = 2i/hd, p = theta ** e, inv = 1 / p
    e = np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd)
    inv = np.float32(1) / (float(theta) ** e.astype(np.float64)).astype(np.float32)
    f = (np.asarray(pos, np.float32)[..., None] * inv).astype(np.float64)  # angles in float32, as the reference
    cos = np.concatenate([np.cos(f), np.cos(f)], -1)
    sin = np.concatenate([np.sin(f), np.sin(f)], -1)
    rot = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    return x * cos + rot * sin


def np_attention(q, k, v, pos_q, pos_k):
    """q [L, nh, hd], k/v [P, nkv, hd]; causal by absolute positions."""
    nh, nkv, hd = q.shape[1], k.shape[1], q.shape[2]
    out = np.zeros((q.shape[0], nh, hd))
    for i in range(q.shape[0]):
        for h in range(nh):
            kv = h // (nh // nkv)
            vis = pos_k <= pos_q[i]
            s = k[vis, kv] @ q[i, h] / np.sqrt(hd)
            w = np.exp(s - s.max())
            out[i, h] = (w / w.sum()) @ v[vis, kv]
    return out.reshape(q.shape[0], -1)


def np_sample_probs(logits, temperature, top_k, top_p):
    x = logits.astype(np.float64) / temperature
    if 0 < top_k < x.size:
        thr = np.sort(x)[-top_k]
        x = np.where(x < thr, -np.inf, x)
    p = np.exp(x - x.max())
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(p)
        cum = np.cumsum(p[order])
        remove = cum <= 1 - top_p
        remove[-1] = False
        p[order[remove]] = 0
        p /= p.sum()
    return p


rng = np.random.default_rng(0)


# ---------------------------------------------------------------------------- tests
@pytest.mark.parametrize("n,d", [(1, 7), (3, 64), (5, 129)])
def test_rmsnorm(n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal(d).astype(np.float32)
    out = np.empty_like(x)
    N.rmsnorm(x, w, np.float32(1e-6), out)
    np.testing.assert_allclose(out, np_rmsnorm(x, w, 1e-6), rtol=1e-5, atol=1e-6)
    r = rng.standard_normal((n, d)).astype(np.float32)
    x2 = x.copy()
    N.add_rmsnorm(x2, r, w, np.float32(1e-6), out)
    np.testing.assert_allclose(x2, x + r, rtol=1e-6)
    np.testing.assert_allclose(out, np_rmsnorm(x + r, w, 1e-6), rtol=1e-5, atol=1e-6)


@njit(cache=True)
def _exp_all(x, out):
    for i in range(x.size):
        out[i] = E.exp_f32(x[i])


def test_exp_f32():
    """The vectorizing exp against float64 numpy: ~1 ulp over the float32 range, clamped to the
    normal range outside it (softmax and SiLU feed it anything, including -inf)."""
    x = np.concatenate([np.linspace(-87, 88, 200001, dtype=np.float32), rng.standard_normal(1000).astype(np.float32),
                        np.float32([0.0, -0.0, 1e-30, -1e-30])])
    out = np.empty_like(x)
    _exp_all(x, out)
    np.testing.assert_allclose(out, np.exp(x.astype(np.float64)), rtol=3e-7, atol=0)
    edge = np.float32([-np.inf, -1000.0, -87.5, 88.5, 1000.0, np.inf])
    out = np.empty_like(edge)
    _exp_all(edge, out)
    np.testing.assert_allclose(out, np.exp(np.clip(edge.astype(np.float64), -87, 88)), rtol=3e-7)
    assert np.isfinite(out).all() and (out > 0).all()


@pytest.mark.parametrize("n,m", [(1, 5), (4, 33)])
def test_activations(n, m):
    gu = rng.standard_normal((n, 2 * m)).astype(np.float32)
    out = np.empty((n, m), np.float32)
    A.silu_mul(gu, out)
    g, u = gu[:, :m].astype(np.float64), gu[:, m:]
    np.testing.assert_allclose(out, g / (1 + np.exp(-g)) * u, rtol=1e-5, atol=1e-7)
    x = rng.standard_normal((n, m)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    y = x.copy()
    A.bias_silu(y, b)
    z = x.astype(np.float64) + b
    np.testing.assert_allclose(y, z / (1 + np.exp(-z)), rtol=1e-5, atol=1e-7)
    y = x.copy()
    A.add_bias(y, b)
    np.testing.assert_allclose(y, x + b)


@pytest.mark.parametrize("hd,pos", [(2, 0), (16, 7), (128, 1000)])
def test_head_rmsnorm_rope(hd, pos):
    """The per-head q/k RMSNorm + RoPE rotation the attention kernels run, at one position."""
    cos, sin = R.rope_tables(1e6, hd, pos + 1)
    x = rng.standard_normal(hd).astype(np.float32)
    w = (1 + 0.1 * rng.standard_normal(hd)).astype(np.float32)
    y = x.copy()
    T._head_rmsnorm_rope(y, w, np.float32(1e-6), cos[pos], sin[pos])
    ref = np_rope(np_rmsnorm(x, w, 1e-6).astype(np.float64), pos, 1e6)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("hd", [1, 6, 13, 64, 128])
def test_dot4_is_dot(hd):
    """The vector four-key dot (_dot4, an LLVM intrinsic) gives each key _dot's scalar result bit
    for bit (its eight partial sums as lanes, the tail on the first), and the true dot closely."""
    @njit
    def four(q, k):
        return T._dot4(q, k[0], k[1], k[2], k[3], q.shape[0])

    q = rng.standard_normal(hd).astype(np.float32)
    k = rng.standard_normal((4, hd)).astype(np.float32)
    got = np.array(four(q, k), np.float32)
    one = np.array([T._dot(q, k[r], hd) for r in range(4)], np.float32)
    np.testing.assert_array_equal(got, one)
    np.testing.assert_allclose(got, k.astype(np.float64) @ q.astype(np.float64), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nh,nkv,hd,L,pos0,cap", [(4, 2, 16, 5, 0, 8), (3, 1, 6, 1, 9, 16),
                                                  (2, 2, 8, 3, 4, 32), (4, 2, 8, 1, 11, 5)])
def test_qkv_attention(nh, nkv, hd, L, pos0, cap):
    """Norm + RoPE + cache write + causal GQA attention; includes a ring-buffer wrap (cap < pos)."""
    eps = np.float32(1e-6)
    qn = (1 + 0.1 * rng.standard_normal(hd)).astype(np.float32)
    kn = (1 + 0.1 * rng.standard_normal(hd)).astype(np.float32)
    cos, sin = R.rope_tables(1e6, hd, pos0 + L)
    # history rows fed one by one, then L rows at once
    hist = rng.standard_normal((pos0, (nh + 2 * nkv) * hd)).astype(np.float32)
    rows = rng.standard_normal((L, (nh + 2 * nkv) * hd)).astype(np.float32)
    kc = np.zeros((nkv, cap, hd), np.float32)
    vc = np.zeros_like(kc)
    sc = np.zeros(cap, np.float32)
    for p in range(pos0):
        out1 = np.zeros((1, nh * hd), np.float32)
        T.qkv_attention(hist[p:p + 1].copy(), nh, nkv, qn, kn, eps, cos, sin, p, kc, vc, out1, sc)
    kc1, vc1 = kc.copy(), vc.copy()
    out = np.zeros((L, nh * hd), np.float32)
    T.qkv_attention(rows.copy(), nh, nkv, qn, kn, eps, cos, sin, pos0, kc, vc, out, sc)
    # the same rows fed one at a time (decode steps): the same numbers, bit for bit
    for i in range(L):
        out1 = np.zeros((1, nh * hd), np.float32)
        T.qkv_attention(rows[i:i + 1].copy(), nh, nkv, qn, kn, eps, cos, sin, pos0 + i, kc1, vc1, out1, sc)
        if pos0 + L <= cap:  # (past the capacity a batch row sees slots a later row overwrote)
            np.testing.assert_array_equal(out1[0], out[i])
    allr = np.concatenate([hist, rows]).astype(np.float64)
    P = allr.shape[0]
    pos = np.arange(P)
    q = allr[:, :nh * hd].reshape(P, nh, hd)
    k = allr[:, nh * hd:(nh + nkv) * hd].reshape(P, nkv, hd)
    v = allr[:, (nh + nkv) * hd:].reshape(P, nkv, hd)
    q = np_rope(np_rmsnorm(q, qn, 1e-6).astype(np.float64), pos[:, None], 1e6)
    k = np_rope(np_rmsnorm(k, kn, 1e-6).astype(np.float64), pos[:, None], 1e6)
    # the ring keeps only the last `cap` positions
    keep = pos > (pos0 + L - 1) - cap if L == 1 else np.ones(P, bool)
    ref = np_attention(q[pos0:], k[keep], v[keep], pos[pos0:], pos[keep])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_repetition_penalty_and_mask():
    x = np.array([2.0, -2.0, 1.0, -1.0, 0.5], np.float32)
    seen = np.array([1, 1, 0, 0, 1], bool)
    S.repetition_penalty(x, seen, np.float32(2.0))
    np.testing.assert_allclose(x, [1.0, -4.0, 1.0, -1.0, 0.25])
    S.mask_range(x, 1, 4, 2)
    assert np.isneginf(x[[1, 3]]).all() and x[2] == 1.0 and x[0] == 1.0
    assert S.argmax(np.array([0, 3, 3, 1], np.float32)) == 1


@pytest.mark.parametrize("n,t,k,p", [(7, 1.0, 0, 1.0), (50, 0.9, 5, 1.0), (33, 0.7, 0, 0.8), (64, 1.3, 10, 0.6)])
def test_sample_matches_distribution(n, t, k, p):
    """Inverse-CDF draws over a grid of u reproduce the numpy twin's distribution."""
    logits = (2 * rng.standard_normal(n)).astype(np.float32)
    probs = np_sample_probs(logits, t, k, p)
    work = np.zeros(n, np.float32)
    us = (np.arange(20000) + 0.5) / 20000
    counts = np.zeros(n)
    for u in us:
        counts[S.sample(logits.copy(), t, k, p, u, work)] += 1
    np.testing.assert_allclose(counts / us.size, probs, atol=2e-4)


@pytest.mark.parametrize("n,k", [(1, 1), (7, 3), (100, 50), (2048, 50), (33, 33)])
def test_kth_largest(n, k):
    x = rng.standard_normal(n).astype(np.float32)
    x[::5] = x[0]  # ties
    assert S.kth_largest(x, k, np.zeros(n, np.float32)) == np.sort(x)[-k]


def test_sample_seeded_reproducible():
    logits = rng.standard_normal(100).astype(np.float32)
    work = np.zeros(100, np.float32)
    a = [S.sample(logits.copy(), 0.9, 50, 1.0, u, work) for u in np.random.default_rng(5).random(30)]
    b = [S.sample(logits.copy(), 0.9, 50, 1.0, u, work) for u in np.random.default_rng(5).random(30)]
    assert a == b and len(set(a)) > 3
