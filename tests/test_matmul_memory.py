"""One resident copy per quantized Matrix: x8 built straight from the parts, file pages released,
rows / dequantization read back from the x8 layout -- all bit-identical to the plain rows."""
from __future__ import annotations

import os

import numpy as np
import pytest

from edgetts.kernels import memory as mm
from edgetts.kernels.matmul import Matrix, pack_x8
from edgetts.kernels.memory import release_pages


def rand_w(rng, rows, cols):
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    w[:, ::7] *= 4.0
    return w


def file_matrix(tmp_path, name, m: Matrix) -> Matrix:
    """The same bytes as m, read in place from a read-only file mapping (as weights.open does)."""
    p = tmp_path / name
    off = 100  # not page-aligned, like a tensor inside a GGUF file
    with open(p, "wb") as f:
        f.write(b"\0" * off + np.ascontiguousarray(m.data).tobytes() + b"\0" * 50)
    raw = np.memmap(p, dtype=np.uint8, mode="r")
    return Matrix(m.dtype, raw[off:off + m.data.nbytes].view(m.data.dtype).reshape(m.data.shape), m.rows, m.cols)


def check_same(m: Matrix, ref: Matrix, rng):
    """m and ref (plain rows, never prepared) hold the same weights: every read path agrees exactly."""
    np.testing.assert_array_equal(m.to_f32(), ref.to_f32())
    a, b = np.empty(m.cols, np.float32), np.empty(m.cols, np.float32)
    for r in range(m.rows):
        np.testing.assert_array_equal(m.rows_f32(r, a), ref.rows_f32(r, b))
    for r0, r1 in ((0, m.rows), (3, m.rows - 2), (8, 9), (m.rows - 1, m.rows)):
        o1, o2 = np.empty((r1 - r0, m.cols), np.float32), np.empty((r1 - r0, m.cols), np.float32)
        m._dequantize_range(r0, r1, o1)
        ref._dequantize_range(r0, r1, o2)
        np.testing.assert_array_equal(o1, o2)
    x = rng.standard_normal(m.cols).astype(np.float32)
    y1, y2 = np.empty(m.rows, np.float32), np.empty(m.rows, np.float32)
    np.testing.assert_array_equal(m.matvec(x, y1), ref.matvec(x, y2))
    X = rng.standard_normal((5, m.cols)).astype(np.float32)
    np.testing.assert_array_equal(m.matmul(X), ref.matmul(X))


def plain_copy(m: Matrix) -> Matrix:
    return Matrix(m.dtype, m._plain_rows(0, m.rows).copy(), m.rows, m.cols)


@pytest.mark.parametrize("dtype", ["Q8_0", "Q4_0"])
@pytest.mark.parametrize("rows", [8, 37, 64])
def test_prepare_file_backed(tmp_path, dtype, rows):
    rng = np.random.default_rng(rows)
    src = Matrix.from_f32(rand_w(rng, rows, 96), dtype)
    ref = Matrix(dtype, src.data.copy(), rows, 96)
    m = file_matrix(tmp_path, "w.bin", src).prepare()
    check_same(m, ref, rng)
    if m._x8.size:
        np.testing.assert_array_equal(m._x8, pack_x8(ref.data, dtype))
        np.testing.assert_array_equal(m._plain_rows(0, rows), ref.data)


@pytest.mark.parametrize("dtype", ["Q8_0", "Q4_0"])
def test_concat_rows_direct_x8(tmp_path, dtype):
    rng = np.random.default_rng(1)
    parts = [Matrix.from_f32(rand_w(rng, r, 160), dtype) for r in (16, 24, 11)]
    ref = Matrix(dtype, np.concatenate([p.data for p in parts]), 51, 160)
    for files in (False, True):
        ps = [file_matrix(tmp_path, f"p{i}", p) if files else p for i, p in enumerate(parts)]
        f = Matrix.concat_rows(ps)
        assert (f.dtype, f.rows) == (dtype, 51)
        if f._wants_x8:  # built straight from the parts: no plain concatenated copy kept
            np.testing.assert_array_equal(f._x8, pack_x8(ref.data, dtype))
            assert not f.data[:48].any()
        check_same(f, ref, rng)


def test_concat_rows_fallbacks(tmp_path):
    rng = np.random.default_rng(2)
    # a middle part with rows % 8 != 0: concatenated copy, then prepared
    parts = [Matrix.from_f32(rand_w(rng, r, 64), "Q4_0") for r in (5, 16, 3)]
    ref = Matrix("Q4_0", np.concatenate([p.data for p in parts]), 24, 64)
    check_same(Matrix.concat_rows(parts), ref, rng)
    # mixed Q4_0 | Q8_0 -> Q8_0, exact; parts already prepared (x8) read back correctly
    a = Matrix.from_f32(rand_w(rng, 16, 64), "Q4_0")
    b = file_matrix(tmp_path, "b", Matrix.from_f32(rand_w(rng, 9, 64), "Q8_0")).prepare()
    f = Matrix.concat_rows([a.prepare(), b])
    assert f.dtype == "Q8_0"
    np.testing.assert_array_equal(f.to_f32(), np.concatenate([a.to_f32(), b.to_f32()]))
    check_same(f, plain_copy(f), rng)


