"""Single-row decoder steps in ONE parallel region: decoder_step (all layers + final norm +
optional head: a talker step) and predictor_frame (a whole code-predictor frame: 2 prefill rows,
one step per code group, each head's sampling and the next code's embedding inside the region).

Why: the per-op path opens one OpenMP region per matrix-vector product (4 per layer) and makes
~10 Python -> numba calls per layer; with passive OpenMP workers (the library default, see
edgetts/__init__.py) every region pays a worker wake-up: ~430 regions per LM frame. Here every
thread of one `prange(n_threads)` region runs the same fixed program of phases:

    per layer: [qkv rows] [attention per kv head] [o rows] [gate|up rows + SwiGLU] [down rows]

A phase is a list of units (row chunks of a product, kv heads), cut into one contiguous share
per thread. A thread claims the units of its own share first, then helps with the others' (atomic
counters, _claim), and counts finished units in a second counter; the thread finishing the last unit
runs the phase's short serial tail (residual add + RMSNorm + int8 quantization of the next
product's input; in predictor_frame also sampling + embedding) and releases the phase; nobody
enters the next phase before that. No thread waits for a *particular* other thread: if a worker
starts late (passive wake-up) or never, the threads present do all units, so the program cannot
deadlock whatever the runtime does with the iterations. A waiting thread yields its core at once
(sched_yield; SPINS pause-spins first): measured best on a loaded 2-core box, where the codec
thread or another process needs the core.

The arithmetic is the per-op kernels' own (rmsnorm, add_rmsnorm, quantize_act, silu_mul's
expression, the 8-row intrinsics (x86, aarch64), attention in qkv_attention's order, dequantize_*_rows,
sample / argmax), so results equal the per-op path bit for bit (tests/test_decoder.py). Only
quantized matrices in the x8 layout with rows % 8 == 0 run here (models/talker.py decides);
everything else keeps the per-op path.
"""
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, prange, typed, types
from numba.core import cgutils
from numba.extending import intrinsic

from .activations_lm import silu
from .attention import _head_rmsnorm_rope, attend_head, kv_head_rows
from .matmul import ROWS, ROWS8, vnni_quad
from .norm import add_rmsnorm, rmsnorm
from .quant import (KERNEL_ISA, QK, Q4_0_BYTES, Q8_0_BYTES, dequantize_q4_0_rows, dequantize_q8_0_rows,
                    quantize_act, quantize_act_rows)
from .sampling import argmax, sample

KIND_Q8_0, KIND_Q4_0 = 0, 1
KINDS = {"Q8_0": KIND_Q8_0, "Q4_0": KIND_Q4_0}
SUPPORTED = ("Q8_0", KERNEL_ISA) in ROWS8  # the x86 and aarch64 8-row kernels
CHUNK = 128           # rows per claimed unit of a product (multiple of 64); 64-256 measured alike
SPINS = 0             # pause-spins before a waiting thread yields its core (0-2000 measured)
PHASES_PER_LAYER = 4
SHARES = 8            # claim counters per phase (_claim); more threads than this share them
STRIDE = 2 + SHARES   # int64 counters per phase
CFG = 3               # ctr's tail: shares in use, rows per unit, pause-spins

_R8Q8 = ROWS8.get(("Q8_0", KERNEL_ISA), ROWS8[("Q8_0", "avx2")])
_R8Q4 = ROWS8.get(("Q4_0", KERNEL_ISA), ROWS8[("Q4_0", "avx2")])
_ARM = KERNEL_ISA in ("neon", "dotprod")


# ------------------------------------------------------------------------------ named state
@njit(cache=True)
def _typed_list(arrays):
    out = typed.List()
    for a in arrays:
        out.append(a)
    return out


def array_list(arrays) -> "typed.List":
    """numba typed List of same-typed arrays (StackWeights.P, FrameHeads.heads / embd), built in a
    cached function: typed.List(...) from Python compiles the list's methods in every process
    (~0.7 s of load time each)."""
    return _typed_list(tuple(arrays))


class StackWeights(NamedTuple):
    """A decoder stack as the fused kernels read it (L layers, hidden H, head_dim hd)."""
    P: object               # numba typed List of 4L x8 byte arrays: [qkv, o, gate|up, down] per layer
    kinds: np.ndarray       # int64 [4L]: KIND_Q8_0 | KIND_Q4_0 of each P entry
    rows: np.ndarray        # int64 [4L]: output rows of each P entry
    attn_norm: np.ndarray   # f32 [L, H]
    ffn_norm: np.ndarray    # f32 [L, H]
    q_norm: np.ndarray      # f32 [L, hd]
    k_norm: np.ndarray      # f32 [L, hd]
    out_norm: np.ndarray    # f32 [H]
    eps: np.float32
    n_heads: int
    n_kv_heads: int
    cos: np.ndarray         # f32 [positions, hd // 2] RoPE tables
    sin: np.ndarray


