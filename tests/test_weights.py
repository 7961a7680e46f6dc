"""edgetts.weights: format sniffing, opening every input kind, metadata decoding, stored types."""
from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from edgetts import weights as W
from edgetts.errors import WeightsError

RNG = np.random.default_rng(7)


# ----------------------------------------------------------------------------- builders
def write_gguf(path: Path, arch: str, tensors: dict[str, np.ndarray], kv: dict | None = None) -> Path:
    w = gguf.GGUFWriter(str(path), arch)
    for k, v in (kv or {}).items():
        if isinstance(v, bool):
            w.add_bool(k, v)
        elif isinstance(v, int):
            w.add_uint32(k, v)
        elif isinstance(v, float):
            w.add_float32(k, v)
        elif isinstance(v, str):
            w.add_string(k, v)
        else:
            w.add_array(k, v)
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_hf_dir(d: Path, sharded: bool = False) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"model_type": "qwen3_tts"}))
    main = {"talker.model.norm.weight": RNG.standard_normal(8).astype(np.float32),
            "talker.codec_head.weight": RNG.standard_normal((16, 8)).astype(np.float32)}
    if sharded:
        save_file({"talker.model.norm.weight": main["talker.model.norm.weight"]}, str(d / "model-00001-of-00002.safetensors"))
        save_file({"talker.codec_head.weight": main["talker.codec_head.weight"]}, str(d / "model-00002-of-00002.safetensors"))
        (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {
            "talker.model.norm.weight": "model-00001-of-00002.safetensors",
            "talker.codec_head.weight": "model-00002-of-00002.safetensors"}}))
    else:
        save_file(main, str(d / "model.safetensors"))
    st = d / "speech_tokenizer"
    st.mkdir(exist_ok=True)
    (st / "config.json").write_text(json.dumps({"model_type": "qwen3_tts_tokenizer_12hz"}))
    save_file({"decoder.pre_conv.conv.bias": np.ones(4, np.float32)}, str(st / "model.safetensors"))
    (d / "vocab.json").write_text("{}")
    return d


def write_pair(d: Path) -> tuple[Path, Path]:
    d.mkdir(parents=True, exist_ok=True)
    a = write_gguf(d / "talker.gguf", "qwen3-tts", {"talker.output_norm.weight": np.ones(8, np.float32)},
                   {"qwen3-tts.talker.block_count": 2})
    b = write_gguf(d / "codec.gguf", "qwen3-tts-tokenizer", {"tok_dec.pre_conv.bias": np.ones(4, np.float32)})
    return a, b


# ----------------------------------------------------------------------------- sniffing
def test_sniff_each_kind(tmp_path):
    g = write_gguf(tmp_path / "m.gguf", "qwen3-tts", {"x": np.zeros(4, np.float32)})
    s = tmp_path / "m.safetensors"
    save_file({"x": np.zeros(4, np.float32)}, str(s))
    hf = write_hf_dir(tmp_path / "hf")
    pair_dir = tmp_path / "pair"
    write_pair(pair_dir)
    assert W.sniff(g) == "gguf"
    assert W.sniff(s) == "safetensors"
    assert W.sniff(hf) == "hf"
    assert W.sniff(pair_dir) == "gguf-dir"


@pytest.mark.parametrize("content", [b"", b"hello world, not weights", b"\x00" * 64, b"GGU"])
def test_sniff_rejects_garbage(tmp_path, content):
    p = tmp_path / "junk.bin"
    p.write_bytes(content)
    with pytest.raises(WeightsError, match="not a GGUF or safetensors file"):
        W.open(p)


def test_missing_path(tmp_path):
    with pytest.raises(WeightsError, match="no such file or directory"):
        W.open(tmp_path / "nope")


def test_empty_directory(tmp_path):
    with pytest.raises(WeightsError, match="not a model directory"):
        W.open(tmp_path)


# ------------------------------------------------------------------------------ opening
def test_open_safetensors_file_bf16(tmp_path):
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    bits = (x.view(np.uint32) >> 16).astype(np.uint16)   # truncation: exact in bf16
    # safetensors.numpy cannot write bf16: write the header by hand
    header = json.dumps({"w": {"dtype": "BF16", "shape": [3, 5], "data_offsets": [0, 30]}}).encode()
    p = tmp_path / "b.safetensors"
    p.write_bytes(len(header).to_bytes(8, "little") + header + bits.tobytes())
    ck = W.open(p)
    assert ck.kind == "safetensors"
    t = ck.main["w"]
    assert (t.dtype, t.shape) == ("BF16", (3, 5))
    np.testing.assert_array_equal(t.numpy(), (bits.astype(np.uint32) << 16).view(np.float32))


