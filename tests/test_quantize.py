"""`edgetts quantize`: block quantizers, the written GGUF pair, the policy, bad inputs."""
from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from edgetts import weights as W
from edgetts.cli import main
from edgetts.gguf import names as N
from quantize import writer as qwriter
from edgetts.kernels.quant import f32_to_f16
from numba import njit
from quantize.quants import quantize_rows
from test_names import CODEC_KEYS, CODEC_TENSORS, TALKER_KEYS, TALKER_TENSORS, tensors

from conftest import TINY
RNG = np.random.default_rng(11)
QTYPES = ["q8_0", "q4_0", "f16", "f32"]
TALKER_FILE = "qwen-talker-tiny-customvoice-{}.gguf"
CODEC_FILE = "qwen-tokenizer-12hz-{}.gguf"
OUR_KEYS = ("general.file_type", "general.quantization_version", "edgetts.")
# written by qwentts.cpp from generation_config.json (full-size listing; the shared tiny had none)
GENERATION_KEYS = {
    "generation.do_sample": "BOOL", "generation.top_k": "UINT32", "generation.top_p": "FLOAT32",
    "generation.temperature": "FLOAT32", "generation.repetition_penalty": "FLOAT32",
    "generation.subtalker_do_sample": "BOOL", "generation.subtalker_top_k": "UINT32",
    "generation.subtalker_top_p": "FLOAT32", "generation.subtalker_temperature": "FLOAT32",
    "generation.max_new_tokens": "UINT32",
}


# ------------------------------------------------------------------- numpy twins (tests only)
def _roundf(v):
    a = np.abs(v)
    fl = np.floor(a)
    return np.sign(v) * (fl + np.floor(np.float32(2) * (a - fl)))


def twin_q8_0(x: np.ndarray) -> np.ndarray:
    b = x.astype(np.float32).reshape(-1, 32)
    d = (np.abs(b).max(axis=1, keepdims=True) / np.float32(127)).astype(np.float32)
    inv = np.where(d == 0, np.float32(0), np.float32(1) / np.where(d == 0, np.float32(1), d)).astype(np.float32)
    q = _roundf((b * inv).astype(np.float32)).astype(np.int8)
    out = np.concatenate([d.astype(np.float16).view(np.uint8), q.view(np.uint8)], axis=1)
    return out.reshape(x.shape[0], -1)


def twin_q4_0(x: np.ndarray) -> np.ndarray:
    b = x.astype(np.float32).reshape(-1, 32)
    i = np.abs(b).argmax(axis=1)
    d = (b[np.arange(len(b)), i][:, None] / np.float32(-8)).astype(np.float32)
    inv = np.where(d == 0, np.float32(0), np.float32(1) / np.where(d == 0, np.float32(1), d)).astype(np.float32)
    q = np.clip(np.trunc((b * inv).astype(np.float32) + np.float32(8.5)), 0, 15).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << np.uint8(4))
    out = np.concatenate([d.astype(np.float16).view(np.uint8), packed], axis=1)
    return out.reshape(x.shape[0], -1)


def special_rows(cols: int) -> np.ndarray:
    x = RNG.standard_normal((6, cols)).astype(np.float32)
    x[0] = 0.0                                    # zero blocks: d = 0
    x[1, :32] = np.arange(32) - 15.5              # exact .5 ties in Q8_0 (amax 16.5 -> not exact)
    x[1, 32 % cols:] *= 127.0
    x[2] = np.round(x[2] * 127) / 127             # many near-ties
    x[3] *= 1e-30                                 # subnormal f16 scales
    x[4] *= 1e5                                   # scales beyond f16 range -> inf handling
    x[5, ::7] = -np.abs(x[5]).max() * 2           # negative extreme, repeated (first one wins)
    return x


