"""Row / column splits of codec-sized work over a few Python threads (nogil numba kernels and
single-threaded BLAS calls), and the codec's products on float32 weights.

OpenBLAS's own threads and numba's prange pool spin at every call's barrier, which costs
milliseconds per call as soon as anything else (the LM thread beside the codec) competes for the
cores; futures block instead. `Rows(threads)`:
  rows(fn, x, *args, rows=...)  a row-wise kernel over row ranges of x (and of args[i] for i in rows)
  rows.par(fn, n)               fn(a, b) over a split of range(n)
  rows.gemm(a, w)               a @ w, split by rows of a when it has many, else by columns of w
                                (small-M products are weight-bandwidth bound); w may be a
                                gemm_rows.Panels (the few-row panel kernel, split by panels)
  rows.lin(x, w)                x @ w.T with the numba few-row kernel, w as stored [out, in]
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import codec_attn as ka
from . import conv as kc
from .gemm_rows import Panels


class Rows:
    """n-way parallelism on Python threads (module docstring)."""

    MIN_ELEMS = 1 << 17  # elements below which a row-wise kernel is not split
    MIN_GEMM = 1 << 24  # multiply-adds (~0.2 ms) below which a product is not split
    # the same for the numba few-row kernel: a split costs a thread hand-off (~60 us). With the
    # codec transformer's q|k|v and gate|up stacked and read as F16 (3 / 2 MB per call, from
    # DRAM in a streamed push), splitting from 2^21 multiply-adds pays: one-frame push
    # transformer 10.9-11.7 -> 9.5-10.5 ms, fed 4 frames 3.2 -> 2.7 ms per frame (2^23 before)
    MIN_LIN = 1 << 21

    def __init__(self, threads: int):
        self.threads = max(1, int(threads))
        self.pool = None
        if self.threads > 1:
            self.pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="codec",
                                           initializer=kc.blas_threads, initargs=(1,))

    def par(self, fn, n):
        if self.pool is None or n < 2:
            fn(0, n)
            return
        parts = min(self.threads, n)
        bounds = [(i * n // parts, (i + 1) * n // parts) for i in range(parts)]
        futs = [self.pool.submit(fn, a, b) for a, b in bounds[1:]]
        try:
            fn(*bounds[0])
        finally:
            for f in futs:
                f.result()

    def __call__(self, fn, x, *args, rows=(), extra=0):
        """fn(x[a:b], *args) with every array in `rows` (indexes into args) sliced the same way.

        extra: rows of left context the sliced arrays in `rows` carry beyond x's rows (im2col)."""
        T = x.shape[0]
        if self.pool is None or x.size < self.MIN_ELEMS:
            fn(x, *args)
            return

        def part(a, b):
            aa = list(args)
            for i in rows:
                aa[i] = args[i][a: b + extra]
            fn(x[a:b], *aa)

        self.par(part, T)

    def lin(self, x, w):
        """x [M, K] @ w[N, K]^T with the numba few-row kernel (w as stored: [out, in]),
        output columns split over the threads."""
        if getattr(w, "packed", False):  # a reduced-precision packed weight (lowp.PackedGemm)
            return w.matmul(x, self.par if self.pool else None)
        # float16 weights (the codec transformer's, keep_f16) are read as they are
        w = np.ascontiguousarray(w).view(np.uint16) if w.dtype == np.float16 else as_f32(w)
        M, K = x.shape
        N = w.shape[0]
        M4 = -(-M // 4) * 4
        if M4 != M or not x.flags.c_contiguous:
            xp = np.zeros((M4, K), np.float32)
            xp[:M] = x
        else:
            xp = x
        out = np.empty((M4, N), np.float32)
        if self.pool is None or M4 * K * N < self.MIN_LIN:
            ka.linear_rows(xp, w, out, 0, N)
        else:
            self.par(lambda n0, n1: ka.linear_rows(xp, w, out, n0, n1), N)
        return out[:M] if M4 == M else np.ascontiguousarray(out[:M])

    def gemm(self, a, w, out=None):
        if getattr(w, "packed", False):  # a reduced-precision packed weight (lowp.PackedGemm)
            r = w.matmul(a, self.par if self.pool else None)
            if out is None:
                return r
            out[...] = r
            return out
        M, K = a.shape
        if isinstance(w, Panels):  # a few-row product on the panel kernel (gemm_rows.py)
            split = self.pool is not None and M * K * w.N >= self.MIN_GEMM
            return w.matmul(a, out, self.par if split else None)
        w = as_f32(w)
        N = w.shape[1]
        if out is None:
            out = np.empty((M, N), np.float32)
        if self.pool is None or M * K * N < self.MIN_GEMM:
            return kc.matmul(a, w, out)
        if M >= 64 * self.threads:
            self.par(lambda r0, r1: kc.matmul(a[r0:r1], w, out[r0:r1]), M)
        else:
            blocks = N // 64

            a2 = a
            if M == 1:  # as kc.matmul: one row is the first row of a 2-row sgemm
                a2 = np.zeros((2, K), np.float32)
                a2[0] = a[0]

            def cols(b0, b1):
                c0, c1 = b0 * 64, (N if b1 == blocks else b1 * 64)
                # np.matmul reads the column slice in place (ldb = N); np.dot (kc.matmul) would
                # copy it: the whole weight matrix per call across the threads
                out[:, c0:c1] = np.matmul(a2, w[:, c0:c1])[:M]
            self.par(cols, blocks)
        return out


def default_threads() -> int:
    env = os.environ.get("EDGETTS_CODEC_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(2, os.cpu_count() or 1))


def as_f32(w):
    """A weight as float32: itself, or widened from float16 for this call (keep_f16)."""
    if w.dtype == np.float32:
        return w
    out = np.empty(w.shape, np.float32)
    kc.widen_f16(np.ascontiguousarray(w).view(np.uint16), out, kc.F16_TABLE)
    return out
