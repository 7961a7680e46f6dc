"""`edgetts info MODEL`: what a model file or directory holds.

Prints the format, the architecture(s), model type and size, speakers, languages, and for each
weight container the tensor count by stored type and the bytes.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from . import weights as W
from .gguf import constants as K


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("info", help="describe a model (GGUF file/pair, HF directory, safetensors)",
                              description=__doc__)
    p.add_argument("model", metavar="MODEL", help="GGUF file, directory of the GGUF pair, or HF checkpoint")
    p.set_defaults(func=run)
    return p


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def describe(ck: W.Checkpoint) -> list[str]:
    lines = [f"format:       {ck.kind}  ({ck.root})"]
    m = ck.main.metadata if ck.main is not None and ck.main.format == "gguf" else {}
    cfg = ck.config or {}
    tc = cfg.get("talker_config") or {}
    if m:
        mtype, msize = m.get(K.MAIN_MODEL_TYPE), m.get(K.MAIN_MODEL_SIZE)
        langs = list(m.get(K.LANGUAGE_NAMES) or [])
        spk = list(m.get(K.SPEAKER_NAMES) or [])
        dial = list(m.get(K.SPEAKER_DIALECTS) or [""] * len(spk))
    else:
        mtype, msize = cfg.get("tts_model_type"), cfg.get("tts_model_size")
        langs = list(tc.get("codec_language_id") or {})
        spk = list(tc.get("spk_id") or {})
        d = tc.get("spk_is_dialect") or {}
        dial = [d.get(s) if isinstance(d.get(s), str) else "" for s in spk]
    if ck.kind == "gguf":
        archs = [w.architecture for w in (ck.main, ck.codec) if w is not None]
    else:
        archs = [c.get("model_type", "?") for c, w in ((cfg, ck.main), (ck.codec_config or {}, ck.codec))
                 if w is not None and c]
    lines.append(f"architecture: {', '.join(archs) if archs else 'unknown (no config.json)'}")
    if ck.main is not None and (m or cfg):
        lines.append(f"model:        type {mtype or '?'}, size {msize or '?'}")
        if spk:
            sp = [f"{s} ({dd})" if dd else s for s, dd in zip(spk, dial + [""] * len(spk))]
            lines.append(f"speakers:     {len(spk)}: {', '.join(sp)}")
        else:
            lines.append("speakers:     none (voice cloning / voice design model)")
        lines.append(f"languages:    {len(langs)}: {', '.join(langs) if langs else '-'}")
    for label, w in (("talker", ck.main), ("codec", ck.codec)):
        if w is None:
            lines.append(f"{label + ':':13} absent")
            continue
        counts = Counter(t.dtype for t in w.tensors.values())
        nbytes = sum(t.nbytes for t in w.tensors.values())
        types = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
        lines.append(f"{label + ':':13} {w.path.name}: {len(w)} tensors ({types}), {_mb(nbytes)}")
        ft = w.metadata.get(K.GENERAL_FILE_TYPE) if w.format == "gguf" else None
        if ft is not None:
            lines.append(f"{'':14}file type {ft}")
        pol = w.metadata.get(K.EDGETTS_QUANT_POLICY) if w.format == "gguf" else None
        if pol:
            lines.append(f"{'':14}policy {pol}")
    return lines


def run(args) -> int:
    ck = W.open(Path(args.model))
    print("\n".join(describe(ck)), file=sys.stdout)
    return 0
