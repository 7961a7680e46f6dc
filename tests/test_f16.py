"""float16 <-> float32 conversions: the integer versions (targets without half instructions, the
portable NUMBA_CPU_NAME=generic build) and conv.F16_TABLE against numpy, and the generic build
itself in a subprocess."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import ROOT
from numba import njit

from edgetts.kernels import conv, quant


@njit(cache=True)
def _widen_all(f, out):
    for i in range(out.size):
        out[i] = f(i)


@njit(cache=True)
def _widen_hw(h):  # (an intrinsic cannot be passed as an argument: an njit wrapper can)
    return quant._f16_to_f32_hw(h)


@njit(cache=True)
def _narrow_hw(x):
    return quant._f32_to_f16_hw(x)


@njit(cache=True)
def _narrow_all(f, x, out):
    for i in range(x.size):
        out[i] = f(x[i])


def _f32_cases():
    """Every half value, the float32 values around each (1 ulp either side), the exact midpoints
    between neighbouring halves and 1 ulp around them (ties to even), the overflow edge, random
    float32 of every exponent."""
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    with np.errstate(invalid="ignore"):
        v = h[np.isfinite(h)].astype(np.float32)
    pos = np.unique(np.abs(v))
    mid = ((pos[:-1].astype(np.float64) + pos[1:]) / 2).astype(np.float32)
    base = np.concatenate([pos, mid, [65504, 65519.996, 65520, 65520.004, 1e5, np.inf]]).astype(np.float32)
    near = [base, np.nextafter(base, np.float32(np.inf)), np.nextafter(base, np.float32(0))]
    rng = np.random.default_rng(0)
    rnd = rng.integers(0, 0x7F800000, 400000, dtype=np.uint32).view(np.float32)
    a = np.concatenate(near + [rnd])
    return np.concatenate([a, -a]).astype(np.float32)


def test_f16_table_is_numpys_conversion_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in cast"
        with np.errstate(all="raise"):
            t = conv._f16_table()
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    with np.errstate(invalid="ignore"):
        ref = h.astype(np.float32)
    fin = np.isfinite(h) | np.isinf(h)
    np.testing.assert_array_equal(t.view(np.uint32)[fin], ref.view(np.uint32)[fin])
    assert np.isnan(t[~fin]).all() and (~fin).sum() == 2046
    # NaN payloads as numpy's software conversion keeps them (x86): sign | 0x7f800000 | m << 13
    assert t.view(np.uint32)[0x7C01] == 0x7F802000 and t.view(np.uint32)[0xFE00] == 0xFFC00000
    np.testing.assert_array_equal(t.view(np.uint32), conv.F16_TABLE.view(np.uint32))


@pytest.mark.parametrize("hw", [False, True])
def test_widen_every_half(hw):
    if hw and not quant.NATIVE_HALF:
        pytest.skip("no half conversion instruction on this target")
    out = np.empty(65536, np.float32)
    _widen_all(_widen_hw if hw else quant._f16_to_f32_soft, out)
    nan = np.isnan(conv.F16_TABLE)
    np.testing.assert_array_equal(out.view(np.uint32)[~nan], conv.F16_TABLE.view(np.uint32)[~nan])
    assert np.isnan(out[nan]).all()


def test_soft_conversions_equal_the_instructions():
    """The integer versions give the hardware's bits, NaN included (quieted), where there is one."""
    if not quant.NATIVE_HALF:
        pytest.skip("no half conversion instruction on this target")
    a, b = np.empty(65536, np.float32), np.empty(65536, np.float32)
    _widen_all(quant._f16_to_f32_soft, a)
    _widen_all(_widen_hw, b)
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    x = np.concatenate([_f32_cases(), np.array([np.nan, -np.nan], np.float32),
                        np.array([0x7F800001, 0x7FBFFFFF, 0xFFC12345], np.uint32).view(np.float32)])
    s, h = np.empty(x.size, np.uint16), np.empty(x.size, np.uint16)
    _narrow_all(quant._f32_to_f16_soft, x, s)
    _narrow_all(_narrow_hw, x, h)
    np.testing.assert_array_equal(s, h)


def test_narrow_rounds_like_numpy():
    x = _f32_cases()
    out = np.empty(x.size, np.uint16)
    _narrow_all(quant._f32_to_f16_soft, x, out)
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(out, ref)
    nan = np.empty(1, np.uint16)
    _narrow_all(quant._f32_to_f16_soft, np.array([np.nan], np.float32), nan)
    assert np.isnan(nan.view(np.float16)[0])


_GENERIC = r"""
import numpy as np, gguf
from edgetts.kernels import quant
from edgetts.kernels.matmul import Matrix
import platform
if platform.machine() in ("aarch64", "arm64"):  # every aarch64 has NEON and half conversions
    assert quant.KERNEL_ISA == "neon" and quant.NATIVE_HALF, (quant.KERNEL_ISA, quant.NATIVE_HALF)
else:
    assert quant.KERNEL_ISA == "generic" and not quant.NATIVE_HALF, (quant.KERNEL_ISA, quant.NATIVE_HALF)
rng = np.random.default_rng(5)
w = rng.standard_normal((37, 160)).astype(np.float32)
x = rng.standard_normal(160).astype(np.float32)
for dt in ("Q8_0", "Q4_0"):
    m = Matrix.from_f32(w, dt)
    assert np.array_equal(m.data, gguf.quants.quantize(w, gguf.GGMLQuantizationType[dt])), dt
    back = m.to_f32()
    assert np.array_equal(back, gguf.quants.dequantize(m.data, gguf.GGMLQuantizationType[dt])), dt
    out = np.empty(37, np.float32)
    m.matvec(x, out)
    err = np.abs(out - back.astype(np.float64) @ x).max() / np.abs(back @ x).max()
    assert err < 0.05, (dt, err)
m = Matrix.from_f32(w, "F16")
out = np.empty(37, np.float32)
m.matvec(x, out)
ref = w.astype(np.float16).astype(np.float64) @ x
assert np.abs(out - ref).max() < 1e-4 * np.abs(ref).max()
print("generic ok")
"""


def test_portable_generic_build_runs():
    """NUMBA_CPU_NAME=generic (a build for any CPU of the architecture): on x86 no half
    instructions, so the integer conversions; quantizers still bit-exact with gguf, products right."""
    env = dict(os.environ, NUMBA_CPU_NAME="generic", PYTHONPATH=str(ROOT))
    env.pop("EDGETTS_KERNEL_ISA", None)
    r = subprocess.run([sys.executable, "-c", _GENERIC], env=env, capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert r.stdout.decode().strip() == "generic ok"
