"""Matrix-vector and matrix-matrix products on weights in their stored type.

    W = Matrix.from_tensor(weights["talker.blk.0.attn_q.weight"])   # [rows=out, cols=in]
    W.matvec(x, out)        # out[rows] = W @ x, x float32[cols]; allocates nothing
    W.matmul(X)             # X float32[n, cols] -> [n, rows]  (prefill, batches)

Stored types read in place (the mmap of the weight file, no dequantized copy):
  F32, F16, BF16 (raw uint16 bits), Q8_0, Q4_0 (uint8[rows, row_bytes], GGML blocks of 32).
Other block types (Q4_K, Q6_K, ...) are dequantized once at load and requantized to Q8_0
(F32 when cols is not a multiple of 32).

Quantized matvec: the activation x is quantized ONCE per call to int8 blocks of 32
(d_x = max|x| / 127, per-block sums kept), then per block an int8 x int8 (Q8_0) or
uint4 x int8 (Q4_0) dot product with int32 accumulation, scaled by d_w * d_x:

    Q8_0:  s = sum((w + 128) * xq) - 128 * sum(xq)     (unsigned x signed, vpdpbusd shape)
    Q4_0:  s = sum(nibble * xq)    -   8 * sum(xq)

The block dot products are LLVM vector IR (edgetts.kernels.quant.dot_*), rows run in
parallel with prange; the thread count is the caller's numba.set_num_threads.

Layout decision: the GGML bytes are used as stored (scale + quants interleaved per block);
the kernels reach about the machine's read bandwidth on them (bench/matmul.py), so no repacked
copy is kept.

Thread safety: each Matrix owns its activation scratch, so two threads may call matvec on
DIFFERENT Matrix objects at once; calls on the same Matrix must not overlap.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .quant import (KERNEL_ISA, QK, Q4_0_BYTES, Q8_0_BYTES, bf16_to_f32, dequantize_q4_0_par,
                    dequantize_q4_0_rows, dequantize_q8_0_par, dequantize_q8_0_rows,
                    dot_u4s8_32, dot_u8s8_32, f16_to_f32, quantize_act, quantize_act_rows,
                    quantize_q8_0, ROWS, rows8_q4_0_avx2, rows8_q4_0_vnni, rows8_q8_0_avx2,
                    rows8_q8_0_vnni)

DTYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0")
_BLOCK_BYTES = {"Q8_0": Q8_0_BYTES, "Q4_0": Q4_0_BYTES}
# matmul: up to this many activation rows use the int8 / direct kernels (weights read once,
# in L1 per row); more rows dequantize tiles of W and call BLAS.
BLAS_MIN_ROWS = 16
_TILE_BYTES = 1 << 20  # float32 bytes of one dequantized tile (fits L2)


# ---------------------------------------------------------------------------- matvec kernels

@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_f32(w, x, out):
    rows, cols = w.shape
    for r in prange(rows):
        acc = np.float32(0.0)
        for i in range(cols):
            acc += w[r, i] * x[i]
        out[r] = acc


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_f16(w, x, out):
    """w uint16[rows, cols] float16 bits."""
    rows, cols = w.shape
    for r in prange(rows):
        acc = np.float32(0.0)
        for i in range(cols):
            acc += f16_to_f32(w[r, i]) * x[i]
        out[r] = acc


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_bf16(w, x, out):
    """w uint16[rows, cols] bfloat16 bits."""
    rows, cols = w.shape
    for r in prange(rows):
        acc = np.float32(0.0)
        for i in range(cols):
            acc += bf16_to_f32(w[r, i]) * x[i]
        out[r] = acc


@njit(cache=True, nogil=True, fastmath=True)
def _row_q8_0(w, wd, r, xq, xd, xs):
    """W[r] . x for Q8_0 w uint8[rows, nb*34] (wd = w as uint16: block b's scale at b*17)."""
    base = r * w.shape[1]
    acc = np.float32(0.0)
    for b in range(xd.shape[0]):
        s = dot_u8s8_32(w, base + b * Q8_0_BYTES + 2, xq, b * QK) - 128 * xs[b]
        acc += (f16_to_f32(wd[r, b * (Q8_0_BYTES // 2)]) * xd[b]) * np.float32(s)
    return acc


@njit(cache=True, nogil=True, fastmath=True)
def _row_q4_0(w, wd, r, xq, xd, xs):
    """W[r] . x for Q4_0 w uint8[rows, nb*18] (wd = w as uint16: block b's scale at b*9)."""
    base = r * w.shape[1]
    acc = np.float32(0.0)
    for b in range(xd.shape[0]):
        s = dot_u4s8_32(w, base + b * Q4_0_BYTES + 2, xq, b * QK) - 8 * xs[b]
        acc += (f16_to_f32(wd[r, b * (Q4_0_BYTES // 2)]) * xd[b]) * np.float32(s)
    return acc


# generic (any CPU LLVM targets): one row at a time, one reduction per block
@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q8_0(w, wd, xq, xd, xs, out):
    """xq int8[nb*32], xd float32[nb], xs int32[nb]: the quantized activation."""
    for r in prange(w.shape[0]):
        out[r] = _row_q8_0(w, wd, r, xq, xd, xs)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q4_0(w, wd, xq, xd, xs, out):
    for r in prange(w.shape[0]):
        out[r] = _row_q4_0(w, wd, r, xq, xd, xs)


# x86: eight rows per step (quant.rows8_*), the last rows % 8 with the generic row
@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q8_0_vnni(w, wd, xq, xd, xs, out):
    rows, rb = w.shape
    for g in prange(rows // ROWS):
        rows8_q8_0_vnni(w, ROWS * g * rb, rb, xq, xd, xs, xd.shape[0], out, ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        out[r] = _row_q8_0(w, wd, r, xq, xd, xs)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q8_0_avx2(w, wd, xq, xd, xs, out):
    rows, rb = w.shape
    for g in prange(rows // ROWS):
        rows8_q8_0_avx2(w, ROWS * g * rb, rb, xq, xd, xs, xd.shape[0], out, ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        out[r] = _row_q8_0(w, wd, r, xq, xd, xs)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q4_0_vnni(w, wd, xq, xd, xs, out):
    rows, rb = w.shape
    for g in prange(rows // ROWS):
        rows8_q4_0_vnni(w, ROWS * g * rb, rb, xq, xd, xs, xd.shape[0], out, ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        out[r] = _row_q4_0(w, wd, r, xq, xd, xs)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matvec_q4_0_avx2(w, wd, xq, xd, xs, out):
    rows, rb = w.shape
    for g in prange(rows // ROWS):
        rows8_q4_0_avx2(w, ROWS * g * rb, rb, xq, xd, xs, xd.shape[0], out, ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        out[r] = _row_q4_0(w, wd, r, xq, xd, xs)


# ------------------------------------------------------------ small-batch kernels (n rows of X)
# out[t, r] = W[r] . X[t] for the quantized activations XQ int8[n, cols], XD/XS [n, nb]; the
# weight rows of one step stay in L1 across the n activations.

@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q8_0(w, wd, XQ, XD, XS, out):
    for r in prange(w.shape[0]):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q8_0(w, wd, r, XQ[t], XD[t], XS[t])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q4_0(w, wd, XQ, XD, XS, out):
    for r in prange(w.shape[0]):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q4_0(w, wd, r, XQ[t], XD[t], XS[t])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q8_0_vnni(w, wd, XQ, XD, XS, out):
    rows, rb = w.shape
    for g in prange(rows // ROWS):
        for t in range(XQ.shape[0]):
            rows8_q8_0_vnni(w, ROWS * g * rb, rb, XQ[t], XD[t], XS[t], XD.shape[1], out[t], ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q8_0(w, wd, r, XQ[t], XD[t], XS[t])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q8_0_avx2(w, wd, XQ, XD, XS, out):
    rows, rb = w.shape
    for g in prange(rows // ROWS):
        for t in range(XQ.shape[0]):
            rows8_q8_0_avx2(w, ROWS * g * rb, rb, XQ[t], XD[t], XS[t], XD.shape[1], out[t], ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q8_0(w, wd, r, XQ[t], XD[t], XS[t])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q4_0_vnni(w, wd, XQ, XD, XS, out):
    rows, rb = w.shape
    for g in prange(rows // ROWS):
        for t in range(XQ.shape[0]):
            rows8_q4_0_vnni(w, ROWS * g * rb, rb, XQ[t], XD[t], XS[t], XD.shape[1], out[t], ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q4_0(w, wd, r, XQ[t], XD[t], XS[t])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def matmul_q4_0_avx2(w, wd, XQ, XD, XS, out):
    rows, rb = w.shape
    for g in prange(rows // ROWS):
        for t in range(XQ.shape[0]):
            rows8_q4_0_avx2(w, ROWS * g * rb, rb, XQ[t], XD[t], XS[t], XD.shape[1], out[t], ROWS * g)
    for r in range(rows // ROWS * ROWS, rows):
        for t in range(XQ.shape[0]):
            out[t, r] = _row_q4_0(w, wd, r, XQ[t], XD[t], XS[t])


# (dtype, isa) -> (matvec kernel, small-batch kernel); Matrix uses KERNEL_ISA's entry
QUANT_KERNELS = {
    ("Q8_0", "generic"): (matvec_q8_0, matmul_q8_0),
    ("Q4_0", "generic"): (matvec_q4_0, matmul_q4_0),
    ("Q8_0", "avx2"): (matvec_q8_0_avx2, matmul_q8_0_avx2),
    ("Q4_0", "avx2"): (matvec_q4_0_avx2, matmul_q4_0_avx2),
    ("Q8_0", "vnni"): (matvec_q8_0_vnni, matmul_q8_0_vnni),
    ("Q4_0", "vnni"): (matvec_q4_0_vnni, matmul_q4_0_vnni),
}


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def dequantize_f16_rows(w, r0, r1, out):
    cols = w.shape[1]
    for r in prange(r0, r1):
        for i in range(cols):
            out[r - r0, i] = f16_to_f32(w[r, i])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def dequantize_bf16_rows(w, r0, r1, out):
    cols = w.shape[1]
    for r in prange(r0, r1):
        for i in range(cols):
            out[r - r0, i] = bf16_to_f32(w[r, i])


@njit(cache=True, parallel=True, nogil=True)
def _dequantize_q8_0_range(w, r0, r1, out):
    for r in prange(r0, r1):
        dequantize_q8_0_rows(w, r, r + 1, out[r - r0:r - r0 + 1])


@njit(cache=True, parallel=True, nogil=True)
def _dequantize_q4_0_range(w, r0, r1, out):
    for r in prange(r0, r1):
        dequantize_q4_0_rows(w, r, r + 1, out[r - r0:r - r0 + 1])


# -------------------------------------------------------------------------------- the class

def _readonly(a: np.ndarray) -> np.ndarray:
    # one numba specialization for mmapped (read-only) and in-memory weights alike
    v = np.ascontiguousarray(a).view(np.ndarray)
    v = v.view()
    v.flags.writeable = False
    return v


class Matrix:
    """Weight matrix [rows=out, cols=in], stored type read in place (no dequantized copy)."""

    def __init__(self, dtype: str, data: np.ndarray, rows: int, cols: int):
        if dtype not in DTYPES:
            raise ValueError(f"Matrix: unsupported type {dtype} (use from_tensor to convert)")
        rows, cols = int(rows), int(cols)
        if dtype in _BLOCK_BYTES:
            if cols % QK:
                raise ValueError(f"Matrix: {dtype} needs cols % 32 == 0, got {cols}")
            shape, npdt = (rows, cols // QK * _BLOCK_BYTES[dtype]), np.uint8
        else:
            shape = (rows, cols)
            npdt = {"F32": np.float32, "F16": np.uint16, "BF16": np.uint16}[dtype]
        if dtype == "F16" and data.dtype == np.float16:
            data = data.view(np.uint16)
        if data.dtype != npdt or data.size != shape[0] * shape[1]:
            raise ValueError(f"Matrix: {dtype} [{rows}x{cols}] wants {np.dtype(npdt).name} data of "
                             f"shape {shape}, got {data.dtype.name} {data.shape}")
        self.dtype = dtype
        self.rows = rows
        self.cols = cols
        self.data = _readonly(data.reshape(shape))
        self.nbytes = int(self.data.nbytes)
        if dtype in _BLOCK_BYTES:
            self._wd = self.data.view(np.uint16)  # block scales, read in the kernel
            nb = cols // QK
            self._xq = np.zeros(cols, np.int8)    # this Matrix's activation scratch
            self._xd = np.zeros(nb, np.float32)
            self._xs = np.zeros(nb, np.int32)
            self._mv, self._mm = QUANT_KERNELS[(dtype, KERNEL_ISA)]

    def __repr__(self) -> str:
        return f"Matrix({self.dtype}, {self.rows}x{self.cols})"

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_tensor(cls, t) -> "Matrix":
        """An edgetts.weights.Tensor (>= 2 dims; leading dims are rows). Types the kernels do
        not read (Q4_K, Q6_K, ...) are dequantized and requantized to Q8_0 (F32 when
        cols % 32 != 0)."""
        if len(t.shape) < 2:
            raise ValueError(f"{t.name}: a matrix needs 2 dims, got shape {t.shape}")
        cols = int(t.shape[-1])
        rows = int(np.prod(t.shape[:-1]))
        if t.dtype in DTYPES:
            data = t.data
            if t.dtype in _BLOCK_BYTES:
                data = data.reshape(rows, -1)
            else:
                data = data.reshape(rows, cols)
            return cls(t.dtype, data, rows, cols)
        x = np.ascontiguousarray(t.numpy().reshape(rows, cols), dtype=np.float32)
        return cls.from_f32(x, "Q8_0" if cols % QK == 0 else "F32")

    @classmethod
    def from_f32(cls, x: np.ndarray, dtype: str = "F32") -> "Matrix":
        """Quantize / convert a float32 [rows, cols] array (gguf-exact for Q8_0 / Q4_0)."""
        from .quant import quantize_q4_0

        x = np.ascontiguousarray(x, dtype=np.float32)
        rows, cols = x.shape
        if dtype == "F32":
            return cls("F32", x, rows, cols)
        if dtype == "F16":
            return cls("F16", x.astype(np.float16).view(np.uint16), rows, cols)
        if dtype == "BF16":  # round to nearest even
            u = x.view(np.uint32).astype(np.uint64)
            bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
            return cls("BF16", bits, rows, cols)
        out = np.empty((rows, cols // QK * _BLOCK_BYTES[dtype]), np.uint8)
        (quantize_q8_0 if dtype == "Q8_0" else quantize_q4_0)(x, out)
        return cls(dtype, out, rows, cols)

    @classmethod
    def concat_rows(cls, mats: list["Matrix"]) -> "Matrix":
        """Stack matrices of equal cols (fused q|k|v, gate|up) into one copy. Mixed types
        convert exactly: {Q4_0, Q8_0} -> Q8_0 (a Q4_0 block is a Q8_0 block with q - 8),
        anything else mixed -> F32."""
        if not mats:
            raise ValueError("concat_rows: no matrices")
        cols = mats[0].cols
        if any(m.cols != cols for m in mats):
            raise ValueError(f"concat_rows: cols differ {[m.cols for m in mats]}")
        types = {m.dtype for m in mats}
        if len(types) == 1:
            dtype = mats[0].dtype
            parts = [m.data for m in mats]
        elif types <= {"Q8_0", "Q4_0"}:
            dtype = "Q8_0"
            parts = [m.data if m.dtype == "Q8_0" else _q4_0_as_q8_0(m.data) for m in mats]
        else:
            dtype = "F32"
            parts = [m.to_f32() for m in mats]
        data = np.concatenate(parts, axis=0)
        return cls(dtype, data, sum(m.rows for m in mats), cols)

    # ------------------------------------------------------------------ products
    def matvec(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out[rows] = W @ x for x float32[cols]. Allocates nothing."""
        if x.shape != (self.cols,) or out.shape != (self.rows,):
            raise ValueError(f"matvec {self}: x {x.shape}, out {out.shape}")
        if x.dtype != np.float32 or out.dtype != np.float32:
            raise TypeError("matvec: x and out must be float32")
        dt = self.dtype
        if dt == "Q8_0" or dt == "Q4_0":
            quantize_act(x, self._xq, self._xd, self._xs)
            self._mv(self.data, self._wd, self._xq, self._xd, self._xs, out)
        elif dt == "F32":
            matvec_f32(self.data, x, out)
        elif dt == "F16":
            matvec_f16(self.data, x, out)
        else:
            matvec_bf16(self.data, x, out)
        return out

    def matmul(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """X float32[n, cols] -> out float32[n, rows] (= X @ W.T)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.cols:
            raise ValueError(f"matmul {self}: X {X.shape}")
        n = X.shape[0]
        if out is None:
            out = np.empty((n, self.rows), np.float32)
        elif out.shape != (n, self.rows):
            raise ValueError(f"matmul {self}: out {out.shape}, want {(n, self.rows)}")
        if n == 0:
            return out
        if self.dtype == "F32":
            np.matmul(X, self.data.T, out=out)
            return out
        if self.dtype in _BLOCK_BYTES and n < BLAS_MIN_ROWS:
            nb = self.cols // QK
            XQ = np.empty((n, self.cols), np.int8)
            XD = np.empty((n, nb), np.float32)
            XS = np.empty((n, nb), np.int32)
            quantize_act_rows(X, XQ, XD, XS)
            res = out if out.flags.c_contiguous else np.empty((n, self.rows), np.float32)
            self._mm(self.data, self._wd, XQ, XD, XS, res)
            if res is not out:
                out[...] = res
            return out
        if n == 1:
            tmp = np.empty(self.rows, np.float32)
            out[0] = self.matvec(X[0], tmp)
            return out
        # dequantize tiles of rows, BLAS each
        tile = max(1, min(self.rows, _TILE_BYTES // (4 * self.cols)))
        buf = np.empty((tile, self.cols), np.float32)
        for r0 in range(0, self.rows, tile):
            r1 = min(self.rows, r0 + tile)
            t = buf[: r1 - r0]
            self._dequantize_range(r0, r1, t)
            out[:, r0:r1] = X @ t.T
        return out

    # ------------------------------------------------------------------ dequantization
    def _dequantize_range(self, r0: int, r1: int, out: np.ndarray) -> None:
        dt = self.dtype
        if dt == "F32":
            out[...] = self.data[r0:r1]
        elif dt == "F16":
            dequantize_f16_rows(self.data, r0, r1, out)
        elif dt == "BF16":
            dequantize_bf16_rows(self.data, r0, r1, out)
        elif dt == "Q8_0":
            _dequantize_q8_0_range(self.data, r0, r1, out)
        else:
            _dequantize_q4_0_range(self.data, r0, r1, out)

    def rows_f32(self, idx: int, out: np.ndarray) -> np.ndarray:
        """Row idx as float32 into out[cols] (embedding lookup). Exact."""
        idx = int(idx)
        if not 0 <= idx < self.rows:
            raise IndexError(f"{self}: row {idx} out of range")
        if out.shape != (self.cols,) or out.dtype != np.float32:
            raise ValueError(f"rows_f32 {self}: out {out.shape} {out.dtype}")
        dt = self.dtype
        if dt == "F32":
            out[:] = self.data[idx]
        elif dt == "F16":
            out[:] = self.data[idx].view(np.float16)
        elif dt == "BF16":
            out.view(np.uint32)[:] = self.data[idx].astype(np.uint32) << 16
        elif dt == "Q8_0":
            dequantize_q8_0_rows(self.data, idx, idx + 1, out.reshape(1, -1))
        else:
            dequantize_q4_0_rows(self.data, idx, idx + 1, out.reshape(1, -1))
        return out

    def to_f32(self) -> np.ndarray:
        """Full dequantized float32 [rows, cols] copy."""
        out = np.empty((self.rows, self.cols), np.float32)
        dt = self.dtype
        if dt == "Q8_0":
            dequantize_q8_0_par(self.data, out)
        elif dt == "Q4_0":
            dequantize_q4_0_par(self.data, out)
        else:
            self._dequantize_range(0, self.rows, out)
        return out


def _q4_0_as_q8_0(q4: np.ndarray) -> np.ndarray:
    """Exact: each Q4_0 block (d, nibbles) -> Q8_0 block (d, nibble - 8)."""
    rows = q4.shape[0]
    b4 = q4.reshape(rows, -1, Q4_0_BYTES)
    nb = b4.shape[1]
    b8 = np.empty((rows, nb, Q8_0_BYTES), np.uint8)
    b8[:, :, :2] = b4[:, :, :2]
    nib = b4[:, :, 2:]
    q = np.concatenate([nib & 15, nib >> 4], axis=2).astype(np.int16) - 8
    b8[:, :, 2:] = q.astype(np.int8).view(np.uint8)
    return b8.reshape(rows, nb * Q8_0_BYTES)
