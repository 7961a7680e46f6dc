"""The codec transformer's one-region push (kernels/codec_tfm.py) against CodecStream's per-op
path, its numpy-free twin: bit for bit, whatever the push sizes, thread count or weight dtype."""
from __future__ import annotations

import numpy as np
import pytest

from edgetts.kernels import codec_tfm
from edgetts.models.codec import Codec, CodecStream

from test_codec_random import ODD_CONFIG, _codes, checkpoint_from_tensors, random_codec_tensors

# widths that are not multiples of the 64-column units or of the 4-column blocks, GQA, a window
# shorter than some pushes
MID_CONFIG = dict(ODD_CONFIG, latent_dim=72, hidden_size=136, intermediate_size=202, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=34, sliding_window=9)


def _transformer_outputs(codec, sizes, fused, seed=0):
    st = codec.stream()
    st.fused = fused
    rng = np.random.default_rng(seed)
    C = codec.decoder.cfg.latent_dim
    outs = [st._transformer(rng.standard_normal((n, C), dtype=np.float32)) for n in sizes]
    return outs, st


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fused_equals_per_op(dtype, threads):
    ck = checkpoint_from_tensors(random_codec_tensors(MID_CONFIG, seed=5, dtype=dtype), MID_CONFIG)
    codec = Codec.load(ck, threads=threads, precision="f32")
    assert codec.decoder.tfm is not None
    sizes = [1, 3, 16, 5, 1, 1, 12, 7, 2, 16]   # 64 positions: the ring wraps several times
    a, sa = _transformer_outputs(codec, sizes, fused=True)
    b, sb = _transformer_outputs(codec, sizes, fused=False)
    for x, y in zip(a, b):
        assert x.shape == y.shape and np.array_equal(x, y)
    assert np.array_equal(sa.kring, sb.kring) and np.array_equal(sa.vring, sb.vring)
    assert sa.pos == sb.pos == sum(sizes)


def test_push_size_does_not_change_rows():
    """A row's output does not depend on how many rows came with it (streamed == one-shot)."""
    codec = Codec.load(checkpoint_from_tensors(random_codec_tensors(MID_CONFIG, seed=6), MID_CONFIG),
                       threads=2, precision="f32")
    x = np.random.default_rng(1).standard_normal((24, MID_CONFIG["latent_dim"]), dtype=np.float32)
    st = codec.stream()
    one = st._transformer(x[:16])
    one = np.concatenate([one, st._transformer(x[16:])])
    st.reset()
    parts = np.concatenate([st._transformer(x[i:i + 1]) for i in range(24)])
    assert np.array_equal(one, parts)


def test_whole_codec_fused_vs_per_op():
    codec = Codec.load(checkpoint_from_tensors(random_codec_tensors(MID_CONFIG, seed=7, dtype=np.float16),
                                               MID_CONFIG), threads=2, precision="f32")
    codes = _codes(codec, 21, 2)
    st = codec.stream()
    fused = np.concatenate([st.push(codes[i:i + 4]) for i in range(0, 21, 4)])
    st = codec.stream()
    st.fused = False
    per_op = np.concatenate([st.push(codes[i:i + 4]) for i in range(0, 21, 4)])
    assert np.array_equal(fused, per_op)
    assert np.array_equal(fused, codec.decode(codes))


def test_packed_weights_keep_the_per_op_path():
    codec = Codec.load(checkpoint_from_tensors(random_codec_tensors(ODD_CONFIG, seed=3), ODD_CONFIG),
                       precision="f32")
    d = codec.decoder
    assert codec_tfm.weights(d.in_w, d.in_b, d.layers, d.norm_w, d.out_w, d.out_b, 1e-5, 4, 2, 6, 5) is not None
    packed = object()  # anything that is not a float array (lowp.PackedGemm in practice)
    assert codec_tfm.weights(packed, d.in_b, d.layers, d.norm_w, d.out_w, d.out_b, 1e-5, 4, 2, 6, 5) is None
    assert CodecStream.fused  # on by default
