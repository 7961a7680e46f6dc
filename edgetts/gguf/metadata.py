"""GGUF metadata -> the Hugging Face config dicts it was written from.

The key tables in `constants` say where each key's value comes from in config.json; `quantize`
follows them to write, and this module follows the same rows backwards to read, so a GGUF file
and a Hugging Face directory go through one config reader (`edgetts.models.config`).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from . import constants as K


def _f32(v: Any) -> float:
    """A FLOAT32 value as the decimal it was written from (0.9, not 0.8999999761581421):
    the shortest repr that round-trips through float32."""
    return float(str(np.float32(v)))


def _put(d: dict, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d[leaf] = value


def unflatten(meta: dict, rows: Iterable[tuple], into: dict | None = None) -> dict:
    """{config path: value} for each (key, type, path, ...) row whose key is in `meta`."""
    out = {} if into is None else into
    for key, vtype, path, *_ in rows:
        if path and key in meta:
            v = meta[key]
            _put(out, path, _f32(v) if vtype == "f32" else v)
    return out


def main_config(meta: dict) -> tuple[dict, dict]:
    """(config.json, generation_config.json) dicts of a `qwen3-tts` GGUF."""
    cfg = unflatten(meta, K.MAIN_KV + K.CODE_PRED_KV + K.SPK_ENC_KV + K.CODEC_IDS_KV + K.TEXT_IDS_KV)
    tc = cfg.setdefault("talker_config", {})
    tc["codec_language_id"] = dict(zip(meta.get(K.LANGUAGE_NAMES) or [], meta.get(K.LANGUAGE_IDS) or []))
    names = list(meta.get(K.SPEAKER_NAMES) or [])
    tc["spk_id"] = dict(zip(names, meta.get(K.SPEAKER_IDS) or []))
    tc["spk_is_dialect"] = {n: d for n, d in zip(names, meta.get(K.SPEAKER_DIALECTS) or []) if d}
    return cfg, unflatten(meta, K.GENERATION_KV)


def codec_config(meta: dict) -> dict:
    """speech_tokenizer/config.json dict of a `qwen3-tts-tokenizer` GGUF."""
    return unflatten(meta, K.CODEC_KV)
