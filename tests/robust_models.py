"""Broken-on-purpose models made from the tiny fixture (tests of the stop guards).

Each is a copy of tests/fixtures/tiny with only the talker's codec head (and final norm)
rewritten; the rest (codec, tokenizer, configs) links to the fixture. Sizes and ids come from
the checkpoint itself (the head's shape, the config's codec_eos_token_id).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

TINY = Path(__file__).resolve().parent / "fixtures" / "tiny"
HEAD = "talker.codec_head.weight"
NORM = "talker.model.norm.weight"


def _copy_with(dst: Path, change) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in TINY.iterdir():
        if f.name not in ("model.safetensors", "golden.npz", "golden_meta.json"):
            (dst / f.name).symlink_to(f.resolve())
    tensors = load_file(str(TINY / "model.safetensors"))
    cfg = json.loads((TINY / "config.json").read_text())
    change(tensors, cfg["talker_config"])
    save_file(tensors, str(dst / "model.safetensors"))
    return dst


def never_eos(dst: Path, margin: float = 30.0) -> Path:
    """A model whose EOS logit always trails the best code by >= `margin`.

    The final norm weight is set to ones, so the normed hidden state h has rms 1 and
    max_i |h_i| >= 1; head rows 2i / 2i+1 become +margin*e_i / -margin*e_i, so the best code's
    logit is >= margin, and the EOS row becomes zero (logit 0)."""
    def change(t, tc):
        head = t[HEAD]
        hidden = head.shape[1]
        eos = int(tc["codec_eos_token_id"])
        assert 2 * hidden <= eos, "the +-e_i rows must be ordinary codes"
        t[NORM] = np.ones_like(t[NORM])
        head[:2 * hidden] = 0.0
        for i in range(hidden):
            head[2 * i, i] = margin
            head[2 * i + 1, i] = -margin
        head[eos] = 0.0
        t[HEAD] = head
    return _copy_with(dst, change)


def stuck(dst: Path) -> Path:
    """A model whose every code-0 logit is 0: greedy decoding repeats the first code forever
    (the lowest index wins ties) until the EOS bias past the expected length takes over."""
    def change(t, tc):
        t[HEAD] = np.zeros_like(t[HEAD])
    return _copy_with(dst, change)