@pytest.mark.parametrize("sharded", [False, True])
def test_open_hf_dir(tmp_path, sharded):
    ck = W.open(write_hf_dir(tmp_path / "hf", sharded=sharded))
    assert ck.kind == "hf"
    assert ck.config == {"model_type": "qwen3_tts"}
    assert ck.codec_config["model_type"] == "qwen3_tts_tokenizer_12hz"
    assert sorted(ck.main.names()) == ["talker.codec_head.weight", "talker.model.norm.weight"]
    assert ck.main["talker.codec_head.weight"].shape == (16, 8)
    assert "decoder.pre_conv.conv.bias" in ck.codec
    assert "vocab.json" in ck.files


def test_sharded_dir_missing_shard(tmp_path):
    d = write_hf_dir(tmp_path / "hf", sharded=True)
    (d / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(WeightsError, match="missing"):
        W.open(d)


@pytest.mark.parametrize("which", ["talker", "codec", "dir"])
def test_open_gguf_pair(tmp_path, which):
    a, b = write_pair(tmp_path / "pair")
    ck = W.open({"talker": a, "codec": b, "dir": tmp_path / "pair"}[which])
    assert ck.kind == "gguf"
    assert ck.main.architecture == "qwen3-tts" and ck.codec.architecture == "qwen3-tts-tokenizer"
    assert ck.main.metadata["qwen3-tts.talker.block_count"] == 2


def test_gguf_dir_with_two_talkers(tmp_path):
    d = tmp_path / "two"
    write_pair(d)
    write_gguf(d / "talker2.gguf", "qwen3-tts", {"x": np.zeros(4, np.float32)})
    with pytest.raises(WeightsError, match="more than one"):
        W.open(d)


def test_gguf_wrong_architecture(tmp_path):
    p = write_gguf(tmp_path / "llama.gguf", "llama", {"x": np.zeros(4, np.float32)})
    with pytest.raises(WeightsError, match="not a Qwen3-TTS model"):
        W.open(p)


def test_metadata_decodes_to_python_types(tmp_path):
    kv = {"a.u32": 7, "a.f32": 0.5, "a.str": "hé", "a.bool": True,
          "a.ints": [1, -2, 3], "a.strs": ["x", "", "ü"]}
    p = write_gguf(tmp_path / "m.gguf", "qwen3-tts", {"x": np.zeros(4, np.float32)}, kv)
    m = W.read_gguf(p).metadata
    assert m["general.architecture"] == "qwen3-tts"
    for k, v in kv.items():
        assert m[k] == v, k
        assert type(m[k]) is type(v), k
    assert all(type(x) is int for x in m["a.ints"])
    assert all(type(x) is str for x in m["a.strs"])


def test_long_string_array_decodes_on_access(tmp_path):
    """A string array of StringArray.LAZY_FROM entries or more (a tokenizer's vocabulary) stays
    in the file until read, and reads like the list it was written from; short ones are lists."""
    n = W.StringArray.LAZY_FROM + 3
    strs = [f"t{i}" if i % 7 else f"é{i}\u2581" for i in range(n)]
    strs[5] = ""
    p = write_gguf(tmp_path / "m.gguf", "qwen3-tts", {"x": np.zeros(4, np.float32)},
                   {"a.long": strs, "a.short": strs[:10]})
    m = W.read_gguf(p).metadata
    long = m["a.long"]
    assert isinstance(long, W.StringArray) and type(m["a.short"]) is list
    assert len(long) == n and long == strs and strs == long and list(long) == strs
    assert long[0] == strs[0] and long[5] == "" and long[-1] == strs[-1] and long[7] == strs[7]
    assert long[10:20:3] == strs[10:20:3]
    assert long != strs[:-1] and long != strs[:-1] + ["other"]
    with pytest.raises(IndexError):
        long[n]
    assert long.tolist() == strs


@pytest.mark.parametrize("odd", ["nul", "bad_utf8"])
def test_string_array_tolist_matches_per_string_decode(tmp_path, odd):
    """tolist() (one decode of the whole run) gives what per-string access gives, also when a
    string holds a NUL (the one-pass separator: that array takes the per-string path) or invalid
    UTF-8 (replaced the same way)."""
    n = W.StringArray.LAZY_FROM + 1
    strs = [f"tok{i}" for i in range(n)]
    if odd == "nul":
        strs[100] = "a\0b"
    p = write_gguf(tmp_path / "m.gguf", "qwen3-tts", {"x": np.zeros(4, np.float32)}, {"a.long": strs})
    if odd == "bad_utf8":  # patch two strings' bytes in the file: a lone continuation byte, a cut sequence
        raw = bytearray(p.read_bytes())
        i, j = raw.index(b"tok100"), raw.index(b"tok2000")
        raw[i:i + 3], raw[j + 5:j + 7] = b"\x80ok", b"\xc3\xa9"[:1] + b"0"
        p.write_bytes(bytes(raw))
    long = W.read_gguf(p).metadata["a.long"]
    assert long.tolist() == list(long)
    assert (long.tolist()[100] == "a\0b") if odd == "nul" else ("\ufffd" in long.tolist()[100])


# ------------------------------------------------------------------ truncated / corrupt
def test_truncated_safetensors(tmp_path):
    p = tmp_path / "t.safetensors"
    save_file({"x": np.zeros((64, 64), np.float32)}, str(p))
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        W.open(p)


def test_corrupt_safetensors_header(tmp_path):
    p = tmp_path / "c.safetensors"
    p.write_bytes((20).to_bytes(8, "little") + b"{not json at all!!!!" + b"\0" * 16)
    with pytest.raises(WeightsError, match="corrupt"):
        W.open(p)


def test_truncated_gguf(tmp_path):
    p = write_gguf(tmp_path / "t.gguf", "qwen3-tts", {"x": np.zeros((64, 64), np.float32)})
    p.write_bytes(p.read_bytes()[:-1000])
    with pytest.raises(WeightsError, match="truncated"):
        W.open(p)


def test_corrupt_gguf_header(tmp_path):
    p = tmp_path / "c.gguf"
    p.write_bytes(b"GGUF" + b"\xff" * 60)
    with pytest.raises(WeightsError, match="corrupt"):
        W.open(p)


# ----------------------------------------------------------- K-quants (published Q4_K_M files)
def _k_blocks(qtype: str, n_blocks: int) -> np.ndarray:
    """Random block bytes with finite f16 scales at the right places."""
    size = {"Q4_K": 144, "Q6_K": 210}[qtype]
    b = RNG.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    d = (RNG.uniform(0.001, 0.05, size=(n_blocks, 2)).astype(np.float16)).view(np.uint8)
    if qtype == "Q4_K":      # d, dmin first
        b[:, 0:4] = d.reshape(n_blocks, 4)
    else:                    # ql[128] qh[64] scales[16] d
        b[:, 208:210] = d[:, 0:2]
    return b


@pytest.mark.parametrize("qtype", ["Q4_K", "Q6_K"])
def test_k_quants_open_and_dequantize(tmp_path, qtype):
    rows, cols = 3, 512
    blocks = _k_blocks(qtype, rows * cols // 256)
    raw = blocks.reshape(rows, -1)
    w = gguf.GGUFWriter(str(tmp_path / "k.gguf"), "qwen3-tts")
    w.add_tensor("talker.blk.0.attn_q.weight", raw, raw_dtype=gguf.GGMLQuantizationType[qtype])
    w.add_tensor("talker.output_norm.weight", np.ones(cols, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    ck = W.open(tmp_path / "k.gguf")
    t = ck.main["talker.blk.0.attn_q.weight"]
    assert (t.dtype, t.shape) == (qtype, (rows, cols))
    assert t.data.shape == raw.shape and t.data.dtype == np.uint8
    x = t.numpy()
    assert x.dtype == np.float32 and x.shape == (rows, cols) and np.isfinite(x).all()
    np.testing.assert_array_equal(x, gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[qtype]))


def test_q6_k_constant_block(tmp_path):
    # ql = qh = 0 -> q = -32; every scale 1, d = 0.5 -> every value -16
    b = np.zeros((1, 210), np.uint8)
    b[0, 192:208] = 1
    b[0, 208:210] = np.array([0.5], np.float16).view(np.uint8)
    x = W.dequantize(b, "Q6_K", (256,))
    np.testing.assert_array_equal(x, np.full(256, -16.0, np.float32))


def test_q8_0_and_q4_0_dequantize_match_gguf():
    x = RNG.standard_normal((5, 64)).astype(np.float32)
    for q in ("Q8_0", "Q4_0"):
        raw = gguf.quants.quantize(x, gguf.GGMLQuantizationType[q])
        np.testing.assert_array_equal(W.dequantize(raw, q, (5, 64)),
                                      gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[q]))


def test_hf_dir_with_non_object_safetensors_header(tmp_path):
    d = write_hf_dir(tmp_path / "hf")
    (d / "model.safetensors").write_bytes((7).to_bytes(8, "little") + b"[1,2,3]")
    with pytest.raises(WeightsError, match="corrupt safetensors header"):
        W.open(d)


def test_info_command(tmp_path, capsys):
    from edgetts.cli import main

    a, _ = write_pair(tmp_path / "pair")
    assert main(["info", str(a)]) == 0
    out = capsys.readouterr().out
    assert "format:       gguf" in out and "qwen3-tts, qwen3-tts-tokenizer" in out and "F32 x1" in out
    assert main(["info", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file or directory" in err[0]
