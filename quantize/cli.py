"""`edgetts quantize SRC --qtype {q8_0,q4_0,f16,f32} [-o OUTDIR]`: the command over quantize.convert.

SRC: a Hugging Face Qwen3-TTS-12Hz checkpoint directory, or a hub id (downloaded through
edgetts.hub). Writes two GGUF files (qwentts.cpp layout) into OUTDIR:
  qwen-talker-<size>-<kind>-<QTYPE>.gguf   (architecture qwen3-tts)
  qwen-tokenizer-12hz-<QTYPE>.gguf         (architecture qwen3-tts-tokenizer)

Stored types: talker / code-predictor linears take QTYPE; embeddings and heads Q8_0 when QTYPE
is q4_0 (else QTYPE); norms, biases, scales, Snake parameters, RVQ codebooks and projections F32;
codec convolutions and codec transformer linears F16 (F32 for f32). A tensor whose rows are not a
multiple of 32 is stored as F16 instead of a block type (the command lists them). The policy is
recorded in the files (general.file_type, edgetts.quantization.*). Files appear only when complete.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .convert import convert
from .plan import QTYPES


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("quantize", help="convert a Hugging Face checkpoint to GGUF (qwentts.cpp layout)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", help="checkpoint directory or Hugging Face hub id")
    p.add_argument("--qtype", required=True, choices=QTYPES, type=str.lower, help="type of the talker / code-predictor linears")
    p.add_argument("-o", "--outdir", metavar="OUTDIR", default=None,
                   help="output directory (default: ./<model name>-<qtype>)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from edgetts import hub

    src, name = args.src, None
    if not Path(src).expanduser().exists() and hub.is_hub_id(src):
        src, name = hub.download(src), src.split("/")[-1]
    convert(src, args.qtype, args.outdir, name=name, progress=sys.stderr.isatty())
    return 0
