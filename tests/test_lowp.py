"""Reduced-precision codec GEMM (edgetts/kernels/lowp.py) against numpy twins, and the codec's
precision switch."""
import numpy as np
import pytest

from edgetts.errors import EdgeTTSError
from edgetts.kernels import lowp

needs_int8 = pytest.mark.skipif(not lowp.HAS_INT8, reason="host has no AVX512-VNNI")
needs_bf16 = pytest.mark.skipif(not lowp.HAS_BF16, reason="host has no AVX512_BF16")


# ------------------------------------------------------------------ numpy twins
def twin_quant_rows(x):
    """Per-row u8 with zero point 128: floor(x / s + 128.5) with s = max|x| / 127 (float32 ops)."""
    x = np.asarray(x, np.float32)
    amax = np.abs(x).max(axis=1)
    s = (amax / np.float32(127)).astype(np.float32)
    inv = np.where(amax > 0, np.float32(1) / np.where(amax > 0, s, 1), 0).astype(np.float32)
    v = (x * inv[:, None]).astype(np.float32) + np.float32(128.5)
    return np.floor(v).astype(np.uint8), s


def twin_weights_int8(w):
    amax = np.abs(w).max(axis=0)
    sw = np.where(amax > 0, amax / np.float32(127), 0).astype(np.float32)
    inv = np.where(sw > 0, 1 / np.where(sw > 0, sw, 1), 0).astype(np.float32)
    return np.clip(np.rint(w * inv), -127, 127).astype(np.int8), sw


def twin_int8_conv(xp, w, taps, d):
    """The int8 causal conv (taps=1: the product) as the kernel defines it: every input row
    quantized once; per tap an exact integer dot, scaled in float32, taps added in order."""
    q, sx = twin_quant_rows(xp)
    wq, sw = twin_weights_int8(w)
    cin = w.shape[0] // taps
    n = xp.shape[0] - (taps - 1) * d
    out = None
    for j in range(taps):
        wj = wq[j * cin:(j + 1) * cin].astype(np.int64)
        acc = q[j * d: j * d + n].astype(np.int64) @ wj          # exact
        zc = 128 * wj.sum(axis=0)
        val = (acc - zc).astype(np.float32) * (sw[None, :] * sx[j * d: j * d + n, None])
        out = val if out is None else (out + val).astype(np.float32)
    return out


def twin_pack_int8(w, taps, nt, ka, nw):
    """The packed int8 weight as numpy builds it: per-column quantization, then the layout."""
    K, N = w.shape
    cin = K // taps
    wq, sw = twin_weights_int8(w)
    vals = np.zeros((taps, ka * 4, nt * nw), np.int8)
    vals[:, :cin, :N] = wq.reshape(taps, cin, N)
    zc = 128 * vals.astype(np.int32).sum(axis=1)
    packed = vals.reshape(taps * ka, 4, nt, nw).transpose(2, 0, 3, 1)
    return np.ascontiguousarray(packed).view(np.int32).reshape(nt, taps * ka, nw), sw, zc


@needs_int8
@pytest.mark.parametrize("K,N,taps", [(5, 16, 1), (33, 50, 1), (21, 96, 7), (130, 200, 2)])
def test_int8_packing_equals_twin(K, N, taps):
    w = np.random.default_rng(K).standard_normal((K, N), dtype=np.float32)
    w[:, 3] = 0.0  # an all-zero column: scale 0
    p = lowp.PackedGemm(w, "int8", taps)
    pw, sw, zc = twin_pack_int8(w, taps, p.nt, p.KA, p.nv * lowp.LANES)
    np.testing.assert_array_equal(p.w, pw)
    np.testing.assert_array_equal(p.sw[:N], sw)
    assert (p.sw[N:] == 0).all()
    np.testing.assert_array_equal(p.zc, zc)


def twin_bf16(a):
    """float32 -> nearest-even bfloat16, as float32."""
    b = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32)


