"""1-D convolutions, time-major: activations are [T, C] float32, C contiguous.

Causal conv (k taps, dilation d): the caller hands the input with its (k-1)*d rows of left
context already in front (`xp` = [state; x]), so streaming and one-shot run the same code.
  * causal conv    -> im2col (k row blocks copied side by side, tap-major) + one GEMM with
                      K = k*Cin against w[j*Cin + i, o] = W_torch[o, i, j] ([k*Cin, Cout],
                      conv_weight). Measured on this CPU (1 thread): 84-100 GFLOP/s, against
                      65-92 for k shifted GEMMs summed (no im2col copy, but k GEMMs of K = Cin).
  * transposed conv -> one GEMM X[n, Cin] . W[Cin, Cout*k], which is the PyTorch ConvTranspose1d
                      weight [Cin, Cout, k] as stored (no copy), then overlap_add_rows (numba,
                      splittable by output rows) and overlap_carry: the k-s trailing rows that
                      belong to the next call.
The models compose these (edgetts/models/codec.py _Conv, _TransConv) and split them over threads.
  * dwconv_causal  -> depthwise (groups = C) causal conv, numba.
No bias inside the GEMM paths: the caller fuses it into the next element-wise kernel.
BLAS calls go through `matmul` (np.dot, which releases the GIL).
"""
from __future__ import annotations

import numpy as np
from numba import njit


def _openblas_libs():
    """numpy's bundled OpenBLAS libraries (ctypes.CDLL), usually one."""
    import ctypes
    import glob
    import os

    base = os.path.dirname(os.path.dirname(np.__file__))
    libs = []
    for lib in sorted(glob.glob(os.path.join(base, "numpy.libs", "*openblas*.so*"))):
        try:
            libs.append(ctypes.CDLL(lib))
        except OSError:
            continue
    return libs


_OPENBLAS = _openblas_libs()


def _find_blas_threads_local():
    """numpy's OpenBLAS `openblas_set_num_threads_local` (per calling thread), or None."""
    import ctypes

    for lib in _OPENBLAS:
        fn = getattr(lib, "openblas_set_num_threads_local", None)
        if fn is not None:
            fn.argtypes = [ctypes.c_int]
            fn.restype = ctypes.c_int
            return fn
    return None


_BLAS_LOCAL = _find_blas_threads_local()


def blas_core() -> str:
    """The kernel set numpy's OpenBLAS runs ("Haswell", "SkylakeX", ...; picked by CPU model, or
    by OPENBLAS_CORETYPE), or "" when unknown. The codec's float32 GEMMs depend on it."""
    import ctypes

    for lib in _OPENBLAS:
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return (fn() or b"").decode("ascii", "replace")
    return ""


SMALL_GEMM = 1 << 21  # multiply-adds below which a GEMM runs on the calling thread alone


