"""Process memory: which pages of an array are resident, and how to make fewer of them so.

Weights are memory-mapped from their files; a page read once stays in the process's resident
set until released. These helpers release file-backed pages (they stay in the page cache and
fault back in on the next read) and make zero arrays whose pages exist only once written.
Used by the matmul kernels (one resident copy per matrix), the codec loader, the KV cache and
the quantizer (which reads its source once, front to back).
"""
from __future__ import annotations

import ctypes
import mmap

import numpy as np

PAGE = mmap.PAGESIZE
_MADV_DONTNEED = 4
_libc = None


def file_backed(a: np.ndarray) -> bool:
    """True when a's memory belongs to a read-only file mapping (np.memmap mode 'r'): its pages
    can be dropped from the process and come back from the page cache on the next read."""
    while a is not None:
        if isinstance(a, np.memmap):
            return getattr(a, "mode", None) == "r" and getattr(a, "_mmap", None) is not None
        a = getattr(a, "base", None)
        if isinstance(a, mmap.mmap):
            return False  # anonymous / writable: MADV_DONTNEED would zero it
    return False


def release_pages(a: np.ndarray, outward: bool = False) -> int:
    """Drop the pages under a read-only file-mapped array a from this process's resident set
    (madvise MADV_DONTNEED). Only the whole pages inside a, unless `outward`: then also the
    pages a shares with its neighbours (for a reader going front to back, which is done with
    what lies before). The contents are unchanged: a later read faults them back in from the
    page cache. No-op (0) for in-memory arrays. Returns the bytes released."""
    global _libc
    if a.size == 0 or not file_backed(a) or not a.flags.c_contiguous:
        return 0
    addr = a.__array_interface__["data"][0]
    if outward:
        lo, hi = addr // PAGE * PAGE, -(-(addr + a.nbytes) // PAGE) * PAGE
    else:
        lo, hi = -(-addr // PAGE) * PAGE, (addr + a.nbytes) // PAGE * PAGE
    if hi <= lo:
        return 0
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    if _libc.madvise(lo, hi - lo, _MADV_DONTNEED) != 0:
        return 0
    return hi - lo


def lazy_zeros(shape, dtype) -> np.ndarray:
    """Zero array on its own private anonymous mapping: only the 4 KB pages written become
    resident. (np.zeros is lazy too, but numpy asks for transparent huge pages on large arrays,
    so one write makes a whole 2 MB page resident: a [layer, head, pos, dim] KV cache is then
    fully resident after its first position.)"""
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = mmap.mmap(-1, max(n, 1), flags=mmap.MAP_PRIVATE)
    return np.frombuffer(buf, np.uint8, n).view(dtype).reshape(shape)
