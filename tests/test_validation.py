"""Validation at the boundary, case by case: each malformed file is a one-line EdgeTTSError that
names the file and the field or tensor (the property tests cover the space; these pin the checks)."""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

import edgetts
from edgetts import weights as W
from edgetts.errors import EdgeTTSError
from test_weights import write_gguf

TINY = Path(__file__).resolve().parent / "fixtures" / "tiny"


def safetensors_bytes(header: dict, body: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


def patch_tensor_field(path: Path, index: int, part: int, value: int) -> None:
    """Overwrite one tensor-info field (2 n_dims, 3 dims, 4 type, 5 offset) in place."""
    r = gguf.GGUFReader(str(path))
    p = r.tensors[index].field.parts[part]
    pos, n = p.ctypes.data - r.data.ctypes.data, p.itemsize
    del r, p
    raw = bytearray(path.read_bytes())
    raw[pos:pos + n] = value.to_bytes(n, "little")
    path.write_bytes(bytes(raw))


def one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# ------------------------------------------------------------------------------ safetensors
@pytest.mark.parametrize("header,body,words", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12), ["'a'", "'b'", "overlap"]),
    ({"a": {"dtype": "F32", "shape": [2 ** 62, 4], "data_offsets": [0, 0]}}, bytes(8), ["'a'", "data_offsets span"]),
    ({"a": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}}, bytes(8), ["'a'", "shape"]),
    ({"a": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}}, bytes(8), ["'a'", "shape"]),
    ({"a": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}, bytes(8), ["'a'", "dtype"]),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(8), ["'a'", "data_offsets"]),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8), ["'a'", "outside"]),
    ({"a": [1, 2]}, b"", ["'a'", "not an object"]),
    ({"__metadata__": ["x"]}, b"", ["__metadata__"]),
])
def test_safetensors_entries(tmp_path, header, body, words):
    p = tmp_path / "m.safetensors"
    p.write_bytes(safetensors_bytes(header, body))
    with pytest.raises(EdgeTTSError) as e:
        W.read_safetensors(p)
    msg = one_line(e)
    assert msg.startswith(str(p))
    for w in words:
        assert w in msg


def test_deeply_nested_json_is_an_error(tmp_path):
    p = tmp_path / "m.safetensors"
    deep = b"{\"a\":" + b"[" * 100_000 + b"]" * 100_000 + b"}"
    p.write_bytes(struct.pack("<Q", len(deep)) + deep)
    with pytest.raises(EdgeTTSError, match="nested too deeply"):
        W.read_safetensors(p)
    d = tmp_path / "hf"
    shutil.copytree(TINY, d, symlinks=True)
    (d / "config.json").write_bytes(deep)
    with pytest.raises(EdgeTTSError, match=r"config\.json: not valid JSON \(nested too deeply\)"):
        W.open(d)


def test_shard_index_must_stay_in_its_folder(tmp_path):
    d = tmp_path / "hf"
    shutil.copytree(TINY, d, symlinks=True)
    (d / "model.safetensors").unlink()
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "../../etc/passwd"}}))
    with pytest.raises(EdgeTTSError, match="weight_map"):
        W.open(d)


# ------------------------------------------------------------------------------ GGUF
def test_gguf_overlap_misalignment_duplicates_and_sizes(tmp_path):
    a, b = np.arange(8, dtype=np.float32), np.arange(16, dtype=np.float32)
    src = write_gguf(tmp_path / "ok.gguf", "qwen3-tts", {"a": a, "b": b})
    assert W.read_gguf(src)["b"].numpy().tolist() == b.tolist()
    second = gguf.GGUFReader(str(src)).tensors[1].data_offset - gguf.GGUFReader(str(src)).tensors[0].data_offset

    cases = [((1, 5, 0), "overlap"),                      # b at a's offset
             ((1, 5, second + 4), "alignment"),           # b not aligned
             ((1, 4, 9999), "unsupported type"),          # unknown tensor type
             ((1, 2, 9), "dimensions"),                   # 9 dims
             ((0, 3, 2 ** 40), "outside")]                # a's size past the end
    for (i, part, value), word in cases:
        p = tmp_path / f"bad-{word.replace(' ', '_')}.gguf"
        shutil.copy(src, p)
        patch_tensor_field(p, i, part, value)
        with pytest.raises(EdgeTTSError) as e:
            W.read_gguf(p)
        msg = one_line(e)
        assert msg.startswith(str(p)) and word in msg, msg