@pytest.mark.parametrize("shape", [(1, 32), (3, 64), (7, 96), (33, 160), (5, 1024)])
@pytest.mark.parametrize("qtype,twin", [("Q8_0", twin_q8_0), ("Q4_0", twin_q4_0)])
def test_block_quantizers_bit_exact(shape, qtype, twin):
    x = (RNG.standard_normal(shape) * RNG.uniform(1e-3, 10, size=(shape[0], 1))).astype(np.float32)
    x = np.concatenate([x, special_rows(shape[1])])
    with np.errstate(over="ignore"):
        ref = gguf.quants.quantize(x, gguf.GGMLQuantizationType[qtype])
        got = quantize_rows(x, qtype)
        tw = twin(x)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(tw, ref)


def test_block_quantizer_rejects_ragged_rows():
    with pytest.raises(ValueError):
        quantize_rows(np.zeros((2, 40), np.float32), "Q8_0")


@njit(cache=True)
def _f16_bits(vals):
    out = np.empty(vals.shape[0], np.uint16)
    for i in range(vals.shape[0]):
        out[i] = f32_to_f16(vals[i])
    return out


def test_f16_conversion_matches_numpy():
    vals = np.concatenate([
        (RNG.standard_normal(4000) * 10.0 ** RNG.integers(-9, 6, 4000)).astype(np.float32),
        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504, 65519.99, 65520, 2 ** -24, 2 ** -25,
                  3 * 2 ** -26, 2 ** -14, 2 ** -14 * (1 - 2 ** -11), 1 + 2 ** -11, 1 + 3 * 2 ** -11],
                 dtype=np.float32)])
    with np.errstate(over="ignore"):
        ref = vals.astype(np.float16).view(np.uint16)
    got = _f16_bits(vals)
    nan = np.isnan(vals)
    np.testing.assert_array_equal(got[~nan], ref[~nan])
    assert ((got[nan] & 0x7C00) == 0x7C00).all() and (got[nan] & 0x3FF).all()


# -------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def written(tmp_path_factory):
    src = TINY
    out = {}
    for q in QTYPES:
        d = tmp_path_factory.mktemp(f"out_{q}")
        rc = main(["quantize", str(src), "--qtype", q, "-o", str(d)])
        assert rc == 0
        out[q] = d
    return out


def expected_type(name: str, ne: list[int], q: str) -> str:
    """The policy of design.md section 2, restated independently of quantize/plan.py."""
    Q = q.upper()
    if len(ne) == 1 or name.endswith(".codebook") or (".vq_" in name and "_proj." in name):
        return "F32"
    if name.startswith(("talker.", "code_pred.")):
        t = "Q8_0" if Q == "Q4_0" and ("embd" in name or "head" in name) else Q
        return "F16" if t in ("Q8_0", "Q4_0") and ne[0] % 32 else t
    return "F32" if Q == "F32" else "F16"


def _fields(r: gguf.GGUFReader) -> dict[str, str]:
    out = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        t = f.types[0].name
        out[k] = f"ARRAY[{f.types[1].name}]" if t == "ARRAY" else t
    return out


@pytest.mark.parametrize("q", QTYPES)
@pytest.mark.parametrize("which", ["talker", "codec"])
def test_layout_matches_qwentts(written, q, which):
    fname = (TALKER_FILE if which == "talker" else CODEC_FILE).format(q.upper())
    path = written[q] / fname
    assert path.is_file()
    assert sorted(p.name for p in written[q].iterdir()) == sorted(
        [TALKER_FILE.format(q.upper()), CODEC_FILE.format(q.upper())])   # no temp files left
    r = gguf.GGUFReader(path)
    keys = TALKER_KEYS if which == "talker" else CODEC_KEYS
    got = _fields(r)
    for k, t in keys.items():
        assert got.get(k) == t, (k, got.get(k), t)
    if which == "talker":
        gen = json.loads((TINY / "generation_config.json").read_text())
        for k, t in GENERATION_KEYS.items():
            if k.replace("generation.", "").replace("do_sample", "dosample" if "subtalker" in k else "do_sample") in gen:
                assert got.get(k) == t, k
    extra = [k for k in got if k not in keys and k not in GENERATION_KEYS]
    assert all(k.startswith(OUR_KEYS) for k in extra), extra
    assert got["general.file_type"] == "STRING"
    want = tensors(TALKER_TENSORS if which == "talker" else CODEC_TENSORS)
    assert [t.name for t in r.tensors] and sorted(t.name for t in r.tensors) == sorted(want)
    for t in r.tensors:
        assert [int(x) for x in t.shape] == want[t.name], t.name
        assert t.tensor_type.name == expected_type(t.name, want[t.name], q), t.name


