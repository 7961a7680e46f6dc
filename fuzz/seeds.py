"""Seed inputs for the fuzz targets, made from the tiny test fixture (nothing is committed).

    python fuzz/seeds.py OUT_DIR       # OUT_DIR/{gguf,safetensors,config,model}/...

gguf:        the tiny model converted by `quantize` (talker + codec GGUF, Q8_0 and Q4_0), and a
             micro talker / codec GGUF (the real metadata and tokenizer, a dozen small tensors of
             every stored type) that loads in full within a few KB
safetensors: the tiny model.safetensors and codec safetensors, and a micro talker file (F32,
             F16, BF16, I64, U8 tensors, __metadata__)
config:      the fixture's three JSON files, each behind its selector byte (see targets.py)
model:       the converted tiny talker GGUFs
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
TINY = ROOT / "tests" / "fixtures" / "tiny"


def _quantized(w, name: str, x: np.ndarray, qtype: str) -> None:
    import gguf
    t = gguf.GGMLQuantizationType[qtype]
    w.add_tensor(name, gguf.quants.quantize(x.astype(np.float32), t), raw_dtype=t)


def micro_talker_tensors() -> dict[str, np.ndarray]:
    """GGUF name -> float32 array: a complete one-layer talker + code predictor (hidden 32, 2 query
    heads / 1 kv head of 16), its codec vocabulary just wide enough for the fixture's ids."""
    tc = json.loads((TINY / "config.json").read_text())["talker_config"]
    vocab = max([int(tc["codec_eos_token_id"])] + [int(v) for v in tc.get("spk_id", {}).values()]
                + [int(v) for v in tc.get("codec_language_id", {}).values()]) + 1
    rng = np.random.default_rng(0)
    hidden, hd, ffn, groups = 32, 16, 32, int(tc["num_code_groups"])
    shapes = {}
    for p in ("talker", "code_pred"):
        b = f"{p}.blk.0."
        shapes.update({b + "attn_norm.weight": (hidden,), b + "ffn_norm.weight": (hidden,),
                       b + "attn_q_norm.weight": (hd,), b + "attn_k_norm.weight": (hd,),
                       b + "attn_q.weight": (2 * hd, hidden), b + "attn_k.weight": (hd, hidden),
                       b + "attn_v.weight": (hd, hidden), b + "attn_output.weight": (hidden, 2 * hd),
                       b + "ffn_gate.weight": (ffn, hidden), b + "ffn_up.weight": (ffn, hidden),
                       b + "ffn_down.weight": (hidden, ffn), f"{p}.output_norm.weight": (hidden,)})
    rows = -(-vocab // 32) * 32
    shapes.update({"talker.codec_embd.weight": (rows, hidden), "talker.codec_head.weight": (rows, hidden),
                   "talker.text_embd.weight": (8, hidden),
                   "talker.text_proj.fc1.weight": (hidden, hidden), "talker.text_proj.fc1.bias": (hidden,),
                   "talker.text_proj.fc2.weight": (hidden, hidden), "talker.text_proj.fc2.bias": (hidden,)})
    for j in range(groups - 1):
        shapes[f"code_pred.codec_embd.{j}.weight"] = (64, hidden)
        shapes[f"code_pred.lm_head.{j}.weight"] = (64, hidden)
    return {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}


def micro_talker_gguf(path: Path) -> None:
    """The tiny fixture's talker metadata (and tokenizer) over micro tensors of each type."""
    import gguf
    from quantize import convert
    from quantize.writer import _ADD

    cfg = json.loads((TINY / "config.json").read_text())
    gen = json.loads((TINY / "generation_config.json").read_text())
    w = gguf.GGUFWriter(str(path), "qwen3-tts")
    w.add_custom_alignment(64)      # general.alignment present: a field to mutate
    for key, vtype, value in convert.main_kv(cfg, gen, TINY, "tiny"):
        if vtype.endswith("[]"):
            w.add_array(key, list(value))
        else:
            getattr(w, _ADD[vtype])(key, value)
    types = iter(["Q8_0", "Q4_0", "F16", "BF16", "F32"] * 40)   # every stored type the loaders read
    for name, x in micro_talker_tensors().items():
        t = next(types) if x.ndim == 2 else "F32"
        if t == "F32":
            w.add_tensor(name, x)
        elif t == "F16":
            w.add_tensor(name, x.astype(np.float16))
        else:
            _quantized(w, name, x, t)
    w.add_tensor("extra.i32", np.arange(4, dtype=np.int32))
    w.add_tensor("extra.f64", np.arange(3, dtype=np.float64))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def micro_codec_gguf(path: Path) -> None:
    import gguf
    from quantize import convert
    from quantize.writer import _ADD

    ccfg = json.loads((TINY / "speech_tokenizer" / "config.json").read_text())
    w = gguf.GGUFWriter(str(path), "qwen3-tts-tokenizer")
    for key, vtype, value in convert.codec_kv(ccfg, ccfg["decoder_config"]["codebook_dim"] // 2):
        if vtype.endswith("[]"):
            w.add_array(key, list(value))
        else:
            getattr(w, _ADD[vtype])(key, value)
    rng = np.random.default_rng(1)
    w.add_tensor("tok_dec.vq_first.0.codebook", rng.standard_normal((16, 8)).astype(np.float32))
    w.add_tensor("tok_dec.pre_conv.weight", rng.standard_normal((3, 8, 4)).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def micro_talker_safetensors(path: Path) -> None:
    """The micro talker under its Hugging Face names (the fixture's names mapped through
    edgetts.gguf.names), F32 / F16 / BF16, plus I64 and U8 extras and __metadata__."""
    from safetensors import safe_open

    from edgetts.gguf.names import hf_to_gguf

    micro = micro_talker_tensors()
    with safe_open(str(TINY / "model.safetensors"), "numpy") as f:
        hf_names = {hf_to_gguf(n): n for n in f.keys()}
    arrays = [(hf_names[g], x) for g, x in micro.items()]
    arrays += [("extra.i64", np.arange(3, dtype=np.int64)), ("extra.u8", np.arange(5, dtype=np.uint8))]
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for i, (name, a) in enumerate(arrays):
        if a.dtype == np.float32:
            dt = ("F32", "F16", "BF16")[i % 3]
            b = {"F32": a, "F16": a.astype(np.float16),
                 "BF16": (a.view(np.uint32) >> 16).astype(np.uint16)}[dt].tobytes()
        else:
            dt, b = {"int64": "I64", "uint8": "U8"}[str(a.dtype)], a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make(out: Path) -> Path:
    from quantize.convert import convert

    out.mkdir(parents=True, exist_ok=True)
    for d in ("gguf", "safetensors", "config", "model"):
        (out / d).mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for q in ("q8_0", "q4_0"):
            with open(os.devnull, "w") as quiet:
                tp, cp = convert(TINY, q, Path(tmp) / q, progress=False, out=quiet)
            shutil.copy(tp, out / "gguf" / f"talker-{q}.gguf")
            shutil.copy(cp, out / "gguf" / f"codec-{q}.gguf")
            shutil.copy(tp, out / "model" / f"talker-{q}.gguf")
        shutil.copy(cp, out / "codec.gguf")           # the model target's fixed partner
    micro_talker_gguf(out / "gguf" / "micro-talker.gguf")
    micro_codec_gguf(out / "gguf" / "micro-codec.gguf")
    shutil.copy(TINY / "model.safetensors", out / "safetensors" / "tiny-model.safetensors")
    shutil.copy(TINY / "speech_tokenizer" / "model.safetensors", out / "safetensors" / "tiny-codec.safetensors")
    micro_talker_safetensors(out / "safetensors" / "micro-talker.safetensors")
    for i, name in enumerate(("config.json", "generation_config.json", "speech_tokenizer/config.json")):
        (out / "config" / f"{i}-{Path(name).name}").write_bytes(bytes([i]) + (TINY / name).read_bytes())
    return out


if __name__ == "__main__":
    make(Path(sys.argv[1]))