class RunState(NamedTuple):
    """Scratch of one row through a stack (A = n_heads * hd, F = ffn width, K = max(H, A))."""
    h: np.ndarray           # f32 [1, H]  normed input of the current product
    qkv: np.ndarray         # f32 [A + 2 n_kv_heads hd]
    att: np.ndarray         # f32 [A]
    r: np.ndarray           # f32 [1, H]  product output added to the residual stream
    gu: np.ndarray          # f32 [1, 2F] gate | up
    act: np.ndarray         # f32 [1, F]  silu(gate) * up
    y: np.ndarray           # f32 [1, H]  final norm
    xq: np.ndarray          # int8 [K]      the quantized product input (QK-blocks)
    xd: np.ndarray          # f32 [K // QK]  its block scales
    xs: np.ndarray          # int32 [K // QK] its block sums
    xq2: np.ndarray         # int8 [F]      the quantized down-projection input
    xd2: np.ndarray         # f32 [F // QK]
    xs2: np.ndarray         # int32 [F // QK]
    scores: np.ndarray      # f32 [n_kv_heads, cap] attention work rows
    ctr: np.ndarray         # int64 phase counters, then chunk and spins (counters())


class FrameHeads(NamedTuple):
    """What predictor_frame needs beyond the stack: per code group j, its head and the
    embedding table of its code (the next step's input)."""
    heads: object           # typed List of x8 byte arrays, one per head
    head_kinds: np.ndarray  # int64 [G - 1]
    embd: object            # typed List of GGML rows (uint8 [vocab, row bytes]), one per table
    embd_kinds: np.ndarray  # int64 [G - 1]
    embd_fd: np.ndarray     # int64 [G - 1] a file descriptor to pread table j's rows from, or -1:
    embd_off: np.ndarray    # int64 [G - 1]   read embd[j] in place; the file offset of its row 0
    row: np.ndarray         # uint8 [max row bytes] the row read from a file
    logits: np.ndarray      # f32 [vocab] the current head's logits
    work: np.ndarray        # f32 [vocab] sampling scratch


# ------------------------------------------------------------------------------ atomics
def _i64_ptr(context, builder, aryty, ary, idx):
    a = context.make_array(aryty)(context, builder, value=ary)
    return builder.gep(a.data, [idx])


@intrinsic
def atomic_add(typingctx, arr, idx, val):
    """old = arr[idx]; arr[idx] += val (sequentially consistent). arr int64[:] C."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        return None

    def codegen(context, builder, sig, args):
        a, i, v = args
        i = context.cast(builder, i, sig.args[1], types.int64)
        v = context.cast(builder, v, sig.args[2], types.int64)
        return builder.atomic_rmw("add", _i64_ptr(context, builder, sig.args[0], a, i), v, "seq_cst")

    return types.int64(arr, idx, val), codegen


@intrinsic
def atomic_load(typingctx, arr, idx):
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        return None

    def codegen(context, builder, sig, args):
        a, i = args
        i = context.cast(builder, i, sig.args[1], types.int64)
        return builder.load_atomic(_i64_ptr(context, builder, sig.args[0], a, i), "acquire", 8)

    return types.int64(arr, idx), codegen


@intrinsic
def cpu_pause(typingctx):
    def codegen(context, builder, sig, args):
        if _ARM:  # YIELD hint
            f = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(32)]),
                                               "llvm.aarch64.hint")
            builder.call(f, [ir.Constant(ir.IntType(32), 1)])
        else:
            f = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                               "llvm.x86.sse2.pause")
            builder.call(f, [])
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def sched_yield(typingctx):
    def codegen(context, builder, sig, args):
        f = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        builder.call(f, [])
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def pread_into(typingctx, fd, buf, nbytes, off):
    """pread(fd, buf's data, nbytes, off) -> the bytes read (libc's, linked by name like
    sched_yield, so the kernel stays cacheable): a table row read from its file inside a region
    (memory.RowTable's read, for a kernel)."""
    if not isinstance(buf, types.Array):
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [ir.IntType(32), ir.IntType(8).as_pointer(), i64, i64])
        f = cgutils.get_or_insert_function(builder.module, fnty, "pread")
        data = context.make_array(sig.args[1])(context, builder, value=args[1]).data
        fd32 = builder.trunc(context.cast(builder, args[0], sig.args[0], types.int64), ir.IntType(32))
        return builder.call(f, [fd32, builder.bitcast(data, ir.IntType(8).as_pointer()),
                                context.cast(builder, args[2], sig.args[2], types.int64),
                                context.cast(builder, args[3], sig.args[3], types.int64)])

    return types.int64(fd, buf, nbytes, off), codegen