def test_requantized_drop_plain():
    rng = np.random.default_rng(3)
    m = Matrix.from_f32(rand_w(rng, 19, 64), "Q8_0")
    ref = Matrix("Q8_0", m.data.copy(), 19, 64)
    m._drop_plain = True  # as from_tensor sets it for requantized K-quants
    m.prepare()
    if m._x8.size:
        assert not m.data[:16].any()  # only the last rows % 8 kept in the plain layout
    check_same(m, ref, rng)


def test_release_pages(tmp_path):
    p = tmp_path / "f.bin"
    data = np.random.default_rng(4).integers(0, 256, 3 * mm.PAGE + 77, dtype=np.uint8)
    data.tofile(p)
    a = np.memmap(p, dtype=np.uint8, mode="r")[33:]
    assert int(a.sum()) == int(data[33:].sum())
    assert release_pages(a) == 2 * mm.PAGE  # whole pages inside only
    np.testing.assert_array_equal(a, data[33:])  # read back from the page cache
    assert release_pages(a[:mm.PAGE], outward=True) == 2 * mm.PAGE  # and the pages it shares
    np.testing.assert_array_equal(a, data[33:])
    x = np.ones(4 * mm.PAGE, np.uint8)
    assert release_pages(x) == 0  # in-memory arrays are never touched
    assert x.all()
    z = mm.lazy_zeros((3, 5), np.uint8)
    assert z.shape == (3, 5) and not z.any()
    assert release_pages(z) == 0


def resident_pages(a: np.ndarray) -> int:
    """Pages under a that are in this process's resident set (/proc/self/pagemap, present bit)."""
    addr = a.__array_interface__["data"][0]
    p0, p1 = addr // mm.PAGE, -(-(addr + a.nbytes) // mm.PAGE)
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(p0 * 8)
        v = np.frombuffer(f.read((p1 - p0) * 8), np.uint64)
    return int(((v >> np.uint64(63)) & np.uint64(1)).sum())


needs_pagemap = pytest.mark.skipif(not hasattr(os, "preadv") or not os.path.exists("/proc/self/pagemap"),
                                   reason="pread and /proc/self/pagemap (Linux)")


@needs_pagemap
@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16", "Q8_0", "Q4_0"])
def test_row_lookups_read_the_file_not_the_mapping(tmp_path, dtype):
    """An embedding table used only through rows_f32 (never prepared): every row equals the
    in-memory table's, and the file-mapped pages under it never enter the resident set (a read
    through the mapping would map the 64 KB around each row)."""
    rng = np.random.default_rng(7)
    rows, cols = 300, 128
    ref = Matrix.from_f32(rand_w(rng, rows, cols), dtype)
    m = file_matrix(tmp_path, "t.bin", ref)
    release_pages(m.data, outward=True)
    a, b = np.empty(cols, np.float32), np.empty(cols, np.float32)
    for r in [0, rows - 1] + list(rng.integers(0, rows, 50)):
        np.testing.assert_array_equal(m.rows_f32(int(r), a), ref.rows_f32(int(r), b))
    assert resident_pages(m.data) == 0
    with pytest.raises(IndexError):
        m.rows_f32(rows, a)


@needs_pagemap
def test_row_table(tmp_path):
    """RowTable.take equals fancy indexing, file-mapped (pread, nothing resident) or in memory."""
    rng = np.random.default_rng(8)
    t = rng.standard_normal((500, 3, 7)).astype(np.float32)
    p = tmp_path / "cb.bin"
    with open(p, "wb") as f:
        f.write(b"\0" * 12 + t.tobytes())
    a = np.memmap(p, dtype=np.uint8, mode="r")[12:].view(np.float32).reshape(t.shape)
    release_pages(a, outward=True)
    idx = rng.integers(0, 500, 40)
    for table in (mm.RowTable(a), mm.RowTable(t)):
        np.testing.assert_array_equal(table.take(idx), t[idx])
        np.testing.assert_array_equal(table.take(np.zeros(0, np.int64)), t[:0])
        for bad in ([-1], [500]):
            with pytest.raises(IndexError):
                table.take(bad)
    assert mm.RowTable(a).fd is not None and mm.RowTable(t).fd is None
    assert resident_pages(a) == 0


@needs_pagemap
def test_row_table_file_replaced(tmp_path):
    """The path names another file than the one mapped (replaced after loading): RowTable reads
    the mapping, never the new file."""
    t = np.arange(64 * 16, dtype=np.float32).reshape(64, 16)
    p = tmp_path / "t.bin"
    t.tofile(p)
    a = np.memmap(p, dtype=np.float32, mode="r").reshape(64, 16)
    tmp = tmp_path / "new.bin"
    (-t).tofile(tmp)
    os.replace(tmp, p)
    table = mm.RowTable(a)
    assert table.fd is None
    np.testing.assert_array_equal(table.take([3, 60]), t[[3, 60]])