@pytest.mark.parametrize("q", QTYPES)
def test_values_bit_identical_to_gguf_quants(written, q):
    src = W.open(TINY)
    for which, view in (("talker", N.GGUFView(src.main)), ("codec", N.GGUFView(src.codec))):
        fname = (TALKER_FILE if which == "talker" else CODEC_FILE).format(q.upper())
        r = gguf.GGUFReader(written[q] / fname)
        loaded = W.open(written[q] / fname)
        lw = loaded.main if which == "talker" else loaded.codec
        for t in r.tensors:
            x = view[t.name].numpy()
            ref = gguf.quants.quantize(x, t.tensor_type)
            assert np.asarray(t.data).tobytes() == np.ascontiguousarray(ref).tobytes(), t.name
            deq = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(x.shape)
            np.testing.assert_array_equal(lw[t.name].numpy(), deq)
            if t.tensor_type.name == "Q8_0":
                assert np.abs(deq - x).max() <= np.abs(x).max() / 127 + 1e-6


def test_metadata_values(written):
    ck = W.open(written["q4_0"])              # the directory -> main + codec
    assert ck.kind == "gguf" and ck.main is not None and ck.codec is not None
    cfg = json.loads((TINY / "config.json").read_text())
    tc = cfg["talker_config"]
    m = ck.main.metadata
    assert m["general.architecture"] == "qwen3-tts"
    assert m["general.file_type"] == "Q4_0" and m["general.quantization_version"] == 2
    assert m["qwen3-tts.talker.block_count"] == tc["num_hidden_layers"]
    assert m["qwen3-tts.talker.rope.mrope_section"] == tc["rope_scaling"]["mrope_section"]
    assert m["qwen3-tts.codec.speaker_names"] == list(tc["spk_id"])
    assert m["qwen3-tts.codec.speaker_ids"] == list(tc["spk_id"].values())
    assert m["qwen3-tts.codec.speaker_dialects"] == [d if isinstance(d, str) else "" for d in tc["spk_is_dialect"].values()]
    assert m["qwen3-tts.codec.language_names"] == list(tc["codec_language_id"])
    assert m["qwen3-tts.text.tts_pad_id"] == cfg["tts_pad_token_id"]
    vocab = json.loads((TINY / "vocab.json").read_text())
    toks = m["tokenizer.ggml.tokens"]
    assert all(toks[i] == t for t, i in vocab.items())
    assert toks[cfg["im_start_token_id"]] == "<|im_start|>"
    assert m["tokenizer.ggml.token_type"][cfg["im_start_token_id"]] == 4
    assert m["edgetts.quantization.role.linear"] == "Q4_0" and m["edgetts.quantization.role.embed"] == "Q8_0"
    assert "linear=Q4_0" in m["edgetts.quantization.policy"]
    c = ck.codec.metadata
    cc = json.loads((TINY / "speech_tokenizer" / "config.json").read_text())
    assert c["general.architecture"] == "qwen3-tts-tokenizer"
    assert c["qwen3-tts-tokenizer.decoder.upsample_rates"] == cc["decoder_config"]["upsample_rates"]
    assert c["qwen3-tts-tokenizer.decoder.codebook_dim_internal"] == ck.codec["tok_dec.vq_first.0.codebook"].shape[1]
    n_enc = cc["encoder_valid_num_quantizers"] - cc["encoder_config"]["num_semantic_quantizers"]
    assert sum(n.startswith("tok_enc.vq_acoustic.") and n.endswith(".codebook") for n in ck.codec) == n_enc


def test_info_on_written_pair(written, capsys):
    assert main(["info", str(written["q8_0"])]) == 0
    out = capsys.readouterr().out
    assert "qwen3-tts, qwen3-tts-tokenizer" in out and "Q8_0" in out and "tiny_sc (sichuan_dialect)" in out
    assert main(["info", str(TINY)]) == 0
    assert "qwen3_tts" in capsys.readouterr().out