# A phase's counters (STRIDE int64 at STRIDE * ph): units finished, released (the thread finishing
# the last unit runs the phase's serial tail, then releases it), then one claim counter per share.
# The units of a phase are cut into `shares` contiguous shares (ctr[-3], the threads of the
# region): thread t claims units of its own share t % shares in order, then of the others'. Each
# thread so streams one contiguous stretch of a matrix, and a thread that starts late (or never)
# has its share done by the others. Measured, one CP layer set at 2 threads: contiguous shares
# 1.10 ms, units claimed from one shared counter (threads alternating 128-row units) 1.38 ms,
# units dealt out alternately 1.71 ms: neighbouring units read by different cores cost bandwidth.
@njit(cache=True, nogil=True)
def _claim(ctr, ph, n, t):
    """Thread t's next unclaimed unit of phase ph (n units), or -1."""
    shares = ctr[ctr.shape[0] - CFG]
    base = STRIDE * ph + 2
    for s in range(shares):
        sh = (t + s) % shares
        lo = n * sh // shares
        hi = n * (sh + 1) // shares
        if lo + atomic_load(ctr, base + sh) >= hi:
            continue   # done: no atomic write on a line the other threads read
        u = lo + atomic_add(ctr, base + sh, 1)
        if u < hi:
            return u
    return -1


@njit(cache=True, nogil=True)
def _finish(ctr, ph, n):
    """Count one finished unit; True for the thread that finished the last one."""
    return atomic_add(ctr, STRIDE * ph, 1) == n - 1


@njit(cache=True, nogil=True)
def _release(ctr, ph):
    atomic_add(ctr, STRIDE * ph + 1, 1)


@njit(cache=True, nogil=True)
def _wait(ctr, ph):
    """Until phase ph is released (ctr[-1]: pause-spins before yielding the core)."""
    spins = 0
    limit = ctr[ctr.shape[0] - 1]
    while atomic_load(ctr, STRIDE * ph + 1) == 0:
        if spins < limit:
            cpu_pause()
            spins += 1
        else:
            sched_yield()