def blas_threads(n: int) -> int:
    """Set BLAS threads for the calling thread (numpy's OpenBLAS >= 0.3.27); returns the previous
    count, 0 if unsupported (then nothing changes)."""
    if _BLAS_LOCAL is None or n <= 0:
        return 0
    return int(_BLAS_LOCAL(int(n)))


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b through BLAS sgemm.

    * One row is computed as the first row of a 2-row GEMM: numpy sends M=1 products to sgemv,
      whose summation order differs from sgemm's, and streamed decoding (1 frame = 1 row) should
      round like one-shot decoding. (OpenBLAS's Haswell kernels also sum a row a little differently
      with the row count M, its SkylakeX ones do not; on the former, streamed and one-shot audio
      agree to ~3e-5, not bit for bit.)
    * Small products run single-threaded: a BLAS thread hand-off costs more than they do, and
      much more when another thread (the LM) competes for the cores.
    """
    if _BLAS_LOCAL is not None and a.shape[0] * a.shape[1] * b.shape[1] < SMALL_GEMM:
        prev = _BLAS_LOCAL(1)
        try:
            return _matmul(a, b, out)
        finally:
            _BLAS_LOCAL(prev)
    return _matmul(a, b, out)


def _matmul(a, b, out):
    if a.shape[0] == 1:
        a2 = np.empty((2, a.shape[1]), np.float32)
        a2[0] = a[0]
        a2[1] = 0.0
        r = np.dot(a2, b)[:1]
        if out is None:
            return r
        out[...] = r
        return out
    if out is None:
        return np.dot(a, b)
    return np.dot(a, b, out=out)


def conv_weight(w_torch: np.ndarray) -> np.ndarray:
    """PyTorch Conv1d weight [Cout, Cin, k] -> tap-major [k*Cin, Cout] (contiguous; float16 stays
    float16, anything else becomes float32)."""
    cout, cin, k = w_torch.shape
    dt = np.float16 if w_torch.dtype == np.float16 else np.float32
    return np.ascontiguousarray(np.transpose(w_torch, (2, 1, 0)).reshape(k * cin, cout), dtype=dt)


def trans_conv_weight(w_torch: np.ndarray) -> np.ndarray:
    """PyTorch ConvTranspose1d weight [Cin, Cout, k] -> [Cin, Cout*k] (a view when contiguous)."""
    cin, cout, k = w_torch.shape
    dt = np.float16 if w_torch.dtype == np.float16 else np.float32
    return np.ascontiguousarray(w_torch, dtype=dt).reshape(cin, cout * k)


@njit(cache=True, nogil=True)
def im2col(cols, xp, k, dilation):
    """cols[t, j*C:(j+1)*C] = xp[t + j*dilation] for t < T (cols is [T, k*C])."""
    T = cols.shape[0]
    C = xp.shape[1]
    for t in range(T):
        for j in range(k):
            src = t + j * dilation
            for c in range(C):
                cols[t, j * C + c] = xp[src, c]


@njit(cache=True, nogil=True)
def overlap_add_rows(y, carry, bias, s, out, p0, p1):
    """Rows p0..p1 of the transposed conv's output: out[p] = bias + sum_{i*s + r = p} y[i, :, r]
    (+ carry[p] for p < k-s), y [n, C, k] the per-input contributions (X . W), carry [k-s, C]
    the tail left by the previous call (zeros at start). The carry is only read here: update it
    afterwards with overlap_carry."""
    n, C, k = y.shape
    ntail = k - s
    for p in range(p0, p1):
        if p < ntail:
            for c in range(C):
                out[p, c] = carry[p, c]
        else:
            for c in range(C):
                out[p, c] = 0.0
        i_hi = min(p // s, n - 1)
        i_lo = max((p - k + s) // s, 0)
        for i in range(i_lo, i_hi + 1):
            r = p - i * s
            for c in range(C):
                out[p, c] += y[i, c, r]
        for c in range(C):
            out[p, c] += bias[c]


@njit(cache=True, nogil=True)
def overlap_carry(y, s, carry):
    """The k-s output rows past the end of this call's output (no bias): the next call's carry."""
    n, C, k = y.shape
    ntail = k - s
    for q in range(ntail):
        P = n * s + q
        for c in range(C):
            carry[q, c] = 0.0
        i_lo = max((P - k + s) // s, 0)
        for i in range(i_lo, n):
            r = P - i * s
            for c in range(C):
                carry[q, c] += y[i, c, r]


@njit(cache=True, nogil=True)
def dwconv_causal(xp, w, bias, out):
    """Depthwise causal conv: out[t, c] = bias[c] + sum_j xp[t + j, c] * w[j, c]; xp has T+k-1 rows."""
    T, C = out.shape
    k = w.shape[0]
    for t in range(T):
        for c in range(C):
            out[t, c] = bias[c]
        for j in range(k):
            for c in range(C):
                out[t, c] += xp[t + j, c] * w[j, c]


def _f16_table() -> np.ndarray:
    """Every float16 bit pattern widened to float32 (256 KB, stays in L2), built from the bit
    fields with integer operations: a float cast of the NaN patterns raises numpy's "invalid value
    encountered in cast" on ARM (hardware conversion). Same bits as numpy's x86 conversion: NaN
    payloads kept as they are."""
    h = np.arange(65536, dtype=np.uint32)
    sign, exp, man = (h & 0x8000) << 16, (h >> 10) & 0x1F, h & 0x3FF
    bits = sign | ((exp + 112) << 23) | (man << 13)                       # normal numbers
    bits = np.where(exp == 0x1F, sign | 0x7F800000 | (man << 13), bits)  # inf / NaN
    sub = (man.astype(np.float32) * np.float32(2.0 ** -24)).view(np.uint32)  # exact
    bits = np.where(exp == 0, sign | sub, bits)                          # zero / subnormal
    return bits.view(np.float32)


F16_TABLE = _f16_table()


@njit(cache=True, nogil=True)
def widen_f16(src, dst, table):
    """float16 given as its uint16 bits (contiguous, any shape) -> float32 dst (same size) by
    table lookup (table = F16_TABLE): exact, ~4x faster than numpy's astype here."""
    s = src.reshape(-1)
    d = dst.reshape(-1)
    for i in range(s.size):
        d[i] = table[s[i]]
    return dst
