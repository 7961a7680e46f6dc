"""Row-wise block quantization for the converter, bit-identical with `gguf.quants.quantize`.

GGML block layouts (one block = 32 consecutive values of a row):
  Q8_0: f16 scale d + 32 int8 q;          d = amax / 127, q = round_half_away(x / d)
  Q4_0: f16 scale d + 16 bytes of nibbles; d = x[argmax |x|] / -8,
        q = clamp(trunc(x / d + 8.5), 0, 15); byte j = q[j] | q[j + 16] << 4

The numba block kernels live in `edgetts.kernels.quant` (the engine requantizes K-quant files
with the same code); this module only checks shapes and picks the kernel.

    out = quantize_rows(x, "Q8_0")   # x float32 [rows, cols], cols % 32 == 0 -> uint8 [rows, cols/32*34]
"""
from __future__ import annotations

import numpy as np

from edgetts.kernels.quant import QK, Q4_0_BYTES, Q8_0_BYTES, quantize_q4_0, quantize_q8_0

BLOCK_BYTES = {"Q8_0": Q8_0_BYTES, "Q4_0": Q4_0_BYTES}
_KERNELS = {"Q8_0": quantize_q8_0, "Q4_0": quantize_q4_0}


def quantize_rows(x: np.ndarray, qtype: str, out: np.ndarray | None = None) -> np.ndarray:
    """float32 [rows, cols] -> uint8 [rows, cols // 32 * block_bytes] for Q8_0 / Q4_0."""
    if qtype not in _KERNELS:
        raise ValueError(f"no block quantizer for {qtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows, cols = x.shape
    if cols % QK:
        raise ValueError(f"row length {cols} is not a multiple of {QK}")
    if out is None:
        out = np.empty((rows, cols // QK * BLOCK_BYTES[qtype]), dtype=np.uint8)
    _KERNELS[qtype](x, out)
    return out
