"""Codec decoder against the official qwen-tts decoder (tests/fixtures/tiny golden.npz, d_* keys):
one-shot parity within 1e-4, a >300-frame sequence against the unchunked official forward, and
streamed == one-shot (to float32 summation order) for frame-by-frame and random chunk feeding."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import edgetts.weights as W
from edgetts.models.codec import Codec

from conftest import FIXTURES, TOL_AUDIO_ORDER, TINY as FIX
TOL_OFFICIAL = 1e-4   # float32 reduction-order noise of the official decoder is ~2.6e-5
TOL_STREAM = TOL_AUDIO_ORDER  # OpenBLAS sgemm rounds a row differently with the row count



@pytest.fixture(scope="module")
def codec():
    return Codec.load(W.open(FIX), precision="f32")


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(FIX / "golden.npz"))


def _gen_codes_key(fx: Path, golden: dict) -> str:
    """Which c_*_codes array d_gen_wav decodes (named in golden_meta.json)."""
    meta = json.loads((fx / "golden_meta.json").read_text())
    text = " ".join(str(v) for v in (meta.get("codec"), meta.get("d")) if v)
    m = re.search(r"d_gen_wav = decode\((c_\w+)\)", text)
    if m and m.group(1) in golden:
        return m.group(1)
    return "c_en_stream_codes" if "c_en_stream_codes" in golden else "c_stream_codes"


@pytest.mark.parametrize("name", ["tiny", "tiny_proj"])
def test_fixture_codecs_match_official(name):
    """Every fixture with codec goldens (tiny_proj has a smaller codec config than tiny)."""
    fx = FIXTURES / name
    if not (fx / "golden.npz").is_file():
        pytest.skip(f"{name} fixture missing")
    g = dict(np.load(fx / "golden.npz"))
    if "d_wav" not in g:
        pytest.skip(f"{name} has no codec goldens")
    c = Codec.load(W.open(fx), precision="f32")
    assert np.abs(c.decode(g["d_codes"]) - g["d_wav"]).max() < TOL_OFFICIAL
    if "d_gen_wav" in g:
        assert np.abs(c.decode(g[_gen_codes_key(fx, g)]) - g["d_gen_wav"]).max() < TOL_OFFICIAL


def test_config_from_checkpoint(codec):
    cfg = codec.config
    assert codec.samples_per_frame == int(np.prod(cfg.upsample_rates + cfg.upsampling_ratios))
    assert codec.sample_rate == 24000
    assert codec.num_quantizers == cfg.num_quantizers


def test_random_codes_match_official(codec, golden):
    wav = codec.decode(golden["d_codes"])
    assert wav.dtype == np.float32 and wav.shape == golden["d_wav"].shape
    assert np.abs(wav - golden["d_wav"]).max() < TOL_OFFICIAL


def test_generated_codes_match_official(codec, golden):
    wav = codec.decode(golden[_gen_codes_key(FIX, golden)])
    assert np.abs(wav - golden["d_gen_wav"]).max() < TOL_OFFICIAL


def test_long_sequence_matches_unchunked_official(codec, golden):
    if "d_long_codes" not in golden:
        pytest.skip("fixture has no d_long_* case")
    codes = golden["d_long_codes"]
    assert codes.shape[0] > 300
    wav = codec.decode(codes)
    assert np.abs(wav - golden["d_long_wav_unchunked"]).max() < TOL_OFFICIAL
    # streamed in uneven chunks: the unchunked decode, to float32 summation order
    st = codec.stream()
    rng = np.random.default_rng(0)
    parts, i = [], 0
    while i < len(codes):
        n = int(rng.integers(1, 40))
        parts.append(st.push(codes[i:i + n]))
        i += n
    assert np.abs(np.concatenate(parts) - wav).max() <= TOL_STREAM


def test_stream_frame_by_frame_equals_oneshot(codec, golden):
    codes = golden["d_codes"]
    ref = codec.decode(codes)
    st = codec.stream()
    out = [st.push(codes[i:i + 1]) for i in range(len(codes))]
    assert all(o.shape == (codec.samples_per_frame,) for o in out)
    assert np.abs(np.concatenate(out) - ref).max() <= TOL_STREAM


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stream_random_chunks_equals_oneshot(codec, golden, seed):
    codes = golden["d_codes"]
    ref = codec.decode(codes)
    st = codec.stream()
    st.push(codes[:3])
    st.reset()  # reset must restore the zero history
    rng = np.random.default_rng(seed)
    parts, i = [], 0
    while i < len(codes):
        n = int(rng.integers(1, 7))
        parts.append(st.push(codes[i:i + n]))
        i += n
    assert np.abs(np.concatenate(parts) - ref).max() <= TOL_STREAM


@pytest.mark.parametrize("precision", ["f32", "auto"])
def test_unit_column_split_equals_row_split(golden, monkeypatch, precision):
    """Residual units over few rows split their products' columns over the threads
    (CodecStream._unit_cols) instead of their rows: the same decode, streamed frame by frame."""
    from edgetts.models.codec import CodecStream

    c = Codec.load(W.open(FIX), threads=2, precision=precision)
    c.rows.MIN_GEMM = 0  # split every product of this tiny codec over the two threads
    codes = golden["d_codes"][:12]
    calls = []
    cols = CodecStream._unit_cols
    monkeypatch.setattr(CodecStream, "_unit_cols", lambda self, *a: calls.append(1) or cols(self, *a))
    out = {}
    for rows in (0, 10 ** 9):
        monkeypatch.setattr(CodecStream, "COL_SPLIT_ROWS", rows)
        st = c.stream()
        out[rows] = np.concatenate([st.push(codes[i:i + 1]) for i in range(len(codes))])
        assert bool(calls) == (rows > 0)
    assert np.abs(out[0] - out[10 ** 9]).max() <= TOL_STREAM
    assert np.abs(out[0] - c.decode(codes)).max() <= TOL_STREAM


@pytest.mark.parametrize("late_rows", [1, 10 ** 9])
def test_late_block_pieces_equal_whole_step(codec, golden, monkeypatch, late_rows):
    """The late blocks and the final conv run in pieces of PIECE_FRAMES frames (bounded scratch);
    pieces of one frame from the first block on (late_rows 1), or of the final conv alone, give
    the whole-step decode."""
    from edgetts.models.codec import CodecStream

    codes = golden["d_codes"]
    monkeypatch.setattr(CodecStream, "PIECE_FRAMES", 10 ** 6)
    ref = codec.decode(codes)
    monkeypatch.setattr(CodecStream, "PIECE_FRAMES", 1)
    monkeypatch.setattr(CodecStream, "LATE_ROWS_PER_FRAME", late_rows)
    first, rows_in = CodecStream.late_blocks(codec.config)
    cfg = codec.config
    assert first == (0 if late_rows == 1 else len(cfg.upsample_rates))
    assert rows_in == int(np.prod(list(cfg.upsampling_ratios) + list(cfg.upsample_rates[:first])))
    out = codec.decode(codes)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= TOL_STREAM
