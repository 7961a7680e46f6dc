"""Write one GGUF file tensor by tensor, in row chunks, through gguf-py's GGUFWriter.

The header, metadata and tensor table go through GGUFWriter; the tensor data is streamed in
chunks of rows (a BF16 source row block -> float32 -> stored type -> file), so the largest
tensor never exists whole in float32. Files are written under temporary names in the output
directory and renamed into place at the end (`edgetts.atomic.AtomicOutput`, the caller's):
an interrupted run leaves no half file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from .plan import Item
from .quants import quantize_rows

CHUNK_ELEMS = 1 << 22   # ~16 MB of float32 per chunk

_ADD = {"u32": "add_uint32", "f32": "add_float32", "str": "add_string", "bool": "add_bool"}


def encode(item: Item, x: np.ndarray) -> np.ndarray:
    """float32 rows -> the stored bytes/values of item.dtype."""
    if item.dtype == "F32":
        return np.ascontiguousarray(x, dtype=np.float32)
    if item.dtype == "F16":
        return np.ascontiguousarray(x).astype(np.float16)
    return quantize_rows(x, item.dtype)


def write_gguf(path: Path, arch: str, kv: list[tuple[str, str, Any]], items: list[Item],
               tick: Callable[[Item], None] | None = None) -> int:
    """Write `items` with metadata `kv` [(key, type, value)] to `path`; returns the file size."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    try:
        for key, vtype, value in kv:
            if vtype.endswith("[]"):
                w.add_array(key, list(value))
            else:
                getattr(w, _ADD[vtype])(key, value)
        for it in items:
            w.add_tensor_info(it.name, it.shape, np.dtype(np.float32), it.nbytes,
                              raw_dtype=gguf.GGMLQuantizationType[it.dtype])
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        fout = w.fout[0]
        for it in items:
            w.write_padding(fout, fout.tell())
            step = max(1, CHUNK_ELEMS // max(1, it.ncols))
            written = 0
            for start in range(0, it.nrows, step):
                stop = min(it.nrows, start + step)
                block = encode(it, it.rows(start, stop))
                block.tofile(fout)
                written += block.nbytes
                del block
                if it.release is not None:
                    it.release(start, stop)
            if written != it.nbytes:
                raise RuntimeError(f"{it.name}: wrote {written} bytes, expected {it.nbytes}")
            w.write_padding(fout, it.nbytes)
            if tick:
                tick(it)
    finally:
        w.close()
    return Path(path).stat().st_size
