"""Codec encoder (Mimi-style, docs/model.md §8) against the official qwen-tts encode():
reference codes identical on every fixture that has encoder goldens, from safetensors and from
the GGUF pair `edgetts quantize` writes; chunking invisible in the result; kernels against numpy
twins; bad input and encoder-less checkpoints give one-line errors."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import edgetts.weights as W
from edgetts.cli import main
from edgetts.errors import EdgeTTSError
from edgetts.kernels import encoder_ops as ko
from edgetts.models.encoder import CodecEncoder
from test_quantize import _bf16_safetensors

from conftest import FIXTURES  # noqa: E402
TINY = FIXTURES / "tiny"
RNG = np.random.default_rng(5)


# (fixture, audio key, codes key): 24 kHz audio and the official speech_tokenizer.encode() codes.
# tiny: 1 s sine + noise; tiny_clone: an espeak-ng recording resampled 22.05 -> 24 kHz (N = 46589, not
# a multiple of 1920), other sizes (ratios [8, 5, 4, 6], head_dim 12, 3 layers, 3 code groups).
GOLDENS = [("tiny", "e_audio", "e_codes"), ("tiny_clone", "v_audio_24k", "e_codes")]


def _golden(fixture):
    f = FIXTURES / fixture / "golden.npz"
    if not f.is_file():
        pytest.skip(f"{fixture} fixture missing")
    return np.load(f)


@pytest.fixture(scope="module")
def tiny_golden():
    return dict(_golden("tiny"))


@pytest.fixture(scope="module")
def tiny_encoder():
    return CodecEncoder.load(W.open(TINY))


@pytest.mark.parametrize("fixture,akey,ckey", GOLDENS)
def test_codes_match_official(fixture, akey, ckey):
    g = _golden(fixture)
    audio, ref = g[akey], g[ckey]
    enc = CodecEncoder.load(W.open(FIXTURES / fixture))
    codes = enc.encode(audio)
    assert codes.dtype == np.int64
    assert codes.shape == (math.ceil(audio.size / enc.samples_per_frame), enc.num_quantizers) == ref.shape
    np.testing.assert_array_equal(codes, ref)


def test_config_from_checkpoint(tiny_encoder):
    cc = json.loads((TINY / "speech_tokenizer" / "config.json").read_text())
    cfg = tiny_encoder.config
    assert tiny_encoder.num_quantizers == cc["encoder_valid_num_quantizers"]
    assert tiny_encoder.samples_per_frame == cc["encode_downsample_rate"]
    assert tiny_encoder.sample_rate == cc["input_sample_rate"]
    assert cfg.num_hidden_layers == cc["encoder_config"]["num_hidden_layers"]
    assert cfg.upsampling_ratios == cc["encoder_config"]["upsampling_ratios"]


@pytest.mark.parametrize("n", [1, 1919, 1920, 1921, 24000 + 777])
def test_chunking_is_invisible(tiny_encoder, n):
    """The SEANet's high-rate layers run in chunks with carried conv context, the rest on the
    whole sequence: any chunk size and any split (everything chunked, nothing chunked) gives the
    same codes and, to float32 reduction noise, the same latents; frames = ceil(N / 1920)."""
    audio = (0.3 * RNG.standard_normal(n)).astype(np.float32)
    enc = CodecEncoder(tiny_encoder.weights, threads=1)
    spf = enc.samples_per_frame
    res = []
    for cf, min_rows in ((1, None), (3, None), (1000, 1), (4, 10 ** 9)):
        enc.chunk_frames = cf
        enc.MIN_CHUNK_ROWS = min_rows or CodecEncoder.MIN_CHUNK_ROWS
        res.append((enc.encode(audio), enc._seanet(audio)))
    for codes, lat in res[1:]:
        np.testing.assert_array_equal(codes, res[0][0])
        assert np.abs(lat - res[0][1]).max() <= 1e-5 * max(1.0, np.abs(res[0][1]).max())
    assert res[0][0].shape == (-(-n // spf), enc.num_quantizers)


def test_threads_do_not_change_codes(tiny_encoder, tiny_golden):
    audio = tiny_golden["e_audio"]
    for t in (1, 2, 3):
        np.testing.assert_array_equal(CodecEncoder(tiny_encoder.weights, threads=t).encode(audio),
                                      tiny_golden["e_codes"])


# ---------------------------------------------------------------------------- GGUF pair
@pytest.mark.parametrize("qtype", ["f32", "f16"])
@pytest.mark.parametrize("fixture,akey,ckey", GOLDENS)
def test_gguf_pair_gives_same_codes(tmp_path, qtype, fixture, akey, ckey):
    """`edgetts quantize` keeps the encoder (convs F32/F16, codebooks F32): the same codes as
    from safetensors (and so as the official encode). F32 is exact by construction; F16-rounded
    weights can flip near-tie codes (the full-size random codec: ~1% of the acoustic codes), the
    tiny fixtures' distance margins are wide enough that they do not."""
    g = _golden(fixture)
    assert main(["quantize", str(FIXTURES / fixture), "--qtype", qtype, "-o", str(tmp_path)]) == 0
    ck = W.open(tmp_path)
    assert ck.codec.format == "gguf"
    types = {ck.codec[n].dtype for n in ck.codec.names() if n.startswith("tok_enc.conv.")}
    assert types == ({"F32"} if qtype == "f32" else {"F16", "F32"})   # weights F16, biases F32
    enc = CodecEncoder.load(ck)
    assert enc.config == CodecEncoder.load(W.open(FIXTURES / fixture)).config
    np.testing.assert_array_equal(enc.encode(g[akey]), g[ckey])


