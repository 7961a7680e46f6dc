"""Process memory: which pages of an array are resident, and how to make fewer of them so.

Weights are memory-mapped from their files; a page read once stays in the process's resident
set until released. These helpers release file-backed pages (they stay in the page cache and
fault back in on the next read) and make zero arrays whose pages exist only once written.
Used by the matmul kernels (one resident copy per matrix), the codec loader, the KV cache and
the quantizer (which reads its source once, front to back). Lookup tables (embeddings,
codebooks) are read a few rows at a time through RowTable, with pread from the file: a read
through the mapping would keep every row it touched resident, and the kernel maps the 64 KB
around each faulting page too (fault-around), so a table read at random ends up mostly resident.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import weakref

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


def _file_region(a: np.ndarray):
    """(path, file offset of a's first byte) for an array inside a read-only np.memmap, else None."""
    if not file_backed(a):
        return None
    root = a
    while not (isinstance(root, np.memmap) and isinstance(root.base, mmap.mmap)):
        root = root.base
        if root is None:
            return None
    if root.filename is None:
        return None
    addr = a.__array_interface__["data"][0]
    return root.filename, int(root.offset) + addr - root.__array_interface__["data"][0]


def _mapped_file(addr: int):
    """(device major, minor, inode) of the file mapped at address addr (/proc/self/maps), or None."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                span, _perms, _off, dev, inode = line.split(None, 5)[:5]
                lo, hi = span.split("-")
                if int(lo, 16) <= addr < int(hi, 16):
                    major, minor = dev.split(":")
                    return int(major, 16), int(minor, 16), int(inode)
    except (OSError, ValueError):
        pass
    return None


class RowTable:
    """Rows of a table a [rows, ...] picked by index (an embedding or a codebook lookup).

    A C-contiguous table in a read-only file mapping is read with pread (os.preadv) into a new
    array: its pages never enter the process's resident set (a 1 KB row costs ~1.5 us from the
    page cache). Any other array is indexed in memory. take() allocates its result, so several
    threads may read one table at once."""

    def __init__(self, a: np.ndarray):
        self.a = a
        self.fd = None
        region = _file_region(a) if a.ndim >= 1 and a.flags.c_contiguous and hasattr(os, "preadv") else None
        if region is None or not a.size:
            return
        try:
            fd = os.open(region[0], os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return
        st = os.fstat(fd)
        if _mapped_file(a.__array_interface__["data"][0]) != (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino):
            os.close(fd)  # the path names another file now (replaced since it was mapped): read the map
            return
        self.fd = fd
        self._close = weakref.finalize(self, os.close, fd)
        self.offset = region[1]
        self.row_bytes = a.strides[0]

    def row(self, i: int) -> np.ndarray:
        """a[i:i + 1] (i already checked against the table's rows): one pread, the lookup path of
        an embedding (Matrix.rows_f32)."""
        if self.fd is None:
            return self.a[i:i + 1]
        out = np.empty((1,) + self.a.shape[1:], self.a.dtype)
        self._read(i, out)
        return out

    def _read(self, r: int, buf) -> None:
        """Row r's bytes from the file into buf (row_bytes long)."""
        got = os.preadv(self.fd, [buf], self.offset + r * self.row_bytes)
        if got != self.row_bytes:
            raise OSError(f"{self.a.shape} table: short read of row {r} ({got} of {self.row_bytes} bytes)")

    def take(self, idx) -> np.ndarray:
        """a[idx] for a 1-D sequence of row indices (each checked against the table's rows)."""
        rows = self.a.shape[0]
        if self.fd is None:
            ix = np.asarray(idx, np.int64).reshape(-1)
            if ix.size and (ix.min() < 0 or ix.max() >= rows):
                raise IndexError(f"row index out of range 0..{rows - 1}")
            return self.a[ix]
        idx = np.asarray(idx, np.int64).reshape(-1).tolist()
        out = np.empty((len(idx),) + self.a.shape[1:], self.a.dtype)
        flat = out.view(np.uint8).reshape(len(idx), self.row_bytes)
        for i, r in enumerate(idx):
            if not 0 <= r < rows:
                raise IndexError(f"row index {r} out of range 0..{rows - 1}")
            self._read(r, flat[i])
        return out