def test_gguf_bad_alignment_value(tmp_path):
    p = tmp_path / "a.gguf"
    w = gguf.GGUFWriter(str(p), "qwen3-tts")
    w.add_custom_alignment(64)
    w.add_tensor("a", np.zeros(4, np.float32))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    r = gguf.GGUFReader(str(p))
    part = r.fields["general.alignment"].parts[-1]
    pos = part.ctypes.data - r.data.ctypes.data
    del r, part
    raw = bytearray(p.read_bytes())
    raw[pos:pos + 4] = (48).to_bytes(4, "little")
    p.write_bytes(bytes(raw))
    with pytest.raises(EdgeTTSError, match="general.alignment = 48 is not a power of two"):
        W.read_gguf(p)


# ------------------------------------------------------------------------------ configs and ids
def _tiny_copy(tmp_path) -> Path:
    d = tmp_path / "m"
    shutil.copytree(TINY, d, symlinks=True)
    return d


@pytest.mark.parametrize("file,path,value,words", [
    ("config.json", "talker_config.rope_theta", "big", ["config.json: talker_config.rope_theta must be a number"]),
    ("config.json", "talker_config.code_predictor_config.rms_norm_eps", 0,
     ["talker_config.code_predictor_config.rms_norm_eps must be > 0"]),
    ("config.json", "talker_config.codec_eos_token_id", 999_999,
     ["codec_eos_id = 999999 is outside the codec vocabulary"]),
    ("config.json", "talker_config.spk_id", {"x": 10 ** 7}, ["speaker x = 10000000 is outside"]),
    ("config.json", "tts_model_type", "karaoke", ["tts_model_type must be one of"]),
    ("generation_config.json", "top_p", 1.5, ["generation_config.json: top_p must be > 0 and <= 1"]),
    ("generation_config.json", "max_new_tokens", 0, ["max_new_tokens must be >= 1"]),
    ("speech_tokenizer/config.json", "decoder_config.sliding_window", 2 ** 40,
     ["speech_tokenizer/config.json: decoder_config.sliding_window must be >= 1 and <= 65536"]),
    ("speech_tokenizer/config.json", "decoder_config.upsample_rates", [8, 0], ["upsample_rates must be >= 1"]),
])
def test_config_fields_at_load(tmp_path, file, path, value, words):
    d = _tiny_copy(tmp_path)
    f = d / file
    cfg = json.loads(f.read_text())
    node = cfg
    *parents, leaf = path.split(".")
    for k in parents:
        node = node[k]
    node[leaf] = value
    f.unlink()                      # a symlink into the fixture: replace, never write through
    f.write_text(json.dumps(cfg))
    with pytest.raises(EdgeTTSError) as e:
        tts = edgetts.load(d)
        tts.codec
    msg = one_line(e)
    assert str(d) in msg
    for w in words:
        assert w in msg, msg


def test_broken_tokenizer_is_an_error_not_silence(tmp_path):
    d = _tiny_copy(tmp_path)
    for n in ("tokenizer.json",):
        (d / n).unlink()
    (d / "merges.txt").unlink()
    (d / "merges.txt").write_text("#version: 0.2\nthis line has three words\n")
    with pytest.raises(EdgeTTSError, match="unusable text tokenizer"):
        edgetts.load(d)


@pytest.mark.parametrize("name,shape", [("talker.model.codec_embedding.weight", (0, None)),
                                        ("talker.model.layers.1.mlp.down_proj.weight", (None, 3)),
                                        ("talker.code_predictor.lm_head.0.weight", (None,))])
def test_model_tensor_shapes_checked_at_load(tmp_path, name, shape):
    """Every tensor the models read must have the shape the config implies (a zero-row codec
    embedding used to fail inside the matmul packing with a ValueError)."""
    from safetensors.numpy import load_file, save_file
    d = _tiny_copy(tmp_path)
    t = load_file(str(TINY / "model.safetensors"))
    old = t[name]
    new = tuple(o if s is None else s for o, s in zip(old.shape, shape)) if len(shape) == old.ndim else (old.shape[0],)
    t[name] = np.zeros(new, np.float32)
    (d / "model.safetensors").unlink()
    save_file(t, str(d / "model.safetensors"))
    with pytest.raises(EdgeTTSError) as e:
        edgetts.load(d)
    msg = one_line(e)
    assert "model.safetensors" in msg and "has shape" in msg and "expected" in msg, msg
