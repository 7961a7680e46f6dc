"""Hugging Face Qwen3-TTS checkpoint -> the two GGUF files of the qwentts.cpp layout.

    talker, codec = convert(src_dir, "q8_0", out_dir)

Names come from `edgetts.gguf.names` (one table for the quantizer and the loaders), metadata
keys from `edgetts.gguf.constants`, stored types from `quantize.plan`.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import edgetts
from edgetts import weights as W
from edgetts.atomic import AtomicOutput
from edgetts.errors import EdgeTTSError, WeightsError
from edgetts.gguf import constants as K
from edgetts.gguf import names as N
from edgetts.kernels.memory import file_backed, release_pages

from .plan import QTYPES, ROLES, Item, choose, policy_line, role_types
from .writer import write_gguf

TALKER_DIR_RE = re.compile(r"Qwen3-TTS-12Hz-([0-9.]+B)-(\w+)", re.IGNORECASE)


# ------------------------------------------------------------------------------ sources
def _tensor_rows(t: W.Tensor):
    """(nrows, ncols, rows(a, b) -> float32, release(a, b)) over a stored tensor, read in row slices."""
    if t.dtype not in ("F32", "F16", "BF16"):
        raise WeightsError(f"tensor {t.name!r} has type {t.dtype}; expected F32, F16 or BF16")
    ncols = int(t.shape[-1]) if t.shape else 1
    nrows = int(np.prod(t.shape[:-1])) if len(t.shape) > 1 else 1
    data = t.data.reshape(nrows, ncols)

    def rows(a: int, b: int) -> np.ndarray:
        x = data[a:b]
        if t.dtype == "BF16":
            return W.bf16_to_f32(np.ascontiguousarray(x))
        return np.asarray(x, dtype=np.float32)
    if not file_backed(data):
        return nrows, ncols, rows, None

    def release(a: int, b: int) -> None:
        # read once, front to back: without this every page read stays resident until the end
        # (2.5 GB for the 0.6B model)
        release_pages(data[a:b], outward=True)
    return nrows, ncols, rows, release


def _array_rows(make):
    """Rows of a small array computed on first use (codebooks)."""
    cache: list[np.ndarray] = []

    def rows(a: int, b: int) -> np.ndarray:
        if not cache:
            arr = make()
            cache.append(arr.reshape(-1, arr.shape[-1]))
        return cache[0][a:b]
    return rows


def _item(name: str, shape: tuple[int, ...], qtype: str, nrows: int, ncols: int, rows, source: str,
          release=None) -> Item:
    role, dtype, fb = choose(name, shape, qtype)
    return Item(name, tuple(int(s) for s in shape), role, dtype, fb, rows, nrows, ncols, source, release)


def plan_items(weights: W.Weights, qtype: str, drop=lambda gguf_name: False,
               warn=lambda msg: None) -> list[Item]:
    """Output items for every mapped tensor (HF names sorted, as qwentts.cpp), then the codebooks."""
    items: list[Item] = []
    names = sorted(weights.names())
    for hf in names:
        g = N.hf_to_gguf(hf)
        if g is None:
            if not N.is_ignored(hf) and not N.derived_codebooks([hf]):
                warn(f"skipping tensor {hf} (no GGUF name for it)")
            continue
        if drop(g):
            continue
        t = weights[hf]
        nrows, ncols, rows, release = _tensor_rows(t)
        items.append(_item(g, t.shape, qtype, nrows, ncols, rows, hf, release))
    cbs = N.derived_codebooks(names)

    def order(g: str):
        parts = g.split(".")
        return parts[:2], int(parts[2])
    for g in sorted(cbs, key=order):
        if drop(g):
            continue
        num, use = cbs[g]
        if use not in weights:
            raise WeightsError(f"{weights.path}: codebook {num!r} has no {use!r}")
        shape = weights[num].shape

        def make(num=num, use=use):
            return N.codebook(weights[num].numpy(), weights[use].numpy())
        items.append(_item(g, shape, qtype, int(shape[0]), int(shape[1]), _array_rows(make), num))
    return items


# ----------------------------------------------------------------------------- metadata
def _get(cfg: dict, path: str, default: Any = None, where: str = "config.json"):
    cur: Any = cfg
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur or cur[part] is None:
            if default is not None:
                return default
            raise EdgeTTSError(f"{where}: missing {path}")
        cur = cur[part]
    return cur


def _typed(vtype: str, v: Any) -> Any:
    if vtype == "u32":
        return int(v)
    if vtype == "f32":
        return float(v)
    if vtype == "bool":
        return bool(v)
    if vtype == "str":
        return str(v)
    if vtype == "i32[]":
        return [int(x) for x in v]
    return v


def size_and_kind(cfg: dict, name_hint: str) -> tuple[str, str]:
    """('0.6B', 'CustomVoice')-style labels: from the directory name, else from the config."""
    m = TALKER_DIR_RE.search(name_hint or "")
    if m:
        return m.group(1), m.group(2)
    size = str(cfg.get("tts_model_size", "unknown"))
    sm = re.fullmatch(r"(\d+)b(\d+)", size)
    if sm:
        size = f"{sm.group(1)}.{sm.group(2)}B"
    kind = str(cfg.get("tts_model_type", "unknown"))
    return size, kind


def load_text_tokenizer(d: Path) -> tuple[list[str], list[int], list[str], int] | None:
    """(tokens, token types, merges, eos id) from vocab.json + merges.txt (+ tokenizer_config.json)
    or tokenizer.json; None when the directory has neither."""
    vocab: dict[str, int]
    merges: list[str]
    added: dict[int, str] = {}
    try:
        if (d / "vocab.json").is_file() and (d / "merges.txt").is_file():
            vocab = json.loads((d / "vocab.json").read_text(encoding="utf-8"))
            lines = (d / "merges.txt").read_text(encoding="utf-8").split("\n")
            if lines and lines[0].startswith("#version"):
                lines = lines[1:]
            merges = [ln.rstrip("\r") for ln in lines if ln.strip()]
            tc = d / "tokenizer_config.json"
            if tc.is_file():
                for sid, info in (json.loads(tc.read_text(encoding="utf-8"))
                                  .get("added_tokens_decoder") or {}).items():
                    added[int(sid)] = info["content"]
        elif (d / "tokenizer.json").is_file():
            tj = json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))
            vocab = tj["model"]["vocab"]
            merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"].get("merges", [])]
            for a in tj.get("added_tokens") or []:
                added[int(a["id"])] = a["content"]
        else:
            return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise EdgeTTSError(f"{d}: cannot read the text tokenizer files ({type(e).__name__}: {e})") from None
    n = max(list(vocab.values()) + list(added)) + 1
    tokens: list[str | None] = [None] * n
    types = [K.TOKEN_TYPE_NORMAL] * n
    for tok, i in vocab.items():
        tokens[int(i)] = tok
    for i, tok in added.items():
        tokens[i] = tok
        types[i] = K.TOKEN_TYPE_USER_DEFINED
    for i, tok in enumerate(tokens):
        if tok is None:
            tokens[i] = f"<|unused-{i}|>"
            types[i] = K.TOKEN_TYPE_UNUSED
    eos = next((i for i, t in enumerate(tokens) if t == "<|endoftext|>"), K.QWEN2_ENDOFTEXT_ID)
    return tokens, types, merges, eos  # type: ignore[return-value]


def quant_kv(qtype: str, items: list[Item], source: str) -> list[tuple[str, str, Any]]:
    rt = role_types(qtype)
    kv = [(K.GENERAL_FILE_TYPE, "str", qtype.upper()),
          (K.GENERAL_QUANTIZATION_VERSION, "u32", K.QUANTIZATION_VERSION),
          (K.EDGETTS_VERSION, "str", edgetts.__version__),
          (K.EDGETTS_QUANT_POLICY, "str", policy_line(qtype))]
    kv += [(K.EDGETTS_QUANT_ROLE + r, "str", rt[r]) for r in ROLES]
    kv += [(K.EDGETTS_QUANT_FALLBACK, "u32", sum(it.fallback for it in items)),
           (K.EDGETTS_QUANT_SOURCE, "str", source)]
    return kv


def main_kv(cfg: dict, gen: dict | None, src_dir: Path, name_hint: str,
            warn=lambda msg: None) -> list[tuple[str, str, Any]]:
    size, _ = size_and_kind(cfg, name_hint)
    kv: list[tuple[str, str, Any]] = [(K.GENERAL_NAME, "str", f"Qwen3-TTS-12Hz-{size}-{_get(cfg, 'tts_model_type')}")]
    rows = K.MAIN_KV + K.CODE_PRED_KV
    for key, vt, path in rows:
        kv.append((key, vt, _typed(vt, _get(cfg, path))))
    rope = _get(cfg, "talker_config", {}).get("rope_scaling") or {}
    if "mrope_section" in rope:
        # keep them next to the talker keys, as qwentts.cpp does
        at = len(K.MAIN_KV) + 1
        kv[at:at] = [(K.TALKER_MROPE_SECTION, "i32[]", _typed("i32[]", rope["mrope_section"])),
                     (K.TALKER_MROPE_INTERLEAVED, "bool", bool(rope.get("interleaved", False)))]
    if cfg.get("speaker_encoder_config"):
        kv += [(key, vt, _typed(vt, _get(cfg, path))) for key, vt, path in K.SPK_ENC_KV]
    kv += [(key, vt, _typed(vt, _get(cfg, path))) for key, vt, path in K.CODEC_IDS_KV]
    tc = cfg["talker_config"]
    langs = tc.get("codec_language_id") or {}
    kv += [(K.LANGUAGE_NAMES, "str[]", list(langs)), (K.LANGUAGE_IDS, "i32[]", [int(v) for v in langs.values()])]
    spk = tc.get("spk_id") or {}
    if spk:
        dialect = tc.get("spk_is_dialect") or {}
        kv += [(K.SPEAKER_NAMES, "str[]", list(spk)),
               (K.SPEAKER_IDS, "i32[]", [int(v) for v in spk.values()]),
               (K.SPEAKER_DIALECTS, "str[]", [d if isinstance(d := dialect.get(s), str) else "" for s in spk])]
    kv += [(key, vt, _typed(vt, _get(cfg, path, default))) for key, vt, path, default in K.TEXT_IDS_KV]
    for key, vt, path in K.GENERATION_KV:
        if gen and gen.get(path) is not None:
            kv.append((key, vt, _typed(vt, gen[path])))
    tok = load_text_tokenizer(src_dir)
    if tok is None:
        warn(f"{src_dir}: no vocab.json + merges.txt or tokenizer.json; the talker GGUF has no text tokenizer")
    else:
        tokens, types, merges, eos = tok
        kv += [(K.TOKENIZER_MODEL, "str", "gpt2"), (K.TOKENIZER_TOKENS, "str[]", tokens),
               (K.TOKENIZER_TOKEN_TYPE, "i32[]", types), (K.TOKENIZER_MERGES, "str[]", merges),
               (K.TOKENIZER_EOS_ID, "u32", int(eos))]
    return kv


def codec_kv(ccfg: dict, codebook_width: int) -> list[tuple[str, str, Any]]:
    where = "speech_tokenizer/config.json"
    kv: list[tuple[str, str, Any]] = [(K.GENERAL_NAME, "str", K.CODEC_NAME_12HZ)]
    for key, vt, path, default in K.CODEC_KV:
        if key == K.DECODER_CODEBOOK_DIM_INTERNAL:
            kv.append((key, vt, int(codebook_width)))
            continue
        if default == "codebook_dim":
            default = _get(ccfg, "decoder_config.codebook_dim", where=where)
        kv.append((key, vt, _typed(vt, _get(ccfg, path, default, where=where))))
    return kv


# ---------------------------------------------------------------------------- checks
def check_checkpoint(d: Path) -> W.Checkpoint:
    """Open an HF directory and make sure it is a Qwen3-TTS 12 Hz checkpoint."""
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise EdgeTTSError(f"{d}: not a Qwen3-TTS checkpoint (no config.json)")
    ck = W.open(d)
    cfg = ck.config or {}
    if not isinstance(cfg, dict) or cfg.get("model_type") != K.HF_MODEL_TYPE:
        mt = cfg.get("model_type") if isinstance(cfg, dict) else None
        raise EdgeTTSError(f"{cfg_path}: model_type {mt!r} is not supported (expected {K.HF_MODEL_TYPE!r})")
    tt = cfg.get("tokenizer_type", K.TOKENIZER_TYPE_12HZ)
    if tt != K.TOKENIZER_TYPE_12HZ:
        raise EdgeTTSError(f"{cfg_path}: tokenizer_type {tt!r} is not supported (only {K.TOKENIZER_TYPE_12HZ!r})")
    if ck.main is None:
        raise EdgeTTSError(f"{d}: no model.safetensors (or shard index) in the checkpoint")
    if ck.codec is not None:
        cc = ck.codec_config or {}
        if cc.get("model_type") != K.TOKENIZER_TYPE_12HZ:
            raise EdgeTTSError(f"{d / 'speech_tokenizer' / 'config.json'}: speech tokenizer model_type "
                               f"{cc.get('model_type')!r} is not supported (only {K.TOKENIZER_TYPE_12HZ!r})")
    return ck


def output_names(cfg: dict, name_hint: str, qtype: str) -> tuple[str, str]:
    size, kind = size_and_kind(cfg, name_hint)
    q = qtype.upper()
    talker = K.TALKER_FILE.format(size=size.lower(), kind=kind.replace("_", "").lower(), qtype=q)
    return talker, K.CODEC_FILE.format(qtype=q)


def stderr_warn(msg: str) -> None:
    print(f"edgetts: note: {msg}", file=sys.stderr)


# ---------------------------------------------------------------------------- conversion
def check_source(src) -> Path:
    """The checkpoint directory SRC, or a one-line error saying what SRC is instead."""
    p = Path(src).expanduser()
    if not p.exists():
        raise EdgeTTSError(f"{src}: no such file or directory")
    if p.is_file():
        kind = W.sniff(p)   # raises for garbage / empty files
        if kind == "gguf":
            W.read_gguf(p)  # raises for truncated / corrupt files
            raise EdgeTTSError(f"{p}: is already a GGUF file; quantize takes a Hugging Face checkpoint directory")
        W.read_safetensors(p)
        raise EdgeTTSError(f"{p}: is a single safetensors file; quantize takes the checkpoint directory "
                           "(config.json, model.safetensors, speech_tokenizer/)")
    return p


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


def convert(src, qtype: str, outdir=None, *, name: str | None = None, progress: bool = True,
            out=None) -> tuple[Path, Path | None]:
    """Convert the checkpoint directory `src` and write the GGUF pair into `outdir` (default
    ./<name>-<qtype>); returns (talker path, codec path or None). `name` labels the files and
    the metadata (default: the directory's name); `out` receives the report (default stdout)."""
    out = out or sys.stdout
    t0 = time.perf_counter()
    if qtype not in QTYPES:
        raise EdgeTTSError(f"unknown qtype {qtype!r} (choose one of {', '.join(QTYPES)})")
    d = check_source(src)
    hint = name or d.resolve().name
    ck = check_checkpoint(d)
    cfg = ck.config or {}
    notes: list[str] = []
    warn = notes.append

    main_items = plan_items(ck.main, qtype, warn=warn)
    kv_main = main_kv(cfg, ck.generation_config, d, hint, warn=warn)
    kv_main += quant_kv(qtype, main_items, hint)
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
        codec_items = plan_items(ck.codec, qtype, drop=drop, warn=warn)
        widths = [it.ncols for it in codec_items if it.name.startswith("tok_dec.vq_") and it.name.endswith(".codebook")]
        kv_codec = codec_kv(cc, widths[0] if widths else cc.get("decoder_config", {}).get("codebook_dim", 0) // 2)
        kv_codec += quant_kv(qtype, codec_items, hint)
    else:
        warn(f"{d}: no speech_tokenizer/ directory; writing the talker GGUF only")

    talker_name, codec_name = output_names(cfg, hint, qtype)
    outp = Path(outdir).expanduser() if outdir else Path.cwd() / f"{hint}-{qtype}"
    created = prepare_outdir(outp)

    for n in notes:
        print(f"note: {n}", file=out)
    for it in main_items + codec_items:
        if it.fallback:
            print(f"note: {it.name}: row length {it.ncols} is not a multiple of 32; stored as F16 "
                  f"instead of {role_types(qtype)[it.role]}", file=out)

    from tqdm import tqdm

    total = len(main_items) + len(codec_items)
    with tqdm(total=total, unit="tensor", desc=f"quantize {qtype}", disable=not progress, file=sys.stderr,
              leave=False) as bar:
        def tick(it):
            bar.update(1)
        tp = outp / talker_name
        cp = outp / codec_name if codec_items else None
        af = AtomicOutput()
        try:
            with af:
                try:
                    write_gguf(af.temp(tp), K.ARCH_MAIN, kv_main, main_items, tick)
                    if cp is not None:
                        write_gguf(af.temp(cp), K.ARCH_CODEC, kv_codec, codec_items, tick)
                except OSError as e:   # full disk, file too large: name the cause, then clean up
                    raise af.failed(e, outp) from None
        except BaseException:
            if created and not any(outp.iterdir()):
                outp.rmdir()   # leave nothing behind, not even the directory we made
            raise
    dt = time.perf_counter() - t0
    print(f"policy: {policy_line(qtype)}", file=out)
    print(f"wrote {tp} ({tp.stat().st_size / 1e6:.1f} MB, {len(main_items)} tensors)", file=out)
    if cp is not None:
        print(f"wrote {cp} ({cp.stat().st_size / 1e6:.1f} MB, {len(codec_items)} tensors)", file=out)
    print(f"done in {dt:.1f} s", file=out)
    return tp, cp
