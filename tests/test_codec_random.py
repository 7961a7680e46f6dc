"""Codec decoder on random weights of a non-default shape: sizes must come from the config and
tensors, streamed output must equal one-shot output, state must stay bounded.

`random_codec_tensors(dc)` is also used by bench/codec.py (full-size random decoder).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgetts.errors import EdgeTTSError
from edgetts.weights import Checkpoint, Tensor, Weights

from conftest import TOL_AUDIO_ORDER

# A decoder config unlike the released one: GQA, odd widths, other rates / window / quantizers.
ODD_CONFIG = dict(
    codebook_size=64, codebook_dim=24, num_quantizers=3, num_semantic_quantizers=1,
    latent_dim=20, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=6, sliding_window=5,
    upsample_rates=[3, 2], upsampling_ratios=[3], decoder_dim=16,
    rms_norm_eps=1e-5, rope_theta=10000.0,
)


def random_codec_tensors(dc: dict, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """HF-named decoder tensors (speech_tokenizer/model.safetensors layout) with random values."""
    rng = np.random.default_rng(seed)
    D = "decoder."
    t: dict[str, np.ndarray] = {}

    def mat(*shape, fan_in=None):
        fan = fan_in or int(np.prod(shape[1:]))
        return (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(fan)).astype(dtype)

    def vec(n, mean=0.0, sd=0.05):
        return (mean + sd * rng.standard_normal(n, dtype=np.float32)).astype(dtype)

    cd, ci, cs = dc["codebook_dim"], dc["codebook_dim"] // 2, dc["codebook_size"]
    nsem = dc.get("num_semantic_quantizers", 1)
    for g, n in (("rvq_first", nsem), ("rvq_rest", dc["num_quantizers"] - nsem)):
        for i in range(n):
            p = f"{D}quantizer.{g}.vq.layers.{i}._codebook."
            t[p + "embedding_sum"] = rng.standard_normal((cs, ci), dtype=np.float32).astype(dtype)
            t[p + "cluster_usage"] = rng.uniform(0.5, 1.5, cs).astype(dtype)
        t[f"{D}quantizer.{g}.output_proj.weight"] = mat(cd, ci, 1)
        t[f"{D}quantizer.{g}.input_proj.weight"] = mat(ci, cd, 1)
    L, Hd, I = dc["latent_dim"], dc["hidden_size"], dc["intermediate_size"]
    qw = dc["num_attention_heads"] * dc["head_dim"]
    kw = dc["num_key_value_heads"] * dc["head_dim"]
    t[D + "pre_conv.conv.weight"] = mat(L, cd, 3)
    t[D + "pre_conv.conv.bias"] = vec(L)
    p = D + "pre_transformer."
    t[p + "input_proj.weight"], t[p + "input_proj.bias"] = mat(Hd, L), vec(Hd)
    t[p + "output_proj.weight"], t[p + "output_proj.bias"] = mat(L, Hd), vec(L)
    t[p + "norm.weight"] = vec(Hd, 1.0, 0.1)
    for i in range(dc["num_hidden_layers"]):
        q = f"{p}layers.{i}."
        t[q + "input_layernorm.weight"] = vec(Hd, 1.0, 0.1)
        t[q + "post_attention_layernorm.weight"] = vec(Hd, 1.0, 0.1)
        t[q + "self_attn.q_proj.weight"] = mat(qw, Hd)
        t[q + "self_attn.k_proj.weight"] = mat(kw, Hd)
        t[q + "self_attn.v_proj.weight"] = mat(kw, Hd)
        t[q + "self_attn.o_proj.weight"] = mat(Hd, qw)
        t[q + "mlp.gate_proj.weight"] = mat(I, Hd)
        t[q + "mlp.up_proj.weight"] = mat(I, Hd)
        t[q + "mlp.down_proj.weight"] = mat(Hd, I)
        t[q + "self_attn_layer_scale.scale"] = rng.uniform(0.05, 0.2, Hd).astype(dtype)
        t[q + "mlp_layer_scale.scale"] = rng.uniform(0.05, 0.2, Hd).astype(dtype)
    for u, r in enumerate(dc["upsampling_ratios"]):
        q = f"{D}upsample.{u}."
        t[q + "0.conv.weight"], t[q + "0.conv.bias"] = mat(L, L, r, fan_in=L), vec(L)
        t[q + "1.dwconv.conv.weight"], t[q + "1.dwconv.conv.bias"] = mat(L, 1, 7), vec(L)
        t[q + "1.norm.weight"], t[q + "1.norm.bias"] = vec(L, 1.0, 0.1), vec(L)
        t[q + "1.pwconv1.weight"], t[q + "1.pwconv1.bias"] = mat(4 * L, L), vec(4 * L)
        t[q + "1.pwconv2.weight"], t[q + "1.pwconv2.bias"] = mat(L, 4 * L), vec(L)
        t[q + "1.gamma"] = rng.uniform(0.05, 0.2, L).astype(dtype)
    C = dc["decoder_dim"]
    t[D + "decoder.0.conv.weight"], t[D + "decoder.0.conv.bias"] = mat(C, L, 7), vec(C)
    for b, r in enumerate(dc["upsample_rates"]):
        q = f"{D}decoder.{b + 1}.block."
        co = C // 2
        t[q + "0.alpha"], t[q + "0.beta"] = vec(C, 0, 0.1), vec(C, 0, 0.1)
        t[q + "1.conv.weight"], t[q + "1.conv.bias"] = mat(C, co, 2 * r, fan_in=2 * C), vec(co)
        for j in (2, 3, 4):
            for a in ("act1", "act2"):
                t[f"{q}{j}.{a}.alpha"], t[f"{q}{j}.{a}.beta"] = vec(co, 0, 0.1), vec(co, 0, 0.1)
            t[f"{q}{j}.conv1.conv.weight"], t[f"{q}{j}.conv1.conv.bias"] = mat(co, co, 7), vec(co)
            t[f"{q}{j}.conv2.conv.weight"], t[f"{q}{j}.conv2.conv.bias"] = mat(co, co, 1), vec(co)
        C = co
    nb = len(dc["upsample_rates"])
    t[f"{D}decoder.{nb + 1}.alpha"], t[f"{D}decoder.{nb + 1}.beta"] = vec(C, 0, 0.1), vec(C, 0, 0.1)
    t[f"{D}decoder.{nb + 2}.conv.weight"] = mat(1, C, 7) * dtype(0.3)
    t[f"{D}decoder.{nb + 2}.conv.bias"] = vec(1)
    return t


def checkpoint_from_tensors(tensors: dict[str, np.ndarray], dc: dict, sample_rate=24000) -> Checkpoint:
    """An in-memory HF-style Checkpoint holding only codec weights."""
    names = {np.float32: "F32", np.float16: "F16", np.uint16: "BF16"}  # uint16 = bfloat16 bits
    tw = {n: Tensor(n, names[a.dtype.type], a.shape, a) for n, a in tensors.items()}
    w = Weights(Path("<random codec>"), "safetensors", tw, {})
    cfg = {"decoder_config": dict(dc), "output_sample_rate": sample_rate}
    return Checkpoint(kind="hf", root=Path("<random codec>"), codec=w, codec_config=cfg)


@pytest.fixture(scope="module")
def odd_codec():
    from edgetts.models.codec import Codec
    return Codec.load(checkpoint_from_tensors(random_codec_tensors(ODD_CONFIG, seed=3), ODD_CONFIG), precision="f32")


def _codes(codec, n, seed):
    return np.random.default_rng(seed).integers(0, codec.codebook_size, (n, codec.num_quantizers))


def test_sizes_come_from_config(odd_codec):
    c = odd_codec
    assert c.samples_per_frame == 3 * 3 * 2
    assert c.num_quantizers == 3 and c.codebook_size == 64
    w = c.decode(_codes(c, 11, 0))
    assert w.shape == (11 * 18,) and w.dtype == np.float32
    assert np.all(np.abs(w) <= 1.0) and np.std(w) > 1e-3


def test_stream_equals_oneshot_odd_config(odd_codec):
    c = odd_codec
    codes = _codes(c, 23, 1)  # > sliding_window, exercises the K/V window wrap
    ref = c.decode(codes)
    st = c.stream()
    frame = np.concatenate([st.push(codes[i:i + 1]) for i in range(len(codes))])
    assert np.abs(frame - ref).max() <= TOL_AUDIO_ORDER
    st.reset()
    rng = np.random.default_rng(7)
    parts, i = [], 0
    while i < len(codes):
        n = int(rng.integers(1, 6))
        parts.append(st.push(codes[i:i + n]))
        i += n
    assert np.abs(np.concatenate(parts) - ref).max() <= TOL_AUDIO_ORDER


def test_state_is_bounded(odd_codec):
    c = odd_codec
    st = c.stream()

    def state_bytes():
        arrs = [st.pre_st, st.kring, st.vring, st.dec0_st, st.final_st]
        arrs += [a for pair in st.up_st for a in pair]
        arrs += [b[0] for b in st.block_st] + [u for b in st.block_st for u in b[1]]
        return sum(a.nbytes for a in arrs)

    st.push(_codes(c, 2, 2))
    b0 = state_bytes()
    for i in range(6):
        st.push(_codes(c, 7, 10 + i))
    assert state_bytes() == b0
    assert st.kring.shape[1] == ODD_CONFIG["sliding_window"] - 1 + st.max_chunk
    assert st.pos == 44


def test_f16_weights_and_gguf_metadata(tmp_path, odd_codec):
    """The same decoder stored as F16 in a qwen3-tts-tokenizer GGUF (tok_dec.* names)."""
    gguf = pytest.importorskip("gguf")
    from edgetts.gguf.names import codebook, derived_codebooks, hf_to_gguf
    from edgetts.models.codec import Codec
    import edgetts.weights as W

    hf = random_codec_tensors(ODD_CONFIG, seed=3)
    path = tmp_path / "tok.gguf"
    wr = gguf.GGUFWriter(str(path), "qwen3-tts-tokenizer")
    pre = "qwen3-tts-tokenizer.decoder."
    for k, v in ODD_CONFIG.items():
        if isinstance(v, list):
            wr.add_array(pre + k, v)
        elif isinstance(v, float):
            wr.add_float32(pre + k, v)
        else:
            wr.add_uint32(pre + k, v)
    wr.add_uint32("qwen3-tts-tokenizer.output_sample_rate", 24000)
    for g, (num, use) in derived_codebooks(hf).items():
        wr.add_tensor(g, codebook(hf[num], hf[use]))
    for n, a in hf.items():
        g = hf_to_gguf(n)
        if g is not None:
            wr.add_tensor(g, a.astype(np.float16) if a.ndim > 1 and a.size > 64 else a)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    ck = W.Checkpoint(kind="gguf", root=tmp_path, codec=W.read_gguf(path))
    c16 = Codec.load(ck, precision="f32")
    assert c16.samples_per_frame == odd_codec.samples_per_frame
    codes = _codes(c16, 9, 4)
    a, b = c16.decode(codes), odd_codec.decode(codes)
    assert np.abs(a - b).max() < 0.05  # F16 rounding of the weights only
    st = c16.stream()
    s = np.concatenate([st.push(codes[i:i + 2]) for i in range(0, 9, 2)])
    assert np.abs(s - a).max() <= TOL_AUDIO_ORDER
    # keep_f16: the F16 matrices stay half precision in memory, widened per use -> same output
    ck2 = Codec.load(ck, keep_f16=True, precision="f32")
    assert ck2.decoder.dec0.w.dtype == np.float16
    assert np.array_equal(ck2.decode(codes), a)


def test_bad_codes_and_missing_codec(odd_codec):
    from edgetts.models.codec import Codec
    c = odd_codec
    with pytest.raises(EdgeTTSError, match="codes must be"):
        c.decode(np.zeros((4, 2), np.int64))
    with pytest.raises(EdgeTTSError, match="0..63"):
        c.decode(np.full((2, 3), 64))
    with pytest.raises(EdgeTTSError, match="0..63"):
        c.stream().push(np.full((1, 3), -1))
    with pytest.raises(EdgeTTSError, match="no codec"):
        Codec.load(Checkpoint(kind="hf", root=Path("x")))
    assert c.decode(np.zeros((0, 3), np.int64)).shape == (0,)


def test_bf16_weights():
    """BF16-stored weights (uint16 bits) decode exactly like their float32 values."""
    from edgetts.models.codec import Codec
    hf = random_codec_tensors(ODD_CONFIG, seed=3)
    bits = {n: (a.view(np.uint32) >> 16).astype(np.uint16) for n, a in hf.items()}
    as_f32 = {n: (b.astype(np.uint32) << 16).view(np.float32) for n, b in bits.items()}
    c_bf16 = Codec.load(checkpoint_from_tensors(bits, ODD_CONFIG), precision="f32")
    c_f32 = Codec.load(checkpoint_from_tensors(as_f32, ODD_CONFIG), precision="f32")
    codes = _codes(c_f32, 6, 5)
    assert np.array_equal(c_bf16.decode(codes), c_f32.decode(codes))


def test_f16_few_row_products_read_f16_exactly():
    """F16-stored weights of the few-row stages (upsampler, decoder.0, first block's transposed
    conv) stay float16 in the panel kernel: the output equals, bit for bit, that of a float32
    checkpoint holding the widened values, with half the bytes for those weights."""
    from edgetts.kernels.gemm_rows import Panels
    from edgetts.models.codec import Codec, CodecDecoder

    dc = dict(ODD_CONFIG, latent_dim=64, decoder_dim=64, upsample_rates=[4, 2], upsampling_ratios=[2],
              hidden_size=32, num_attention_heads=4, num_key_value_heads=4, head_dim=8)
    t16 = random_codec_tensors(dc, seed=9, dtype=np.float16)
    t32 = {k: v.astype(np.float32) for k, v in t16.items()}
    few = CodecDecoder.few_row_groups(_cfg(dc))
    assert few == {"upsample0.tconv", "upsample0.pwconv", "decoder.0", "block0.tconv"}
    for precision in ("f32", "auto"):
        c16 = Codec.load(checkpoint_from_tensors(t16, dc), precision=precision)
        d = c16.decoder
        panels = [d.upsample[0].tconv.w, d.upsample[0].pw1, d.upsample[0].pw2, d.dec0.w, d.blocks[0].tconv.w]
        assert all(isinstance(p, Panels) and p.wp.dtype == np.uint16 for p in panels)
    c16 = Codec.load(checkpoint_from_tensors(t16, dc), precision="f32")
    c32 = Codec.load(checkpoint_from_tensors(t32, dc), precision="f32")
    assert c32.decoder.dec0.w.wp.dtype == np.float32
    codes = _codes(c16, 13, 5)
    assert np.array_equal(c16.decode(codes), c32.decode(codes))
    assert c16.decoder.weight_bytes < c32.decoder.weight_bytes


def _cfg(dc):
    from edgetts.models.config import CodecConfig
    return CodecConfig.from_checkpoint(checkpoint_from_tensors({}, dc))