def twin_im2col(xp, k, d):
    T = xp.shape[0] - (k - 1) * d
    return np.concatenate([xp[j * d: j * d + T] for j in range(k)], axis=1)


SHAPES = [(1, 5, 16), (7, 33, 50), (13, 96, 64), (9, 130, 200), (32, 64, 96)]


@needs_int8
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_int8_gemm_equals_twin(M, K, N):
    rng = np.random.default_rng(M * K + N)
    x = rng.standard_normal((M, K), dtype=np.float32) * rng.uniform(0.1, 10, (M, 1)).astype(np.float32)
    w = rng.standard_normal((K, N), dtype=np.float32) / np.sqrt(K)
    p = lowp.PackedGemm(w, "int8")
    y = p.matmul(x)
    assert y.shape == (M, N)
    ref = twin_int8_conv(x, w, 1, 1)
    np.testing.assert_allclose(y, ref, rtol=2e-7, atol=1e-7 * np.abs(ref).max())
    # and it approximates the float product (int8: ~1 % relative error)
    exact = x.astype(np.float64) @ w
    assert np.linalg.norm(y - exact) / np.linalg.norm(exact) < 0.03


@needs_int8
def test_int8_quantized_activations_equal_twin():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 37), dtype=np.float32)
    x[2] = 0.0  # all-zero row: scale 0, zero point only
    p = lowp.PackedGemm(np.ones((37, 16), np.float32), "int8")
    A, sx = p.act(6)
    p.load_rows(x, A, sx)
    q, s = twin_quant_rows(x)
    qa = A.view(np.uint8)
    np.testing.assert_array_equal(qa[:6, :37], q)
    assert (qa[:6, 37:] == 128).all() and (qa[6:] == 128).all()
    np.testing.assert_array_equal(sx[:6], s)


@needs_int8
@pytest.mark.parametrize("k,d", [(1, 1), (3, 1), (7, 3), (7, 9)])
def test_int8_conv_equals_twin(k, d):
    rng = np.random.default_rng(k * d)
    T, C, N = 11, 26, 48
    xp = rng.standard_normal((T + (k - 1) * d, C), dtype=np.float32)
    xp *= rng.uniform(0.1, 10, (xp.shape[0], 1)).astype(np.float32)
    w = rng.standard_normal((k * C, N), dtype=np.float32)
    p = lowp.PackedGemm(w, "int8", taps=k)
    y = p.conv(xp, d)
    ref = twin_int8_conv(xp, w, k, d)
    np.testing.assert_allclose(y, ref, rtol=2e-7, atol=1e-7 * np.abs(ref).max())
    exact = twin_im2col(xp, k, d).astype(np.float64) @ w
    assert np.linalg.norm(y - exact) / np.linalg.norm(exact) < 0.03


@needs_bf16
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_bf16_gemm_equals_twin(M, K, N):
    rng = np.random.default_rng(M + K * N)
    x = rng.standard_normal((M, K), dtype=np.float32)
    w = rng.standard_normal((K, N), dtype=np.float32)
    p = lowp.PackedGemm(w, "bf16")
    y = p.matmul(x)
    ref = twin_bf16(x).astype(np.float64) @ twin_bf16(w).astype(np.float64)
    # products of bf16 values are exact in float32; only the float32 summation order differs
    tol = 1e-6 * np.sqrt(K) * (np.abs(twin_bf16(x)).astype(np.float64) @ np.abs(twin_bf16(w)))
    assert (np.abs(y - ref) <= tol + 1e-30).all()
    # as a 3-tap conv (dilation 2): the same products, tap by tap
    xp = np.concatenate([np.zeros((4, K), np.float32), x])
    w3 = rng.standard_normal((3 * K, N), dtype=np.float32)
    y3 = lowp.PackedGemm(w3, "bf16", taps=3).conv(xp, 2)
    cols = twin_bf16(twin_im2col(xp, 3, 2)).astype(np.float64)
    ref3 = cols @ twin_bf16(w3).astype(np.float64)
    tol3 = 1e-6 * np.sqrt(3 * K) * (np.abs(cols) @ np.abs(twin_bf16(w3)))
    assert (np.abs(y3 - ref3) <= tol3 + 1e-30).all()