def _codec_copy(tmp_path: Path, convert) -> Path:
    """A codec-only checkpoint dir whose speech_tokenizer tensors went through `convert`."""
    d = tmp_path / "ck"
    (d / "speech_tokenizer").mkdir(parents=True)
    shutil.copy(TINY / "config.json", d / "config.json")
    shutil.copy(TINY / "speech_tokenizer" / "config.json", d / "speech_tokenizer" / "config.json")
    t = load_file(str(TINY / "speech_tokenizer" / "model.safetensors"))
    save_file({k: convert(k, v) for k, v in t.items()}, str(d / "speech_tokenizer" / "model.safetensors"))
    return d


def test_bf16_storage_equals_its_f32_values(tmp_path, tiny_golden):
    """A codec stored in BF16 gives exactly what float32 files holding the same values give."""
    def trunc(k, v):   # the values BF16 can hold (what _bf16_safetensors writes: truncation)
        return ((v.astype(np.float32).view(np.uint32) >> 16) << 16).view(np.float32)

    d32 = _codec_copy(tmp_path / "a", trunc)
    d16 = _codec_copy(tmp_path / "b", lambda k, v: v)
    st = d16 / "speech_tokenizer" / "model.safetensors"
    _bf16_safetensors(st, load_file(str(st)))
    assert W.open(d16).codec["encoder.encoder.layers.0.conv.weight"].dtype == "BF16"
    audio = tiny_golden["e_audio"]
    e32, e16 = CodecEncoder.load(W.open(d32)), CodecEncoder.load(W.open(d16))
    np.testing.assert_array_equal(e16._seanet(audio), e32._seanet(audio))
    np.testing.assert_array_equal(e16.encode(audio), e32.encode(audio))


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("audio,msg", [
    (np.zeros(0, np.float32), "empty"),
    (np.zeros((100, 2), np.float32), "mono"),
    (np.array([0.0, np.nan, 0.1], np.float32), "NaN"),
    (np.array([0.0, np.inf], np.float32), "NaN or infinite"),
    (np.arange(10), "floating point"),
])
def test_bad_audio(tiny_encoder, audio, msg):
    with pytest.raises(EdgeTTSError, match=msg):
        tiny_encoder.encode(audio)


def test_codec_without_encoder(tmp_path):
    d = _codec_copy(tmp_path, lambda k, v: v)
    t = load_file(str(d / "speech_tokenizer" / "model.safetensors"))
    save_file({k: v for k, v in t.items() if not k.startswith("encoder.")},
              str(d / "speech_tokenizer" / "model.safetensors"))
    with pytest.raises(EdgeTTSError, match="no encoder weights"):
        CodecEncoder.load(W.open(d))


def test_missing_encoder_config(tmp_path):
    d = _codec_copy(tmp_path, lambda k, v: v)
    cfg = json.loads((d / "speech_tokenizer" / "config.json").read_text())
    del cfg["encoder_config"]
    (d / "speech_tokenizer" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EdgeTTSError, match="no encoder_config"):
        CodecEncoder.load(W.open(d))


# ---------------------------------------------------------------------------- kernels vs numpy twins
def test_elu_twin():
    x = (3 * RNG.standard_normal((37, 5))).astype(np.float32)
    # the whole float32 range that matters: tiny to huge negatives (-1 below ~-17), zero, positives
    sweep = np.concatenate([-np.logspace(-30, 2, 4000), np.linspace(-25, 3, 4001)]).astype(np.float32)
    for v in (x, sweep.reshape(-1, 7)):
        ref = np.where(v > 0, v, np.expm1(v.astype(np.float64)))
        out = np.empty_like(v)
        ko.elu(v, out)
        tol = 1.5e-7 * np.maximum(np.abs(ref), 1e-30)
        assert (np.abs(out - ref) <= tol).all()
    out = np.empty_like(x)
    ko.elu(x, out)
    ko.elu(x, x)   # in place
    np.testing.assert_array_equal(x, out)


def test_gelu_twin():
    x = np.concatenate([(3 * RNG.standard_normal(35)), np.linspace(-12, 12, 20001),
                        [0.0, -0.0, 1e-30, -1e-30]]).astype(np.float32).reshape(-1, 5)
    xd = x.astype(np.float64)
    ref = 0.5 * xd * (1 + np.vectorize(math.erf)(xd / math.sqrt(2)))
    got = x.copy()
    ko.gelu(got)
    # within a few float32 ulps of |x| (the exact-erf GELU in float32 is itself ~1 ulp)
    assert (np.abs(got - ref) <= 4 * 2.0 ** -23 * np.maximum(np.abs(xd), 1e-6)).all()


@pytest.mark.parametrize("R,n,q0", [(1, 1, 0), (7, 7, 0), (5, 40, 30), (4, 9, 2)])
def test_causal_softmax_twin(R, n, q0):
    s = (4 * RNG.standard_normal((R, n))).astype(np.float32)
    scale = np.float32(0.125)
    z = s.astype(np.float64) * scale
    future = np.arange(n)[None, :] > q0 + np.arange(R)[:, None]
    z[future] = -np.inf
    ref = np.exp(z - z.max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    got = s.copy()
    ko.causal_softmax(got, scale, q0)
    assert np.abs(got - ref).max() < 1e-6
    assert (got[future] == 0).all()


def test_attention_blocks_are_invisible(tiny_encoder):
    """Query blocks of any size give the transformer the same output (long references)."""
    enc = CodecEncoder(tiny_encoder.weights, threads=2)
    h = (RNG.standard_normal((37, tiny_encoder.weights.hidden))).astype(np.float32)
    enc.ATTN_BLOCK = 1000
    ref = enc._transformer(h.copy())
    for b in (1, 5, 16):
        enc.ATTN_BLOCK = b
        assert np.abs(enc._transformer(h.copy()) - ref).max() <= 1e-5 * np.abs(ref).max()
