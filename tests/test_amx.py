"""The AMX "bf16x3" codec product (edgetts/kernels/amx.py, lowp.PackedBF16x3) against its numpy
twin, and the codec on it against the float32 codec."""
import numpy as np
import pytest

from edgetts.kernels import amx, lowp

needs_amx = pytest.mark.skipif(not amx.HAS_AMX_BF16, reason="host has no AMX-BF16 (or Linux did not grant it)")


def twin_split(x):
    """hi = bf16(x), lo = bf16(x - hi), nearest even, as float64 values."""
    def bf(v):
        b = np.ascontiguousarray(v, np.float32).view(np.uint32).astype(np.uint64)
        return (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)
    hi = bf(x)
    lo = bf(np.asarray(x, np.float32) - hi)
    return hi.astype(np.float64), lo.astype(np.float64)


def twin_bits(x):
    """(hi, lo) bfloat16 bits of the split."""
    hi, lo = twin_split(x)
    return [(v.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16) for v in (hi, lo)]


def twin_pack(w, taps):
    """The packed layout [NT, taps, KC, 16, 32] as numpy builds it."""
    K, N = w.shape
    cin = K // taps
    kc, nt = -(-cin // 32), -(-N // 32) * 2
    out = []
    for v in twin_bits(w.reshape(taps, cin, N)):
        p = np.zeros((taps, kc * 32, nt * 16), np.uint16)
        p[:, :cin, :N] = v
        p = p.reshape(taps, kc, 16, 2, nt, 16).transpose(4, 0, 1, 2, 5, 3)
        out.append(np.ascontiguousarray(p).reshape(nt, taps, kc, 16, 32))
    return out


def twin_pack_f32(w, taps):
    """w's float32 values in the packed layout (what hi + lo must add up to for F16 weights)."""
    K, N = w.shape
    cin = K // taps
    kc, nt = -(-cin // 32), -(-N // 32) * 2
    p = np.zeros((taps, kc * 32, nt * 16), np.float32)
    p[:, :cin, :N] = w.reshape(taps, cin, N)
    p = p.reshape(taps, kc, 16, 2, nt, 16).transpose(4, 0, 1, 2, 5, 3)
    return np.ascontiguousarray(p).reshape(nt, taps, kc, 16, 32)


def twin_conv(xp, w, taps, d):
    """The product the kernel defines: per tap xh Wh + xh Wl + xl Wh, exact products (float64)."""
    cin = w.shape[0] // taps
    n = xp.shape[0] - (taps - 1) * d
    xh, xl = twin_split(xp)
    wh, wl = twin_split(w)
    out = np.zeros((n, w.shape[1]))
    for j in range(taps):
        a, b = slice(j * d, j * d + n), slice(j * cin, (j + 1) * cin)
        out += xh[a] @ wh[b] + xh[a] @ wl[b] + xl[a] @ wh[b]
    return out


def test_split_rows_matches_the_numpy_split():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((5, 37)) * np.exp(rng.uniform(-20, 20, (5, 37)))).astype(np.float32)
    x[0, :4] = [0.0, -0.0, 1.0, 1 + 2 ** -8 + 2 ** -20]
    AH = np.full((7, 64), 7, np.uint16)
    AL = AH.copy()
    amx.split_rows(x, AH, AL)
    h, lo = twin_bits(x)
    np.testing.assert_array_equal(AH[:5, :37], h)
    np.testing.assert_array_equal(AL[:5, :37], lo)
    assert not AH[5:].any() and not AH[:, 37:].any() and not AL[5:].any() and not AL[:, 37:].any()
    hv, lv = twin_split(x)
    # hi + lo carries 16 significant bits: |x - hi - lo| <= 2^-17 |x|
    assert np.all(np.abs(x - hv - lv) <= 2.0 ** -17 * np.abs(x))


@pytest.mark.parametrize("K,N,taps", [(16, 16, 1), (37 * 3, 50, 3), (64, 96, 1), (7 * 33, 129, 7)])
def test_pack_weight_matches_twin(K, N, taps):
    w = np.random.default_rng(K).standard_normal((K, N)).astype(np.float32)
    wh, wl = amx.pack_weight(w, taps)
    th, tl = twin_pack(w, taps)
    np.testing.assert_array_equal(wh, th)
    np.testing.assert_array_equal(wl, tl)
    # an F16-stored weight: hi + lo is its value exactly (11 significant bits)
    h = w.astype(np.float16).astype(np.float32)
    wh, wl = amx.pack_weight(h, taps)
    back = (wh.astype(np.uint32) << 16).view(np.float32) + (wl.astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(back, twin_pack_f32(h, taps))


@needs_amx
@pytest.mark.parametrize("n,cin,cout,taps,d", [(1, 16, 16, 1, 1), (37, 40, 50, 3, 2), (70, 96, 96, 7, 3),
                                             (5, 1024, 48, 1, 1), (33, 33, 129, 2, 5)])
def test_bf16x3_conv_matches_twin(n, cin, cout, taps, d):
    rng = np.random.default_rng(n + cin)
    w = (rng.standard_normal((taps * cin, cout)) / np.sqrt(taps * cin)).astype(np.float32)
    xp = rng.standard_normal((n + (taps - 1) * d, cin)).astype(np.float32)
    p = lowp.PackedBF16x3(w, taps)
    y = p.conv(xp, d)
    assert y.shape == (n, cout) and y.dtype == np.float32
    ref = twin_conv(xp, w, taps, d)
    # the twin's sums are exact; the tiles add float32 products in float32
    scale = np.sqrt(taps * cin) * np.abs(ref).max()
    assert np.abs(y - ref).max() <= 1e-6 * scale
    f64 = sum(xp[j * d: j * d + n].astype(np.float64) @ w[j * cin:(j + 1) * cin] for j in range(taps))
    snr = 10 * np.log10(np.sum(f64 ** 2) / np.sum((y - f64) ** 2))
    assert snr > 90, snr  # ~100 dB: a single bfloat16 product gives ~52


@needs_amx
def test_bf16x3_thread_split_is_bit_identical():
    """Threads split column blocks or 32-row blocks; every output comes from the same tile
    sequence either way."""
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(1)
    pool = ThreadPoolExecutor(2)

    def par(fn, n):
        if n < 2:
            return fn(0, n)
        f = pool.submit(fn, n // 2, n)
        fn(0, n // 2)
        f.result()
    for n, cin, cout, taps in [(300, 256, 256, 7), (4000, 96, 48, 3), (9, 512, 2048, 1)]:
        w = rng.standard_normal((taps * cin, cout)).astype(np.float32)
        xp = rng.standard_normal((n + (taps - 1) * 2, cin)).astype(np.float32)
        p = lowp.PackedBF16x3(w, taps)
        np.testing.assert_array_equal(p.conv(xp, 2, par), p.conv(xp, 2))
        # a row's result does not depend on the rows around it (streaming == one-shot)
        np.testing.assert_array_equal(p.conv(xp[:40 + (taps - 1) * 2], 2), p.conv(xp, 2)[:40])


@needs_amx
def test_codec_bf16x3_streams_like_one_shot_and_stays_close_to_f32():
    from conftest import FIXTURES
    import edgetts.weights as W
    from edgetts.models.codec import Codec
    ck = W.open(FIXTURES / "tiny")
    c = Codec.load(ck, precision="bf16x3", threads=2)
    ref = Codec.load(ck, precision="f32").decode(
        codes := np.random.default_rng(0).integers(0, c.codebook_size, (9, c.num_quantizers)))
    one = c.decode(codes)
    st = c.stream()
    fed = np.concatenate([st.push(codes[i:i + 2]) for i in range(0, 9, 2)])
    np.testing.assert_allclose(fed, one, atol=1e-5)  # the float32 stages (final conv) chunk-dependent
    snr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((one - ref.astype(np.float64)) ** 2))
    assert snr >= 35, snr


def test_bf16x3_unavailable_is_a_one_line_error(monkeypatch):
    from conftest import FIXTURES
    import edgetts.weights as W
    from edgetts.errors import EdgeTTSError
    from edgetts.models import codec_precision
    from edgetts.models.codec import Codec
    monkeypatch.setitem(codec_precision._AVAILABLE, "bf16x3", False)
    with pytest.raises(EdgeTTSError, match="AMX-BF16 needed"):
        Codec.load(W.open(FIXTURES / "tiny"), precision="bf16x3")


@needs_amx
def test_kernel_uses_amx_bf16_tiles():
    import numba
    p = lowp.PackedBF16x3(np.ones((64, 32), np.float32))
    f = numba.njit(nogil=True)(amx.gemm_bf16x3.py_func)  # numba shows no assembly of cached code
    AH = np.zeros((32, p.kp), np.uint16)
    out = np.empty((32, p.npad), np.float32)
    f(AH, AH, p.wh, p.wl, out, amx.TILE_CFG, 0, 32, 0, p.nt // 2, 1, 32)
    asm = next(iter(f.inspect_asm().values()))
    assert "tdpbf16ps" in asm and "ldtilecfg" in asm and "tilerelease" in asm


def test_auto_without_amx_is_the_float32_codec(monkeypatch):
    """On a CPU without AMX-BF16 (or EDGETTS_AMX=0) auto is the exact float32 path."""
    from conftest import FIXTURES
    import edgetts.weights as W
    from edgetts.models import codec_precision
    from edgetts.models.codec import Codec
    ck = W.open(FIXTURES / "tiny")
    ref = Codec.load(ck, precision="f32")
    codes = np.random.default_rng(2).integers(0, ref.codebook_size, (5, ref.num_quantizers))
    monkeypatch.setitem(codec_precision._AVAILABLE, "bf16x3", False)
    auto = Codec.load(ck, precision="auto")
    assert not any(isinstance(getattr(u.conv1, "w", None), lowp.PackedGemm)
                   for b in auto.decoder.blocks for u in b.units)
    np.testing.assert_array_equal(auto.decode(codes), ref.decode(codes))


def test_amx_can_be_turned_off_by_environment():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", "from edgetts.kernels import amx; print(amx.HAS_AMX_BF16)"],
                       env={**__import__("os").environ, "EDGETTS_AMX": "0"}, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "False"
