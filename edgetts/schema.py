"""Every config value the engine reads, with its type and range: checked once, at load.

Three tables, one per file of a Hugging Face checkpoint (config.json, generation_config.json,
speech_tokenizer/config.json). A GGUF file's metadata goes through the same tables after
`edgetts.gguf.metadata` has turned it back into those dicts; errors then name the GGUF key
(the key tables in `edgetts.gguf.constants` map a config path to its key).

    check(cfg, MAIN, "model/config.json")                    # raises EdgeTTSError
    check(cfg, MAIN, "talker.gguf", keys=gguf_keys(...))     # names qwen3-tts.* keys

A missing value is not an error here (the readers have defaults or say what is missing); a
present value of the wrong type or outside its range is. Ranges are generous: they exclude what
cannot work (a zero head count, a negative id) and sizes that would only exhaust memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import EdgeTTSError
from .gguf import constants as K

U31 = 2 ** 31 - 1       # largest id / count stored as int32


@dataclass(frozen=True)
class Rule:
    path: str                    # dotted path in the config dict
    kind: str                    # int | float | bool | str | int[] | ids | dialects
    lo: float | None = None      # inclusive bounds (numbers; for int[] each element)
    hi: float | None = None
    above: float | None = None   # exclusive lower bound (eps, temperature, ...)
    choices: tuple = ()          # allowed str values
    max_len: int = 64            # int[] length
    required: bool = False       # absent is an error too (no reader default)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v) -> bool:
    return (_int(v) or isinstance(v, float)) and math.isfinite(v)


_KINDS = {
    "int": (_int, "an integer"),
    "float": (_num, "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "int[]": (lambda v: isinstance(v, list) and all(_int(x) for x in v), "a list of integers"),
    "ids": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and _int(x) for k, x in v.items()),
            "a map of names to integer ids"),
    "dialects": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and (isinstance(x, (str, bool)) or x is None)
                                                      for k, x in v.items()), "a map of names to dialect names"),
}


def _get(d: dict, path: str):
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _range_ok(r: Rule, x) -> bool:
    return ((r.lo is None or x >= r.lo) and (r.hi is None or x <= r.hi)
            and (r.above is None or x > r.above))


def _range_text(r: Rule) -> str:
    lo = f"> {r.above:g}" if r.above is not None else (f">= {r.lo:g}" if r.lo is not None else "")
    hi = f"<= {r.hi:g}" if r.hi is not None else ""
    return " and ".join(t for t in (lo, hi) if t)


def check(d: dict | None, rules: Iterable[Rule], where: str, keys: dict[str, str] | None = None) -> None:
    """Raise EdgeTTSError '<where>: <field> ...' for the first value of the wrong type or range."""
    if d is None:
        return
    if not isinstance(d, dict):
        raise EdgeTTSError(f"{where}: not a JSON object")
    for r in rules:
        parent = _get(d, r.path.rsplit(".", 1)[0]) if "." in r.path else d
        if "." in r.path and parent is not None and not isinstance(parent, dict):
            raise EdgeTTSError(f"{where}: {r.path.rsplit('.', 1)[0]} must be an object, "
                               f"got {type(parent).__name__}")
        v = _get(d, r.path)
        name = (keys or {}).get(r.path, r.path)
        if v is None:
            if r.required:
                raise EdgeTTSError(f"{where}: missing {name}")
            continue
        ok, want = _KINDS[r.kind]
        if not ok(v):
            raise EdgeTTSError(f"{where}: {name} must be {want}, got {_show(v)}")
        if r.choices and v not in r.choices:
            raise EdgeTTSError(f"{where}: {name} must be one of {', '.join(r.choices)}, got {_show(v)}")
        values = v if r.kind == "int[]" else list(v.values()) if r.kind == "ids" else \
            [v] if r.kind in ("int", "float") else []
        if r.kind == "int[]" and not 1 <= len(v) <= r.max_len:
            raise EdgeTTSError(f"{where}: {name} must have 1 to {r.max_len} entries, got {len(v)}")
        for x in values:
            if not _range_ok(r, x):
                raise EdgeTTSError(f"{where}: {name} must be {_range_text(r)}, got {_show(x)}")


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


# ------------------------------------------------------------------------------ the tables
def _stack(prefix: str) -> list[Rule]:
    return [Rule(prefix + "rms_norm_eps", "float", above=0, hi=1),
            Rule(prefix + "rope_theta", "float", above=0, hi=1e12),
            Rule(prefix + "max_position_embeddings", "int", lo=1, hi=2 ** 24)]


_T = "talker_config."
MAIN: list[Rule] = [
    *_stack(_T),
    *_stack(_T + "code_predictor_config."),
    Rule(_T + "num_code_groups", "int", lo=2, hi=64),
    *[Rule(path, "int", lo=0, hi=U31) for _, _, path in K.CODEC_IDS_KV],
    Rule(_T + "codec_language_id", "ids", lo=0, hi=U31),
    Rule(_T + "spk_id", "ids", lo=0, hi=U31),
    Rule(_T + "spk_is_dialect", "dialects"),
    *[Rule(path, "int", lo=0, hi=U31) for _, _, path, _ in K.TEXT_IDS_KV],
    Rule("tts_model_type", "str", choices=("custom_voice", "voice_design", "base")),
    Rule("tts_model_size", "str"),
    Rule("speaker_encoder_config.enc_dim", "int", lo=0, hi=65536),
    Rule("speaker_encoder_config.sample_rate", "int", lo=1000, hi=384000),
]

GENERATION: list[Rule] = [
    Rule("do_sample", "bool"), Rule("subtalker_dosample", "bool"),
    *[Rule(k, "float", above=0, hi=100) for k in ("temperature", "subtalker_temperature")],
    *[Rule(k, "int", lo=0, hi=U31) for k in ("top_k", "subtalker_top_k")],
    *[Rule(k, "float", above=0, hi=1) for k in ("top_p", "subtalker_top_p")],
    Rule("repetition_penalty", "float", above=0, hi=100),
    Rule("max_new_tokens", "int", lo=1, hi=2 ** 24),
]

_D = "decoder_config."
CODEC: list[Rule] = [
    Rule("output_sample_rate", "int", lo=1000, hi=384000),
    Rule("input_sample_rate", "int", lo=1000, hi=384000),
    Rule("decode_upsample_rate", "int", lo=1, hi=2 ** 16),
    Rule("encoder_valid_num_quantizers", "int", lo=1, hi=64),
    *[Rule(_D + k, "int", lo=1, hi=hi, required=req) for k, hi, req in (
        ("codebook_size", 2 ** 20, True), ("codebook_dim", 2 ** 16, True), ("num_quantizers", 64, True),
        ("num_semantic_quantizers", 64, False), ("latent_dim", 2 ** 16, True),
        ("hidden_size", 2 ** 16, True), ("intermediate_size", 2 ** 18, True),
        ("num_hidden_layers", 256, True), ("num_attention_heads", 1024, True),
        ("num_key_value_heads", 1024, False), ("head_dim", 4096, False),
        ("sliding_window", 2 ** 16, True), ("decoder_dim", 2 ** 16, True))],
    Rule(_D + "upsample_rates", "int[]", lo=1, hi=64, max_len=16, required=True),
    Rule(_D + "upsampling_ratios", "int[]", lo=1, hi=64, max_len=16, required=True),
    Rule(_D + "rope_theta", "float", above=0, hi=1e12),
    Rule(_D + "rms_norm_eps", "float", above=0, hi=1),
]


def gguf_keys(*tables) -> dict[str, str]:
    """config path -> GGUF key, from the key tables in edgetts.gguf.constants."""
    out = {}
    for rows in tables:
        for key, _, path, *_ in rows:
            if path:
                out[path] = key
    return out


MAIN_KEYS = gguf_keys(K.MAIN_KV, K.CODE_PRED_KV, K.SPK_ENC_KV, K.CODEC_IDS_KV, K.TEXT_IDS_KV)
MAIN_KEYS.update({_T + "codec_language_id": f"{K.LANGUAGE_NAMES} / {K.LANGUAGE_IDS}",
                  _T + "spk_id": f"{K.SPEAKER_NAMES} / {K.SPEAKER_IDS}",
                  _T + "spk_is_dialect": K.SPEAKER_DIALECTS})
GENERATION_KEYS = gguf_keys(K.GENERATION_KV)
CODEC_KEYS = gguf_keys(K.CODEC_KV)

# GGUF arrays the readers zip together (names with ids): element type and the partner key
GGUF_ARRAYS = [(K.LANGUAGE_NAMES, str, K.LANGUAGE_IDS), (K.LANGUAGE_IDS, int, K.LANGUAGE_NAMES),
               (K.SPEAKER_NAMES, str, K.SPEAKER_IDS), (K.SPEAKER_IDS, int, K.SPEAKER_NAMES),
               (K.SPEAKER_DIALECTS, str, K.SPEAKER_NAMES)]


def check_gguf_arrays(meta: dict, where: str) -> None:
    """The name / id arrays of a qwen3-tts GGUF: lists of the right element type, equal lengths."""
    for key, etype, partner in GGUF_ARRAYS:
        v = meta.get(key)
        if v is None:
            continue
        if not isinstance(v, list) or not all(isinstance(x, etype) and not isinstance(x, bool) for x in v):
            raise EdgeTTSError(f"{where}: {key} must be an array of "
                               f"{'strings' if etype is str else 'integers'}")
        other = meta.get(partner)
        if isinstance(other, list) and len(other) != len(v):
            raise EdgeTTSError(f"{where}: {key} has {len(v)} entries but {partner} has {len(other)}")


def check_ids(values: dict[str, int], n: int, where: str, vocab: str) -> None:
    """Every id in `values` (field name -> id) must be a row of a table with n rows."""
    for name, i in values.items():
        if not 0 <= i < n:
            raise EdgeTTSError(f"{where}: {name} = {i} is outside the {vocab} (0..{n - 1})")