# ----------------------------------------------------------------------------- phases
@njit(cache=True, nogil=True, fastmath=True)
def _rows(kind, p, nb, xq, xd, xs, out, r0, r1):
    """out[r0:r1] = W[r0:r1] . x (r0, r1 multiples of ROWS) from the x8 copy p."""
    if kind == KIND_Q8_0:
        for g in range(r0 // ROWS, r1 // ROWS):
            _R8Q8(p, g * nb * ROWS * Q8_0_BYTES, nb, xq, xd, xs, out, ROWS * g)
    else:
        for g in range(r0 // ROWS, r1 // ROWS):
            _R8Q4(p, g * nb * ROWS * Q4_0_BYTES, nb, xq, xd, xs, out, ROWS * g)


@njit(cache=True, nogil=True)
def _product(ctr, ph, kind, p, rows, xq, xd, xs, out, t):
    """Units of phase ph: out[rows] = W . x in claimed chunks of ctr[-2] rows. True for the
    thread that finished the last unit (it runs the tail and releases the phase)."""
    nb = xd.shape[0]
    chunk = ctr[ctr.shape[0] - 2]
    n = (rows + chunk - 1) // chunk
    last = False
    while True:
        u = _claim(ctr, ph, n, t)
        if u < 0:
            break
        _rows(kind, p, nb, xq, xd, xs, out, u * chunk, min(rows, (u + 1) * chunk))
        last = _finish(ctr, ph, n) or last
    return last


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _silu_mul_range(gu, m, a, b, out):
    """silu_mul(gu, out) for columns a..b of row 0 (same expression)."""
    for j in range(a, b):
        out[0, j] = silu(gu[0, j]) * gu[0, m + j]


@njit(cache=True, nogil=True)
def _swiglu(ctr, ph, kind, p, xq, xd, xs, gu, act, aq, ad, as_, t):
    """Units of phase ph: for a range of ffn columns j, gate rows j and up rows F + j of
    W_gate|up . x, act[j] = silu(gate) * up, and act's int8 blocks there (the down input)."""
    nb = xd.shape[0]
    F = act.shape[1]
    chunk = max(ctr[ctr.shape[0] - 2] // 2 // QK * QK, QK)
    n = (F + chunk - 1) // chunk
    last = False
    while True:
        u = _claim(ctr, ph, n, t)
        if u < 0:
            break
        a, b = u * chunk, min(F, (u + 1) * chunk)
        _rows(kind, p, nb, xq, xd, xs, gu[0], a, b)
        _rows(kind, p, nb, xq, xd, xs, gu[0], F + a, F + b)
        _silu_mul_range(gu, F, a, b, act)
        quantize_act(act[0, a:b], aq[a:b], ad[a // QK:b // QK], as_[a // QK:b // QK])
        last = _finish(ctr, ph, n) or last
    return last


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz"})
def _attend_kv_head(qkv, kvh, n_heads, n_kv_heads, q_norm, k_norm, eps, cos_p, sin_p, p,
                    k_cache, v_cache, out, scores):
    """qkv_attention for one row at position p, restricted to kv head kvh and its query heads
    (same operations in the same order)."""
    hd = k_cache.shape[2]
    cap = k_cache.shape[1]
    group = n_heads // n_kv_heads
    koff = n_heads * hd
    voff = koff + n_kv_heads * hd
    slot = p % cap
    for h in range(kvh * group, (kvh + 1) * group):
        _head_rmsnorm_rope(qkv[h * hd:(h + 1) * hd], q_norm, eps, cos_p, sin_p)
    k = qkv[koff + kvh * hd: koff + (kvh + 1) * hd]
    _head_rmsnorm_rope(k, k_norm, eps, cos_p, sin_p)
    for j in range(hd):
        k_cache[kvh, slot, j] = k[j]
        v_cache[kvh, slot, j] = qkv[voff + kvh * hd + j]
    scale = np.float32(1.0 / np.sqrt(hd))
    n = min(p + 1, cap)
    for h in range(kvh * group, (kvh + 1) * group):
        attend_head(qkv[h * hd:(h + 1) * hd], k_cache, v_cache, kvh, p, n, scale, scores,
                    out[h * hd:(h + 1) * hd])


@njit(cache=True, nogil=True)
def _layers(ph, W, S, x, pos, k_cache, v_cache, quantize_y, t):
    """Every layer for one row x at pos, from phase ph (layer 0's input already normed into S.h
    and quantized into S.xq); the last tail leaves S.y = final norm (quantized into S.xq when
    quantize_y). Per layer 4 phases: qkv + attention per kv head (its q, k, v rows, then its
    attention; tail: quantize att) | o (tail: residual + ffn norm + quantize) | gate|up + SwiGLU
    + quantize | down (tail: residual + next norm + quantize). Returns the next phase. The
    head_dim is a multiple of ROWS (the callers check)."""
    ctr = S.ctr
    n_layers = W.attn_norm.shape[0]
    H = x.shape[1]
    A = S.att.shape[0]
    xq, xd, xs = S.xq, S.xd, S.xs
    hd = k_cache.shape[3]
    group = W.n_heads // W.n_kv_heads
    koff = W.n_heads * hd
    voff = koff + W.n_kv_heads * hd
    nbH = H // QK
    xqH, xdH, xsH = xq[:H], xd[:nbH], xs[:nbH]   # the quantized normed row (product input)
    for li in range(n_layers):
        m = 4 * li
        kind, p = W.kinds[m], W.P[m]
        last = False
        while True:  # per kv head: its q, k and v rows of W_qkv . x, then its attention
            u = _claim(ctr, ph, W.n_kv_heads, t)
            if u < 0:
                break
            _rows(kind, p, nbH, xqH, xdH, xsH, S.qkv, u * group * hd, (u + 1) * group * hd)
            _rows(kind, p, nbH, xqH, xdH, xsH, S.qkv, koff + u * hd, koff + (u + 1) * hd)
            _rows(kind, p, nbH, xqH, xdH, xsH, S.qkv, voff + u * hd, voff + (u + 1) * hd)
            _attend_kv_head(S.qkv, u, W.n_heads, W.n_kv_heads, W.q_norm[li], W.k_norm[li], W.eps,
                            W.cos[pos], W.sin[pos], pos, k_cache[li], v_cache[li], S.att, S.scores[u])
            last = _finish(ctr, ph, W.n_kv_heads) or last
        if last:
            quantize_act(S.att, xq[:A], xd[:A // QK], xs[:A // QK])
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
        if _product(ctr, ph, W.kinds[m + 1], W.P[m + 1], W.rows[m + 1], xq[:A], xd[:A // QK], xs[:A // QK],
                    S.r[0], t):
            add_rmsnorm(x, S.r, W.ffn_norm[li], W.eps, S.h)
            quantize_act(S.h[0], xqH, xdH, xsH)
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
        if _swiglu(ctr, ph, W.kinds[m + 2], W.P[m + 2], xqH, xdH, xsH, S.gu, S.act,
                   S.xq2, S.xd2, S.xs2, t):
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
        if _product(ctr, ph, W.kinds[m + 3], W.P[m + 3], W.rows[m + 3], S.xq2, S.xd2, S.xs2, S.r[0], t):
            if li + 1 < n_layers:
                add_rmsnorm(x, S.r, W.attn_norm[li + 1], W.eps, S.h)
                quantize_act(S.h[0], xqH, xdH, xsH)
            else:
                add_rmsnorm(x, S.r, W.out_norm, W.eps, S.y)
                if quantize_y:
                    quantize_act(S.y[0], xqH, xdH, xsH)
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
    return ph


@njit(cache=True, nogil=True)
def _first_norm(W, S, x):
    H = x.shape[1]
    rmsnorm(x, W.attn_norm[0], W.eps, S.h)
    quantize_act(S.h[0], S.xq[:H], S.xd[:H // QK], S.xs[:H // QK])


@njit(cache=True, nogil=True)
def _program(W, S, x, pos, k_cache, v_cache, head, head_kind, logits, t):
    """What every thread of decoder_step runs."""
    ctr = S.ctr
    H = x.shape[1]
    ph = 0
    if _claim(ctr, ph, 1, t) == 0:
        _first_norm(W, S, x)
        _release(ctr, ph)
    _wait(ctr, ph)
    ph = _layers(ph + 1, W, S, x, pos, k_cache, v_cache, head.size > 0, t)
    if head.size > 0:
        if _product(ctr, ph, head_kind, head, logits.shape[0], S.xq[:H], S.xd[:H // QK], S.xs[:H // QK],
                    logits, t):
            _release(ctr, ph)
        _wait(ctr, ph)


@njit(cache=True, nogil=True)
def _embed_row(kind, rows, r, x):
    """x[0] = row r of GGML rows (Q8_0 or Q4_0) as float32."""
    if kind == KIND_Q8_0:
        dequantize_q8_0_rows(rows, r, r + 1, x)
    else:
        dequantize_q4_0_rows(rows, r, r + 1, x)


@njit(cache=True, nogil=True)
def _frame_program(W, S, F, x_in, x, k_cache, v_cache, us, greedy, temperature, top_k, top_p,
                   codes_out, logits_out, forced, t):
    """What every thread of predictor_frame runs: rows x_in[0], x_in[1] at positions 0, 1, then
    one row per code; the head phase's tail picks the code and embeds it as the next row."""
    ctr = S.ctr
    H = x.shape[1]
    ph = 0
    for pos in range(2):
        if _claim(ctr, ph, 1, t) == 0:
            x[0] = x_in[pos]
            _first_norm(W, S, x)
            _release(ctr, ph)
        _wait(ctr, ph)
        if pos == 0:
            ph = _layers(ph + 1, W, S, x, 0, k_cache, v_cache, False, t)
    ph += 1
    n_codes = F.head_kinds.shape[0]
    for j in range(n_codes):
        ph = _layers(ph, W, S, x, j + 1, k_cache, v_cache, True, t)
        if _product(ctr, ph, F.head_kinds[j], F.heads[j], F.logits.shape[0], S.xq[:H], S.xd[:H // QK],
                    S.xs[:H // QK], F.logits, t):
            if logits_out.shape[0] > 0:
                logits_out[j] = F.logits
            if greedy:
                c = argmax(F.logits)
            else:
                c = sample(F.logits, temperature, top_k, top_p, us[j], F.work)
            if forced.shape[0] > 0:
                c = forced[j]
            codes_out[j] = c
            if j + 1 < n_codes:
                # the next row: E_j(c), read from the table's file where it has one (the pages
                # of a table read in place stay resident: ~31 MB of the 0.6B's over an utterance)
                rb = F.embd[j].shape[1]
                if F.embd_fd[j] >= 0 and pread_into(F.embd_fd[j], F.row, rb, F.embd_off[j] + c * rb) == rb:
                    _embed_row(F.embd_kinds[j], F.row[:rb].reshape(1, rb), 0, x)
                else:
                    _embed_row(F.embd_kinds[j], F.embd[j], c, x)
                _first_norm(W, S, x)
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1


@njit(cache=True, nogil=True, parallel=True)
def predictor_frame(n_threads, W, S, F, x_in, x, k_cache, v_cache, us, greedy, temperature, top_k,
                    top_p, codes_out, logits_out, forced):
    """A whole code-predictor frame (no input projection) in ONE parallel region: codes_out[j]
    for every head j. x_in [2, H] = [h_prev, E(c0)]; x [1, H] the residual row; us[j]: the
    uniform draw of code j; logits_out [n, V] (n = 0: not kept); forced [n] (n = 0: none).
    W, S: StackWeights and RunState (S.ctr from counters(n_layers, n_codes + 1)); F: FrameHeads."""
    _start(S.ctr, n_threads)
    for t in prange(n_threads):
        _frame_program(W, S, F, x_in, x, k_cache, v_cache, us, greedy, temperature, top_k, top_p,
                       codes_out, logits_out, forced, t)


@njit(cache=True, nogil=True)
def _start(ctr, n_threads):
    """Zero the phase counters; the units of each phase in min(n_threads, SHARES) shares."""
    ctr[:ctr.shape[0] - CFG] = 0
    ctr[ctr.shape[0] - CFG] = max(1, min(n_threads, SHARES))


def counters(n_layers: int, steps: int = 1, chunk: int = CHUNK, spins: int = SPINS,
             phases_per_layer: int = PHASES_PER_LAYER) -> np.ndarray:
    """The ctr work array of decoder_step / predictor_frame (or another program of
    phases_per_layer phases a layer and 2 more a step): STRIDE counters per phase (_claim), then
    the shares in use (set per call), rows per claimed unit of a product (a multiple of 64) and
    pause-spins before a waiting thread yields."""
    if chunk % 64:
        raise ValueError("chunk must be a multiple of 64")
    ctr = np.zeros(STRIDE * steps * (phases_per_layer * n_layers + 2) + CFG, np.int64)
    ctr[-2], ctr[-1] = chunk, spins
    return ctr


@njit(cache=True, nogil=True, parallel=True)
def decoder_step(n_threads, W, S, x, pos, k_cache, v_cache, head, head_kind, logits):
    """One row x [1, H] at position pos through every layer (x updated in place), S.y = final
    norm, logits = head . y when head (x8 bytes) is not empty. W: StackWeights, S: RunState
    (S.ctr from counters(n_layers)); k_cache, v_cache [L, n_kv_heads, cap, hd]."""
    _start(S.ctr, n_threads)
    for t in prange(n_threads):
        _program(W, S, x, pos, k_cache, v_cache, head, head_kind, logits, t)


# ------------------------------------------------------------------------------ prefill
# n prompt rows through every layer in ONE parallel region (prefill_layers): the per-op path
# opens five regions a layer (four products and the attention), each a worker wake-up with
# passive OpenMP workers. Per layer five phases: [q|k|v row units] [attention per kv head; tail:
# quantize att] [o row units; tail: residual + ffn norm + quantize] [gate|up row units + SwiGLU +
# quantize, by ffn columns] [down row units; tail: residual + next norm + quantize]. A product
# unit is CHUNK weight rows for every prompt row, computed as Matrix.matmul's small-batch kernel
# does (vnni_quad's tiles on AVX512-VNNI, the 8-row step per row elsewhere), so the result equals
# the per-op forward bit for bit (tests/test_decoder.py).
PREFILL_PHASES = 5


class PrefillState(NamedTuple):
    """Scratch of n rows through a stack (A = n_heads * hd, F = ffn width): the product inputs'
    int8 blocks per width, as quantize_act_rows makes them."""
    h: np.ndarray           # f32 [n, H]  normed input of the current product
    qkv: np.ndarray         # f32 [n, A + 2 n_kv_heads hd]
    att: np.ndarray         # f32 [n, A]
    r: np.ndarray           # f32 [n, H]  product output added to the residual stream
    gu: np.ndarray          # f32 [n, 2F] gate | up
    act: np.ndarray         # f32 [n, F]  silu(gate) * up
    y: np.ndarray           # f32 [n, H]  final norm
    hq: np.ndarray          # int8 [n, H] h quantized (QK blocks), and its scales and sums
    hd: np.ndarray          # f32 [n, H // QK]
    hs: np.ndarray          # int32 [n, H // QK]
    aq: np.ndarray          # int8 [n, A] att quantized
    ad: np.ndarray
    as_: np.ndarray
    fq: np.ndarray          # int8 [n, F] act quantized (the down projection's input)
    fd: np.ndarray
    fs: np.ndarray
    work: np.ndarray        # f32 [n_kv_heads, capacity] attention scratch per kv head
    ctr: np.ndarray         # int64 counters(L, phases_per_layer=PREFILL_PHASES)


def prefill_state(buf, n_kv_heads: int, cap: int, n_layers: int) -> PrefillState:
    """PrefillState over a models.talker.Buffers of n rows (its arrays are the f32 rows)."""
    n, H = buf.h.shape
    A, F = buf.att.shape[1], buf.act.shape[1]

    def q(k):
        return np.zeros((n, k), np.int8), np.zeros((n, k // QK), np.float32), np.zeros((n, k // QK), np.int32)
    return PrefillState(buf.h, buf.qkv, buf.att, buf.r, buf.gu, buf.act, buf.y, *q(H), *q(A), *q(F),
                        np.zeros((n_kv_heads, cap), np.float32),
                        counters(n_layers, phases_per_layer=PREFILL_PHASES))


@njit(cache=True, nogil=True, fastmath=True)
def _groups_vnni(kind, p, nb, ng, XQ, XD, XS, out, g0, g1):
    """out[:, 8 g0 : 8 g1] for every row of X (g0 a multiple of 4; g1 too, or ng): the tiles
    of matmul_q*_vnni."""
    for gq in range(g0 // 4, (g1 + 3) // 4):
        vnni_quad(kind == KIND_Q4_0, p, nb, ng, XQ, XD, XS, out, gq)


@njit(cache=True, nogil=True, fastmath=True)
def _groups_rows8(kind, p, nb, ng, XQ, XD, XS, out, g0, g1):
    """out[:, 8 g0 : 8 g1] for every row of X: the 8-row step per row (matmul_q*_avx2 / arm)."""
    for g in range(g0, g1):
        for t in range(XQ.shape[0]):
            _rows(kind, p, nb, XQ[t], XD[t], XS[t], out[t], ROWS * g, ROWS * (g + 1))


_GROUPS = _groups_vnni if KERNEL_ISA == "vnni" else _groups_rows8


@njit(cache=True, nogil=True)
def _product_n(ctr, ph, kind, p, rows, XQ, XD, XS, out, t):
    """Units of phase ph: out[:, rows] = X . W^T in claimed chunks of ctr[-2] weight rows (a
    multiple of 32: whole tiles). True for the thread that finished the last unit."""
    nb = XD.shape[1]
    ng = rows // ROWS
    gpu = ctr[ctr.shape[0] - 2] // ROWS   # groups per unit
    n = (ng + gpu - 1) // gpu
    last = False
    while True:
        u = _claim(ctr, ph, n, t)
        if u < 0:
            break
        _GROUPS(kind, p, nb, ng, XQ, XD, XS, out, u * gpu, min(ng, (u + 1) * gpu))
        last = _finish(ctr, ph, n) or last
    return last


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _silu_mul_cols(gu, m, a, b, out):
    """silu_mul(gu, out) for columns a..b of every row (same expression)."""
    for r in range(gu.shape[0]):
        for j in range(a, b):
            out[r, j] = silu(gu[r, j]) * gu[r, m + j]


@njit(cache=True, nogil=True)
def _swiglu_n(ctr, ph, kind, p, S, r0, t):
    """Units of phase ph: for a range of ffn columns j (whole tiles), gate rows j and up rows
    F + j of W_gate|up . h for rows r0.., act = silu(gate) * up there, and its int8 blocks."""
    nb = S.hd.shape[1]
    F = S.act.shape[1]
    hq, hd, hs, gu, act, fq, fd, fs = S.hq[r0:], S.hd[r0:], S.hs[r0:], S.gu[r0:], S.act[r0:], S.fq[r0:], \
        S.fd[r0:], S.fs[r0:]
    ng = 2 * F // ROWS
    chunk = max(ctr[ctr.shape[0] - 2] // 2 // 32 * 32, 32)
    n = (F + chunk - 1) // chunk
    last = False
    while True:
        u = _claim(ctr, ph, n, t)
        if u < 0:
            break
        a, b = u * chunk, min(F, (u + 1) * chunk)
        _GROUPS(kind, p, nb, ng, hq, hd, hs, gu, a // ROWS, b // ROWS)
        _GROUPS(kind, p, nb, ng, hq, hd, hs, gu, (F + a) // ROWS, (F + b) // ROWS)
        _silu_mul_cols(gu, F, a, b, act)
        for r in range(act.shape[0]):
            quantize_act(act[r, a:b], fq[r, a:b], fd[r, a // QK:b // QK], fs[r, a // QK:b // QK])
        last = _finish(ctr, ph, n) or last
    return last


@njit(cache=True, nogil=True)
def _prefill_program(W, S, x, pos0, k_cache, v_cache, last, t):
    """What every thread of prefill_layers runs."""
    ctr = S.ctr
    n_layers = W.attn_norm.shape[0]
    n = x.shape[0]
    ph = 0
    if _claim(ctr, ph, 1, t) == 0:
        rmsnorm(x, W.attn_norm[0], W.eps, S.h)
        quantize_act_rows(S.h, S.hq, S.hd, S.hs)
        _release(ctr, ph)
    _wait(ctr, ph)
    for li in range(n_layers):
        m = 4 * li
        # rows past the attention: all of them, or in the last layer only the last `last` rows
        # (the others' keys and values are cached by then, and no one reads their outputs)
        r0 = max(n - last, 0) if li + 1 == n_layers and last > 0 else 0
        ph += 1
        if _product_n(ctr, ph, W.kinds[m], W.P[m], W.rows[m], S.hq, S.hd, S.hs, S.qkv, t):
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
        fin = False
        while True:
            g = _claim(ctr, ph, W.n_kv_heads, t)
            if g < 0:
                break
            kv_head_rows(S.qkv, g, W.n_heads, W.n_kv_heads, W.q_norm[li], W.k_norm[li], W.eps, W.cos, W.sin,
                         pos0, k_cache[li], v_cache[li], S.att, S.work[g])
            fin = _finish(ctr, ph, W.n_kv_heads) or fin
        if fin:
            quantize_act_rows(S.att[r0:], S.aq[r0:], S.ad[r0:], S.as_[r0:])
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
        if _product_n(ctr, ph, W.kinds[m + 1], W.P[m + 1], W.rows[m + 1], S.aq[r0:], S.ad[r0:], S.as_[r0:],
                      S.r[r0:], t):
            add_rmsnorm(x[r0:], S.r[r0:], W.ffn_norm[li], W.eps, S.h[r0:])
            quantize_act_rows(S.h[r0:], S.hq[r0:], S.hd[r0:], S.hs[r0:])
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
        if _swiglu_n(ctr, ph, W.kinds[m + 2], W.P[m + 2], S, r0, t):
            _release(ctr, ph)
        _wait(ctr, ph)
        ph += 1
        if _product_n(ctr, ph, W.kinds[m + 3], W.P[m + 3], W.rows[m + 3], S.fq[r0:], S.fd[r0:], S.fs[r0:],
                      S.r[r0:], t):
            if li + 1 < n_layers:
                add_rmsnorm(x, S.r, W.attn_norm[li + 1], W.eps, S.h)
                quantize_act_rows(S.h, S.hq, S.hd, S.hs)
            else:
                add_rmsnorm(x[r0:], S.r[r0:], W.out_norm, W.eps, S.y[r0:])
            _release(ctr, ph)
        _wait(ctr, ph)


@njit(cache=True, nogil=True, parallel=True)
def prefill_layers(n_threads, W, S, x, pos0, k_cache, v_cache, last):
    """Rows x [n, H] at positions pos0 .. pos0 + n - 1 through every layer (x updated in place),
    S.y = the final norm, in ONE parallel region; last > 0: only the last `last` rows of x and
    S.y are wanted (the last layer's products past the attention skip the others; every row's
    keys and values are cached). W: StackWeights (RoPE tables covering the positions),
    S: PrefillState; k_cache, v_cache [L, n_kv_heads, cap, hd] with cap >= n."""
    _start(S.ctr, n_threads)
    for t in prange(n_threads):
        _prefill_program(W, S, x, pos0, k_cache, v_cache, last, t)
