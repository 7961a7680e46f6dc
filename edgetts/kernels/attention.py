"""Causal GQA self-attention over a ring-buffer KV cache, with per-head q/k RMSNorm and RoPE.

One call per layer does: q/k per-head RMSNorm -> RoPE -> write k, v into the cache -> attention.
No model knowledge: sizes come from the array shapes and the arguments.
"""
import numpy as np
from numba import njit, prange

from .expf import exp_f32

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


@njit(cache=True, nogil=True, fastmath=_FM)
def attend_head(q, k_cache, v_cache, kv, p, n, scale, scores, o):
    """Softmax attention of one query head q over the n newest cache slots of kv head kv
    (ring buffer, position p newest) into o. scores: scratch of at least n. float32 throughout,
    exp by expf.exp_f32 (a libm exp per score and float64 sums cost ~4x the whole dot products)."""
    cap = k_cache.shape[1]
    hd = k_cache.shape[2]
    newest = p % cap
    m = np.float32(-np.inf)
    for t in range(n):
        s = newest - t
        if s < 0:
            s += cap
        acc = np.float32(0.0)
        for j in range(hd):
            acc += q[j] * k_cache[kv, s, j]
        acc *= scale
        scores[t] = acc
        m = max(m, acc)
    tot = np.float32(0.0)
    for t in range(n):
        e = exp_f32(scores[t] - m)
        scores[t] = e
        tot += e
    inv = np.float32(1.0) / tot
    for j in range(hd):
        o[j] = 0.0
    for t in range(n):
        s = newest - t
        if s < 0:
            s += cap
        w = scores[t] * inv
        for j in range(hd):
            o[j] += w * v_cache[kv, s, j]


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
    for i in range(L):
        p = pos0 + i
        slot = p % cap
        for h in range(n_heads):
            _head_rmsnorm_rope(qkv[i, h * hd:(h + 1) * hd], q_norm, eps, cos[p], sin[p])
        for h in range(n_kv_heads):
            k = qkv[i, koff + h * hd: koff + (h + 1) * hd]
            _head_rmsnorm_rope(k, k_norm, eps, cos[p], sin[p])
            for j in range(hd):
                k_cache[h, slot, j] = k[j]
                v_cache[h, slot, j] = qkv[i, voff + h * hd + j]
    scale = np.float32(1.0 / np.sqrt(hd))
    if L == 1:
        n = min(pos0 + 1, cap)
        for h in range(n_heads):
            attend_head(qkv[0, h * hd:(h + 1) * hd], k_cache, v_cache, h // group, pos0, n, scale, scores,
                        out[0, h * hd:(h + 1) * hd])
        return
    for h in prange(n_heads):  # every head has the same work: rows 0..L-1
        work = np.empty(cap, np.float32)
        for i in range(L):
            p = pos0 + i
            attend_head(qkv[i, h * hd:(h + 1) * hd], k_cache, v_cache, h // group, p, min(p + 1, cap), scale,
                        work, out[i, h * hd:(h + 1) * hd])