# --------------------------------------------------------- a tiny random model, BF16, ragged rows
def _bf16_safetensors(path: Path, arrays: dict[str, np.ndarray]) -> None:
    header, blobs, off = {}, [], 0
    for name, x in arrays.items():
        bits = (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        header[name] = {"dtype": "BF16", "shape": list(x.shape), "data_offsets": [off, off + bits.nbytes]}
        blobs.append(bits.tobytes())
        off += bits.nbytes
    h = json.dumps(header).encode()
    path.write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def make_ragged(d: Path) -> Path:
    """Talker-only checkpoint, BF16, with a linear whose rows (40) are not a multiple of 32."""
    d.mkdir(parents=True)
    cfg = json.loads((TINY / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(cfg))
    _bf16_safetensors(d / "model.safetensors", {
        "talker.model.layers.0.mlp.down_proj.weight": RNG.standard_normal((64, 40)),
        "talker.model.layers.0.mlp.up_proj.weight": RNG.standard_normal((40, 64)),
        "talker.model.text_embedding.weight": RNG.standard_normal((50, 96)),
        "talker.model.norm.weight": RNG.standard_normal(64),
    })
    return d


def test_ragged_rows_fall_back_to_f16_and_bf16_streams(tmp_path, capsys, monkeypatch):
    src = make_ragged(tmp_path / "rnd")
    monkeypatch.setattr(qwriter, "CHUNK_ELEMS", 200)   # several chunks per tensor
    out = tmp_path / "out"
    assert main(["quantize", str(src), "--qtype", "q4_0", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "talker.blk.0.ffn_down.weight: row length 40 is not a multiple of 32; stored as F16" in stdout
    assert "no speech_tokenizer" in stdout and "no text tokenizer" in stdout
    files = list(out.iterdir())
    assert len(files) == 1
    r = gguf.GGUFReader(files[0])
    types = {t.name: t.tensor_type.name for t in r.tensors}
    assert types == {"talker.blk.0.ffn_down.weight": "F16", "talker.blk.0.ffn_up.weight": "Q4_0",
                     "talker.text_embd.weight": "Q8_0", "talker.output_norm.weight": "F32"}
    assert int(r.fields["edgetts.quantization.fallback_f16"].contents()) == 1
    src_w = W.open(src).main
    for t in r.tensors:
        hf = {"talker.blk.0.ffn_down.weight": "talker.model.layers.0.mlp.down_proj.weight",
              "talker.blk.0.ffn_up.weight": "talker.model.layers.0.mlp.up_proj.weight",
              "talker.text_embd.weight": "talker.model.text_embedding.weight",
              "talker.output_norm.weight": "talker.model.norm.weight"}[t.name]
        ref = gguf.quants.quantize(src_w[hf].numpy(), t.tensor_type)
        assert np.asarray(t.data).tobytes() == np.ascontiguousarray(ref).tobytes(), t.name


# ------------------------------------------------------------------------------ bad inputs
def _fails(capsys, argv, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgetts: error:"), err
    assert match in lines[0], lines[0]
    assert "Traceback" not in err


def _copy_tiny(d: Path) -> Path:
    src = TINY
    d.mkdir()
    for f in src.iterdir():
        if f.is_file():
            (d / f.name).symlink_to(f.resolve())
    (d / "speech_tokenizer").mkdir()
    for f in (src / "speech_tokenizer").iterdir():
        (d / "speech_tokenizer" / f.name).symlink_to(f.resolve())
    return d


def _replace(p: Path, data: bytes) -> None:
    p.unlink()
    p.write_bytes(data)


def test_bad_src_missing(tmp_path, capsys):
    out = tmp_path / "out"
    _fails(capsys, ["quantize", str(tmp_path / "nope"), "--qtype", "q8_0", "-o", str(out)], "no such file or directory")
    assert not out.exists()


def test_bad_src_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    _fails(capsys, ["quantize", str(tmp_path / "empty"), "--qtype", "q8_0", "-o", str(out)], "not a Qwen3-TTS checkpoint")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"just some bytes")
    _fails(capsys, ["quantize", str(junk), "--qtype", "q8_0", "-o", str(out)], "not a GGUF or safetensors file")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    _fails(capsys, ["quantize", str(empty), "--qtype", "q8_0", "-o", str(out)], "not a GGUF or safetensors file")
    assert not out.exists()


def test_bad_src_model_type(tmp_path, capsys):
    d = _copy_tiny(tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    _replace(d / "config.json", json.dumps({**cfg, "model_type": "llama"}).encode())
    _fails(capsys, ["quantize", str(d), "--qtype", "q8_0", "-o", str(tmp_path / "o1")], "model_type 'llama' is not supported")
    _replace(d / "config.json", json.dumps(cfg).encode())
    st = d / "speech_tokenizer" / "config.json"
    scfg = json.loads(st.read_text())
    _replace(st, json.dumps({**scfg, "model_type": "qwen3_tts_tokenizer_25hz"}).encode())
    _fails(capsys, ["quantize", str(d), "--qtype", "q8_0", "-o", str(tmp_path / "o2")], "not supported")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_bad_src_truncated_safetensors(tmp_path, capsys):
    d = _copy_tiny(tmp_path / "m")
    data = (d / "model.safetensors").read_bytes()
    _replace(d / "model.safetensors", data[: len(data) // 2])
    _fails(capsys, ["quantize", str(d), "--qtype", "q8_0", "-o", str(tmp_path / "o")], "truncated or corrupt")
    _replace(d / "model.safetensors", data[:5])
    _fails(capsys, ["quantize", str(d), "--qtype", "q8_0", "-o", str(tmp_path / "o")], "")
    assert not (tmp_path / "o").exists()


def test_bad_src_gguf(tmp_path, capsys):
    good = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(good), "qwen3-tts")
    w.add_tensor("x", np.zeros((64, 64), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    _fails(capsys, ["quantize", str(good), "--qtype", "q8_0", "-o", str(tmp_path / "o")], "already a GGUF file")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(good.read_bytes()[:-5000])
    _fails(capsys, ["quantize", str(bad), "--qtype", "q8_0", "-o", str(tmp_path / "o")], "truncated")
    assert not (tmp_path / "o").exists()


def test_bad_outdir(tmp_path, capsys):
    TINY
    f = tmp_path / "afile"
    f.write_text("x")
    _fails(capsys, ["quantize", str(TINY), "--qtype", "q8_0", "-o", str(f / "out")], "cannot create the output directory")
    _fails(capsys, ["quantize", str(TINY), "--qtype", "q8_0", "-o", str(f)], "")


@pytest.mark.parametrize("exc,rc", [(OSError(28, "No space left on device"), 1), (KeyboardInterrupt(), 130)])
def test_failure_mid_write_leaves_nothing(tmp_path, capsys, monkeypatch, exc, rc):
    TINY
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("unrelated")
    calls = {"n": 0}
    real = qwriter.encode

    def flaky(item, x):
        calls["n"] += 1
        if calls["n"] == 70:     # inside the second (codec) file
            raise exc
        return real(item, x)
    monkeypatch.setattr(qwriter, "encode", flaky)
    assert main(["quantize", str(TINY), "--qtype", "q8_0", "-o", str(out)]) == rc
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    fresh = tmp_path / "fresh"        # a directory the command creates is removed again
    calls["n"] = 0
    assert main(["quantize", str(TINY), "--qtype", "q8_0", "-o", str(fresh)]) == rc
    capsys.readouterr()
    assert not fresh.exists()


def test_hub_id_uses_snapshot_download(tmp_path, capsys, monkeypatch):
    """quantize downloads through edgetts.hub (the one hub path, shared with `say`)."""
    import huggingface_hub

    src = TINY
    seen = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: seen.append(repo_id) or str(src))
    monkeypatch.chdir(tmp_path)
    assert main(["quantize", "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice", "--qtype", "f16"]) == 0
    assert seen == ["Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice"]
    out = tmp_path / "Qwen3-TTS-12Hz-0.6B-CustomVoice-f16"
    assert sorted(p.name for p in out.iterdir()) == ["qwen-talker-0.6b-customvoice-F16.gguf", "qwen-tokenizer-12hz-F16.gguf"]
    r = gguf.GGUFReader(out / "qwen-talker-0.6b-customvoice-F16.gguf")
    assert r.fields["general.name"].contents() == "Qwen3-TTS-12Hz-0.6B-custom_voice"

    def offline(repo_id, **kw):
        raise RuntimeError("offline mode is enabled\nmore detail")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    _fails(capsys, ["quantize", "Qwen/Nope", "--qtype", "f16"], "cannot download from the Hugging Face hub (offline mode is enabled)")


def test_sharded_source_and_tokenizer_json(tmp_path, capsys):
    """A sharded checkpoint with only tokenizer.json gives the same files as the single-file one."""
    src = TINY
    d = tmp_path / "sharded"
    d.mkdir()
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        (d / name).symlink_to((src / name).resolve())
    (d / "speech_tokenizer").symlink_to((src / "speech_tokenizer").resolve())
    main_w = W.open(src).main
    names = sorted(main_w.names())
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    weight_map = {}
    for fname, part in shards.items():
        save_file({n: main_w[n].numpy() for n in part}, str(d / fname))
        weight_map.update({n: fname for n in part})
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["quantize", str(src), "--qtype", "q8_0", "-o", str(a)]) == 0
    assert main(["quantize", str(d), "--qtype", "q8_0", "-o", str(b)]) == 0
    capsys.readouterr()
    ra = gguf.GGUFReader(a / TALKER_FILE.format("Q8_0"))
    rb = gguf.GGUFReader(b / TALKER_FILE.format("Q8_0"))
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                "tokenizer.ggml.eos_token_id", "qwen3-tts.talker.block_count"):
        assert ra.fields[key].contents() == rb.fields[key].contents(), key
    assert [t.name for t in ra.tensors] == [t.name for t in rb.tensors]
    for ta, tb in zip(ra.tensors, rb.tensors):
        assert np.asarray(ta.data).tobytes() == np.asarray(tb.data).tobytes(), ta.name


def test_page_release_keeps_data_readable(tmp_path):
    from quantize.convert import _tensor_rows

    p = tmp_path / "w.safetensors"
    x = RNG.standard_normal((300, 64)).astype(np.float32)
    save_file({"w": x}, str(p))
    t = W.open(p).main["w"]
    nrows, ncols, rows, release = _tensor_rows(t)
    assert (nrows, ncols) == (300, 64) and release is not None
    a = rows(0, 100).copy()
    release(0, 300)
    np.testing.assert_array_equal(rows(0, 100), a)
    np.testing.assert_array_equal(rows(0, 300), x)


def test_hub_id_offline_from_local_cache(tmp_path, capsys, monkeypatch):
    """The real snapshot_download path, offline, against a local hub cache layout (no network)."""
    import huggingface_hub.constants as hc

    src = TINY
    repo = tmp_path / "cache" / "models--Qwen--Qwen3-TTS-12Hz-0.6B-CustomVoice"
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for f in src.iterdir():
        (snap / f.name).symlink_to(f.resolve())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert main(["quantize", "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice", "--qtype", "q8_0", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["qwen-talker-0.6b-customvoice-Q8_0.gguf",
                                                     "qwen-tokenizer-12hz-Q8_0.gguf"]
    capsys.readouterr()
    _fails(capsys, ["quantize", "Qwen/NotCached", "--qtype", "q8_0", "-o", str(tmp_path / "o2")],
           "model Qwen/NotCached is not in the Hugging Face cache")
    assert not (tmp_path / "o2").exists()


def test_quantize_is_a_library_below_the_engine():
    """quantize/ uses the weights, names and kernels layers, never the engine (no import circle)."""
    import subprocess
    import sys

    code = ("import sys, quantize.convert, quantize.cli; "
            "bad = [m for m in ('edgetts.tts', 'edgetts.hub', 'edgetts.models.talker', 'edgetts.pipeline') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