def test_bf16_bits_rounds_to_nearest_even():
    v = np.array([1.0, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, -2.5, 3.0e38], np.float32)
    got = (lowp.bf16_bits(v).astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(got, [1.0, 1.0, 1.0 + 2 ** -6, -2.5, twin_bf16(v)[4]])


def _fresh_asm(kind, fn):
    """Assembly of a driver compiled afresh (numba does not show the assembly of cached code)."""
    import numba
    p = lowp.PackedGemm(np.ones((8, 64), np.float32), kind)
    f = numba.njit(nogil=True)(fn.py_func)
    A, sx = p.act(4)
    f(A, p.w, p.out(4), sx, p.sw, p.zc, 0, 4, 0, p.nt, 1)
    return next(iter(f.inspect_asm().values()))


@needs_int8
def test_int8_kernel_uses_vpdpbusd_on_zmm():
    assert "vpdpbusd\t%zmm" in _fresh_asm("int8", lowp.gemm_int8)


@needs_bf16
def test_bf16_kernel_uses_vdpbf16ps_on_zmm():
    assert "vdpbf16ps\t%zmm" in _fresh_asm("bf16", lowp.gemm_bf16)


# ------------------------------------------------------------------ the codec's switch
def test_codec_precision_rejects_unknown_name():
    from conftest import FIXTURES
    import edgetts.weights as W
    from edgetts.models.codec import Codec
    with pytest.raises(EdgeTTSError, match="codec precision"):
        Codec.load(W.open(FIXTURES / "tiny"), precision="fp8")


def test_tts_load_rejects_unknown_codec_precision_at_once():
    import edgetts
    from conftest import TINY
    with pytest.raises(EdgeTTSError, match="codec precision"):
        edgetts.load(TINY, codec_precision="int4")


@needs_int8
def test_codec_int8_streams_like_one_shot_and_holds_less():
    """The reduced path keeps the decoder's streaming contract (per-row activation scales do not
    depend on how frames are chunked) and holds its matrices in int8."""
    from conftest import FIXTURES
    import edgetts.weights as W
    from edgetts.models.codec import Codec
    ck = W.open(FIXTURES / "tiny")
    c8 = Codec.load(ck, precision="int8", threads=2)
    c32 = Codec.load(ck, precision="f32")
    codes = np.random.default_rng(0).integers(0, c8.codebook_size, (9, c8.num_quantizers))
    one = c8.decode(codes)
    st = c8.stream()
    fed = np.concatenate([st.push(codes[i:i + 2]) for i in range(0, 9, 2)])
    np.testing.assert_allclose(fed, one, atol=1e-5)
    assert c8.decoder.weight_bytes < c32.decoder.weight_bytes
    assert np.isfinite(one).all() and one.shape == c32.decode(codes).shape


@needs_int8
def test_codec_int8_odd_sizes_threads_and_f16_storage():
    """Odd layer sizes (some with < 16 outputs stay float32), F16 storage kept half precision,
    1 vs 2 threads: the same int8 result (threads split whole column tiles or row tiles)."""
    from test_codec_random import ODD_CONFIG, checkpoint_from_tensors, random_codec_tensors
    from edgetts.models.codec import Codec
    ck = checkpoint_from_tensors(random_codec_tensors(ODD_CONFIG, seed=3, dtype=np.float16), ODD_CONFIG)
    a = Codec.load(ck, threads=1, precision="int8")
    b = Codec.load(ck, threads=2, precision="int8", keep_f16=True)
    codes = np.random.default_rng(0).integers(0, a.codebook_size, (10, a.num_quantizers))
    x = a.decode(codes)
    np.testing.assert_allclose(b.decode(codes), x, atol=1e-6)
    assert x.shape == (10 * a.samples_per_frame,) and np.isfinite(x).all()
