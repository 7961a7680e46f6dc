"""The tensor plan: which source tensor becomes which GGUF tensor, stored as which type.

A role table (GGUF-name pattern -> role, first match wins) and a per-qtype role -> type table;
no model sizes or ids here. Roles:

  linear        talker / code-predictor projections (q k v o gate up down), text_proj fc1/fc2, mtp_proj
  embed         talker.text_embd, talker.codec_embd, code_pred.codec_embd.*
  head          talker.codec_head, code_pred.lm_head.*
  codec_linear  codec transformer / ConvNeXt linears (tok_dec.pre_tfm.*, tok_enc.blk.*, pwconv*)
  conv          convolutions of the codec and the speaker encoder
  float         everything else: norms, biases, layer scales, Snake alpha/beta, ConvNeXt gamma,
                RVQ codebooks and their input/output projections

Block types need the row length (ne[0], the innermost dim) to be a multiple of 32; a tensor whose
row is not falls back to F16 (`fallback=True`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgetts.gguf import constants as K

QTYPES = ("q8_0", "q4_0", "f16", "f32")
BLOCK_TYPES = {t: K.GGML_QUANT_SIZES[t][0] for t in ("Q8_0", "Q4_0")}   # type -> values per block

ROLE_TABLE: list[tuple[str, str]] = [
    (r"(talker|code_pred)\.blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.weight", "linear"),
    (r"talker\.text_proj\.fc\d\.weight", "linear"),
    (r"code_pred\.mtp_proj\.weight", "linear"),
    (r"talker\.(text_embd|codec_embd)\.weight", "embed"),
    (r"code_pred\.codec_embd\.\d+\.weight", "embed"),
    (r"talker\.codec_head\.weight", "head"),
    (r"code_pred\.lm_head\.\d+\.weight", "head"),
    (r"tok_(dec|enc)\.vq_\w+\.(input_proj|output_proj)\.weight", "float"),
    (r"tok_(dec|enc)\.vq_\w+\.\d+\.codebook", "float"),
    (r"tok_dec\.pre_tfm\.(blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)"
     r"|input_proj|output_proj)\.weight", "codec_linear"),
    (r"tok_enc\.blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_up|ffn_down)\.weight", "codec_linear"),
    (r"tok_dec\.upsample\.\d+\.pwconv\d\.weight", "codec_linear"),
    (r"(tok_dec|tok_enc|spk_enc)\..*weight", "conv"),   # multi-dim weights left: convolutions
]
_ROLE_RE = [(re.compile(p + r"\Z"), role) for p, role in ROLE_TABLE]
ROLES = ("linear", "embed", "head", "codec_linear", "conv", "float")


def role_of(name: str, ndim: int) -> str:
    """The role of a GGUF tensor; 1-D tensors (norms, biases, scales) are always `float`."""
    if ndim <= 1:
        return "float"
    for pat, role in _ROLE_RE:
        if pat.match(name):
            return role
    return "float"


def role_types(qtype: str) -> dict[str, str]:
    """Stored type per role for `--qtype` (docs/formats.md §3)."""
    q = qtype.upper()
    if q not in ("Q8_0", "Q4_0", "F16", "F32"):
        raise ValueError(f"unknown qtype {qtype}")
    wide = "F32" if q == "F32" else "F16"
    return {
        "linear": q,
        "embed": "Q8_0" if q == "Q4_0" else q,
        "head": "Q8_0" if q == "Q4_0" else q,
        "codec_linear": wide,   # codec quality with Q8_0 is unverified: keep F16
        "conv": wide,
        "float": "F32",
    }


def policy_line(qtype: str) -> str:
    t = role_types(qtype)
    return (" ".join(f"{r}={t[r]}" for r in ROLES)
            + "; block types need rows (ne[0]) that are a multiple of 32, else F16")


@dataclass
class Item:
    """One output tensor: GGUF name, PyTorch-order shape, stored type, where its values come from."""
    name: str
    shape: tuple[int, ...]
    role: str
    dtype: str                    # F32 F16 Q8_0 Q4_0
    fallback: bool                # True: wanted a block type, row length forced F16
    rows: Callable[[int, int], np.ndarray]   # (start, stop) -> float32 [stop-start, row] (row-major)
    nrows: int
    ncols: int
    source: str                   # HF name(s), for messages
    release: Callable[[int, int], None] | None = None   # drop source pages of rows [a, b) once written

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.dtype, self.nrows, self.ncols)


def tensor_nbytes(dtype: str, nrows: int, ncols: int) -> int:
    if dtype == "F32":
        return nrows * ncols * 4
    if dtype == "F16":
        return nrows * ncols * 2
    if dtype == "Q8_0":
        return nrows * ncols // 32 * 34
    if dtype == "Q4_0":
        return nrows * ncols // 32 * 18
    raise ValueError(dtype)


def choose(name: str, shape: tuple[int, ...], qtype: str) -> tuple[str, str, bool]:
    """(role, stored type, fell back to F16?) for one tensor."""
    role = role_of(name, len(shape))
    t = role_types(qtype)[role]
    if t in BLOCK_TYPES and (len(shape) == 0 or shape[-1] % BLOCK_TYPES[t]):
        return role, "F16", True
    return role, t, False
