"""The codec decoder's transformer over one push of n frames in ONE parallel region.

Why: the per-op path (models/codec.py, CodecStream._transformer) makes ~60 Python -> numba calls
per push, 34 of them products split over the codec's Python threads (a future hand-off each,
~60 us): a one-frame push spent ~10 ms there for ~3 ms of weight reads, and the one-frame push is
on the time-to-first-audio path. Here every thread of one `prange(n_threads)` region runs the
same program of phases, on decoder.py's machinery (units claimed from contiguous shares, the
thread finishing a phase's last unit runs its serial tail and releases it, a waiting thread
yields its core, a late or absent worker's share is done by the others):

    [input proj]  per layer: [q|k|v columns] [RoPE + ring store + attention, per kv head]
    [o columns; tail: residual + ffn norm] [gate|up columns + SwiGLU] [down columns; tail:
    residual + next norm]  [output proj; tail: bias]

The arithmetic is the per-op path's own kernels (linear_rows, rms_norm, rope_heads, ring_store,
ring_attention, scale_residual, silu_mul's expression), so the output equals it bit for bit
(tests/test_codec_tfm.py) and a row's result does not depend on the push size. Products run
over n4 = n rounded up to 4 rows (linear_rows' row blocks); the padding rows of every product
input stay zero, and everything else touches rows 0..n only.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .activations_lm import silu
from .codec_attn import linear_rows, ring_attention, ring_store, rms_norm, rope_heads
from .decoder import _claim, _finish, _release, _start, _wait, array_list, counters
from .snake import scale_residual

CHUNK = 64   # output columns per claimed unit of a product (a multiple of 64: counters())
PHASES_PER_LAYER = 5   # _program: q|k|v, attention, o, gate|up, down


class TfmWeights(NamedTuple):
    """The transformer as the fused push reads it (L layers, hidden D, heads H / Hkv of hd, ffn
    width I). Matrices as stored, [out, in]: float32, or float16 bits (uint16)."""
    in_w: np.ndarray        # [D, C] input projection (C = the codec's latent width)
    in_b: np.ndarray        # f32 [D]
    qkv: object             # typed List [L] of [(H + 2 Hkv) hd, D]
    o: object               # typed List [L] of [D, H hd]
    gate_up: object         # typed List [L] of [2 I, D]
    down: object            # typed List [L] of [D, I]
    attn_norm: np.ndarray   # f32 [L, D]
    attn_scale: np.ndarray  # f32 [L, D] LayerScale
    ffn_norm: np.ndarray    # f32 [L, D]
    ffn_scale: np.ndarray   # f32 [L, D]
    norm_w: np.ndarray      # f32 [D] final norm
    out_w: np.ndarray       # [C, D] output projection
    out_b: np.ndarray       # f32 [C]
    zero: np.ndarray        # f32 [D] zeros (scale_residual's bias)
    eps: np.float32
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn: int                # I
    window: int             # sliding window (keys per query, itself included)
    scale: np.float32       # hd ** -0.5


class TfmScratch(NamedTuple):
    """Work rows of one push size (n4 rows; rows n..n4 of every product input stay zero)."""
    x: np.ndarray           # f32 [n4, C] the input
    h: np.ndarray           # f32 [n4, D] residual stream
    a: np.ndarray           # f32 [n4, D] normed input of the next product
    qkv: np.ndarray         # f32 [n4, H + 2 Hkv, hd]
    qkv2: np.ndarray        # the same memory as [n4, (H + 2 Hkv) hd]
    att: np.ndarray         # f32 [n4, H, hd]
    att2: np.ndarray        # the same memory as [n4, H hd]
    r: np.ndarray           # f32 [n4, D] a product's output, added to the residual
    gu: np.ndarray          # f32 [n4, 2 I] gate | up
    g: np.ndarray           # f32 [n4, I] silu(gate) * up
    y: np.ndarray           # f32 [n4, C] the output
    scores: np.ndarray      # f32 [Hkv, window] attention scratch per kv head
    ctr: np.ndarray         # int64 phase counters (decoder.counters)


def weights(in_w, in_b, layers, norm_w, out_w, out_b, eps, n_heads, n_kv_heads, head_dim,
            window) -> TfmWeights | None:
    """TfmWeights from the decoder's arrays, or None when a matrix is not a plain array (a
    reduced-precision packed weight) or a kind of matrix comes in more than one dtype: those
    keep the per-op path."""
    def bits(w):
        w = np.ascontiguousarray(w)
        return w.view(np.uint16) if w.dtype == np.float16 else w

    mats = [in_w, out_w] + [getattr(L, k) for L in layers for k in ("qkv", "o", "gate_up", "down")]
    if not all(isinstance(w, np.ndarray) and w.dtype in (np.float16, np.float32) for w in mats):
        return None
    lists = []
    for k in ("qkv", "o", "gate_up", "down"):
        ws = [bits(getattr(L, k)) for L in layers]
        if len({w.dtype for w in ws}) != 1:
            return None
        lists.append(array_list(ws))

    def vecs(k):
        return np.stack([np.asarray(getattr(L, k), np.float32) for L in layers])

    D = np.asarray(norm_w).shape[0]
    return TfmWeights(bits(in_w), np.asarray(in_b, np.float32), *lists,
                      vecs("attn_norm"), vecs("attn_scale"), vecs("ffn_norm"), vecs("ffn_scale"),
                      np.asarray(norm_w, np.float32), bits(out_w), np.asarray(out_b, np.float32),
                      np.zeros(D, np.float32), np.float32(eps), int(n_heads), int(n_kv_heads),
                      int(head_dim), int(layers[0].down.shape[1]), int(window),
                      np.float32(head_dim ** -0.5))


def scratch(W: TfmWeights, n4: int) -> TfmScratch:
    """(Sizes from W's plain fields: indexing a typed List from Python compiles its methods in
    every process, ~0.3 s.)"""
    L = W.attn_norm.shape[0]
    D, C = W.in_w.shape
    H, Hkv, hd, I = W.n_heads, W.n_kv_heads, W.head_dim, W.ffn
    qkv = np.zeros((n4, H + 2 * Hkv, hd), np.float32)
    att = np.zeros((n4, H, hd), np.float32)
    return TfmScratch(np.zeros((n4, C), np.float32), np.zeros((n4, D), np.float32),
                      np.zeros((n4, D), np.float32), qkv, qkv.reshape(n4, -1), att,
                      att.reshape(n4, -1), np.zeros((n4, D), np.float32),
                      np.zeros((n4, 2 * I), np.float32), np.zeros((n4, I), np.float32),
                      np.zeros((n4, W.out_w.shape[0]), np.float32),
                      np.zeros((Hkv, max(W.window, 1)), np.float32),
                      counters(L, chunk=CHUNK, phases_per_layer=PHASES_PER_LAYER))


# ----------------------------------------------------------------------------- phases
@njit(cache=True, nogil=True)
def _cols(ctr, ph, x, w, out, t):
    """Units of phase ph: out[:, cols] = x @ w[cols].T in claimed chunks of ctr[-2] columns.
    True for the thread that finished the last unit."""
    N = w.shape[0]
    chunk = ctr[ctr.shape[0] - 2]
    n = (N + chunk - 1) // chunk
    last = False
    while True:
        u = _claim(ctr, ph, n, t)
        if u < 0:
            break
        linear_rows(x, w, out, u * chunk, min(N, (u + 1) * chunk))
        last = _finish(ctr, ph, n) or last
    return last


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _silu_mul_cols(gu, g, n, a, b):
    """g[t, j] = silu(gate) * up for rows 0..n, columns a..b (silu_mul's expression)."""
    F = g.shape[1]
    for t in range(n):
        for j in range(a, b):
            g[t, j] = silu(gu[t, j]) * gu[t, F + j]


@njit(cache=True, nogil=True)
def _swiglu(ctr, ph, a, w, gu, g, n, t):
    """Units of phase ph: for a range of ffn columns j, gate columns j and up columns I + j of
    a @ W_gate|up^T, then g[:, j] = silu(gate) * up."""
    F = g.shape[1]
    chunk = max(ctr[ctr.shape[0] - 2] // 2 // 4 * 4, 4)
    nu = (F + chunk - 1) // chunk
    last = False
    while True:
        u = _claim(ctr, ph, nu, t)
        if u < 0:
            break
        c0, c1 = u * chunk, min(F, (u + 1) * chunk)
        linear_rows(a, w, gu, c0, c1)
        linear_rows(a, w, gu, F + c0, F + c1)
        _silu_mul_cols(gu, g, n, c0, c1)
        last = _finish(ctr, ph, nu) or last
    return last


@njit(cache=True, nogil=True)
def _attention(ctr, ph, W, S, kr, vr, cos, sin, pos, n, t):
    """Units of phase ph: per kv head g, RoPE on its rows of k and of its query heads, k and v
    into the ring, attention of its query heads."""
    H, Hkv = W.n_heads, W.n_kv_heads
    group = H // Hkv
    q = S.qkv[:, :H]
    k = S.qkv[:, H:H + Hkv]
    v = S.qkv[:, H + Hkv:]
    last = False
    while True:
        g = _claim(ctr, ph, Hkv, t)
        if g < 0:
            break
        rope_heads(q, cos, sin, n, g * group, (g + 1) * group)
        rope_heads(k, cos, sin, n, g, g + 1)
        ring_store(kr, vr, k, v, pos, n, g, g + 1)
        ring_attention(q, kr, vr, pos, n, W.window, W.scale, S.att, g * group, (g + 1) * group,
                       S.scores[g])
        last = _finish(ctr, ph, Hkv) or last
    return last


@njit(cache=True, nogil=True)
def _add_rows(y, b, n):
    for t in range(n):
        for c in range(y.shape[1]):
            y[t, c] += b[c]


@njit(cache=True, nogil=True)
def _program(W, S, kr, vr, cos, sin, pos, n, t):
    """What every thread of push runs."""
    ctr = S.ctr
    L = W.attn_norm.shape[0]
    ph = 0
    if _cols(ctr, ph, S.x, W.in_w, S.h, t):
        _add_rows(S.h, W.in_b, n)
        rms_norm(S.h[:n], W.attn_norm[0], W.eps, S.a[:n])
        _release(ctr, ph)
    _wait(ctr, ph)
    ph += 1
    for li in range(L):
        if _cols(ctr, ph, S.a, W.qkv[li], S.qkv2, t):
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
        if _attention(ctr, ph, W, S, kr[li], vr[li], cos, sin, pos, n, t):
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
        if _cols(ctr, ph, S.att2, W.o[li], S.r, t):
            scale_residual(S.h[:n], S.r[:n], W.zero, W.attn_scale[li])
            rms_norm(S.h[:n], W.ffn_norm[li], W.eps, S.a[:n])
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
        if _swiglu(ctr, ph, S.a, W.gate_up[li], S.gu, S.g, n, t):
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
        if _cols(ctr, ph, S.g, W.down[li], S.r, t):
            scale_residual(S.h[:n], S.r[:n], W.zero, W.ffn_scale[li])
            if li + 1 < L:
                rms_norm(S.h[:n], W.attn_norm[li + 1], W.eps, S.a[:n])
            else:
                rms_norm(S.h[:n], W.norm_w, W.eps, S.a[:n])
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
    if _cols(ctr, ph, S.a, W.out_w, S.y, t):
        _add_rows(S.y, W.out_b, n)
        _release(ctr, ph)
    _wait(ctr, ph)


@njit(cache=True, nogil=True, parallel=True)
def push(n_threads, W, S, kr, vr, cos, sin, pos, n):
    """Rows 0..n of S.x at positions pos..pos+n-1 through the transformer: S.y[:n]. kr, vr
    [L, R, Hkv, hd] key / value rings (R >= window + n - 1) updated; cos, sin [n, hd / 2] the
    RoPE tables of those positions."""
    _start(S.ctr, n_threads)
    for t in prange(n_threads):
        _program(W, S, kr, vr, cos, sin, pos, n, t)
