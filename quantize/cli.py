"""`edgetts quantize SRC --qtype {q8_0,q4_0,f16,f32} [-o OUTDIR]`

SRC: a Hugging Face Qwen3-TTS-12Hz checkpoint directory, or a hub id (downloaded through
huggingface_hub). Writes two GGUF files (qwentts.cpp layout) into OUTDIR:
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
import os
import re
import sys
import time
from pathlib import Path

from edgetts import weights as W
from edgetts.errors import EdgeTTSError
from edgetts.gguf import constants as K

from . import convert as C
from .plan import QTYPES, policy_line
from .writer import AtomicFiles, write_gguf

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("quantize", help="convert a Hugging Face checkpoint to GGUF (qwentts.cpp layout)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", help="checkpoint directory or Hugging Face hub id")
    p.add_argument("--qtype", required=True, choices=QTYPES, type=str.lower, help="type of the talker / code-predictor linears")
    p.add_argument("-o", "--outdir", metavar="OUTDIR", default=None,
                   help="output directory (default: ./<model name>-<qtype>)")
    p.set_defaults(func=run)
    return p


def snapshot_download(repo_id: str) -> str:
    from huggingface_hub import snapshot_download as dl

    return dl(repo_id=repo_id)


def resolve_source(src: str) -> tuple[Path, str]:
    """(local checkpoint directory, name hint) for a path or a hub id."""
    p = Path(src).expanduser()
    if p.exists():
        name = p.resolve().name
        if p.is_file():
            kind = W.sniff(p)   # raises for garbage / empty files
            if kind == "gguf":
                W.read_gguf(p)  # raises for truncated / corrupt files
                raise EdgeTTSError(f"{p}: is already a GGUF file; quantize takes a Hugging Face checkpoint directory")
            W.read_safetensors(p)
            raise EdgeTTSError(f"{p}: is a single safetensors file; quantize takes the checkpoint directory "
                               "(config.json, model.safetensors, speech_tokenizer/)")
        return p, name
    if HUB_ID.fullmatch(src) and not src.startswith((".", "/", "~")):
        try:
            local = snapshot_download(src)
        except Exception as e:  # network, auth, missing repo: one line
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EdgeTTSError(f"{src}: cannot download from the Hugging Face hub ({msg})") from None
        return Path(local), src.split("/")[-1]
    raise EdgeTTSError(f"{src}: no such file or directory")


def prepare_outdir(outdir: Path) -> bool:
    """Create OUTDIR if needed and check it is writable; True when this call created it."""
    existed = outdir.is_dir()
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeTTSError(f"{outdir}: cannot create the output directory ({e.strerror})") from None
    if not outdir.is_dir():
        raise EdgeTTSError(f"{outdir}: not a directory")
    if not os.access(outdir, os.W_OK | os.X_OK):
        raise EdgeTTSError(f"{outdir}: output directory is not writable")
    return not existed


def quantize(src: str, qtype: str, outdir: str | None = None, progress: bool = True,
             out=None) -> tuple[Path, Path | None]:
    """Convert SRC and write the GGUF pair; returns (talker path, codec path or None)."""
    out = out or sys.stdout
    t0 = time.perf_counter()
    if qtype not in QTYPES:
        raise EdgeTTSError(f"unknown qtype {qtype!r} (choose one of {', '.join(QTYPES)})")
    d, hint = resolve_source(src)
    ck = C.check_checkpoint(d)
    cfg = ck.config or {}
    notes: list[str] = []
    warn = notes.append

    main_items = C.plan_items(ck.main, qtype, warn=warn)
    kv_main = C.main_kv(cfg, ck.generation_config, d, hint, warn=warn)
    kv_main += C.quant_kv(qtype, main_items, hint)
    codec_items = []
    kv_codec = []
    if ck.codec is not None:
        cc = ck.codec_config or {}
        try:
            valid = int(cc["encoder_valid_num_quantizers"])
            kept = valid - int(cc["encoder_config"]["num_semantic_quantizers"])
        except (KeyError, TypeError, ValueError):
            raise EdgeTTSError(f"{d / 'speech_tokenizer' / 'config.json'}: missing encoder_valid_num_quantizers "
                               "or encoder_config.num_semantic_quantizers") from None

        def drop(g: str) -> bool:   # encoder codebooks past encoder_valid_num_quantizers (as qwentts.cpp)
            m = re.fullmatch(r"tok_enc\.vq_acoustic\.(\d+)\.codebook", g)
            return bool(m) and int(m.group(1)) >= kept
        codec_items = C.plan_items(ck.codec, qtype, drop=drop, warn=warn)
        widths = [it.ncols for it in codec_items if it.name.startswith("tok_dec.vq_") and it.name.endswith(".codebook")]
        kv_codec = C.codec_kv(cc, widths[0] if widths else cc.get("decoder_config", {}).get("codebook_dim", 0) // 2)
        kv_codec += C.quant_kv(qtype, codec_items, hint)
    else:
        warn(f"{d}: no speech_tokenizer/ directory; writing the talker GGUF only")

    talker_name, codec_name = C.output_names(cfg, hint, qtype)
    outp = Path(outdir).expanduser() if outdir else Path.cwd() / f"{hint}-{qtype}"
    created = prepare_outdir(outp)

    for n in notes:
        print(f"note: {n}", file=out)
    for it in main_items + codec_items:
        if it.fallback:
            print(f"note: {it.name}: row length {it.ncols} is not a multiple of 32; stored as F16 "
                  f"instead of {C.role_types(qtype)[it.role]}", file=out)

    from tqdm import tqdm

    total = len(main_items) + len(codec_items)
    with tqdm(total=total, unit="tensor", desc=f"quantize {qtype}", disable=not progress, file=sys.stderr,
              leave=False) as bar:
        def tick(it):
            bar.update(1)
        tp = outp / talker_name
        cp = outp / codec_name if codec_items else None
        try:
            with AtomicFiles(outp) as af:
                write_gguf(af.temp(talker_name), K.ARCH_MAIN, kv_main, main_items, tick)
                if cp is not None:
                    write_gguf(af.temp(codec_name), K.ARCH_CODEC, kv_codec, codec_items, tick)
        except BaseException as e:
            if created and not any(outp.iterdir()):
                outp.rmdir()   # leave nothing behind, not even the directory we made
            if isinstance(e, OSError):
                raise EdgeTTSError(f"{outp}: cannot write the GGUF files ({e.strerror or e})") from None
            raise
    dt = time.perf_counter() - t0
    print(f"policy: {policy_line(qtype)}", file=out)
    print(f"wrote {tp} ({tp.stat().st_size / 1e6:.1f} MB, {len(main_items)} tensors)", file=out)
    if cp is not None:
        print(f"wrote {cp} ({cp.stat().st_size / 1e6:.1f} MB, {len(codec_items)} tensors)", file=out)
    print(f"done in {dt:.1f} s", file=out)
    return tp, cp


def run(args) -> int:
    quantize(args.src, args.qtype, args.outdir, progress=sys.stderr.isatty())
    return 0
