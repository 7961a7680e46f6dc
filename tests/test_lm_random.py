"""A random checkpoint of other sizes (layers, heads, GQA group, head_dim, vocab, code groups,
projection) runs and is self-consistent: nothing in the engine is sized by constants."""
import json

import numpy as np
import pytest
from safetensors.numpy import save_file

import edgetts
from edgetts.kvcache import KVCache

CB = 64                       # codebook size; talker vocab = CB + 1024 control ids
V = CB + 1024


def make_checkpoint(d, seed=0, *, H=48, layers=3, heads=6, kv=2, hd=8, ffn=80, text_vocab=300, text_hidden=40,
                    Hc=24, cp_layers=2, cp_heads=3, cp_kv=1, cp_hd=8, cp_ffn=40, groups=5):
    rng = np.random.default_rng(seed)
    t = {}

    def lin(name, o, i, gain=1.0):
        t[name] = (gain * rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)

    def layer(p, h, nh, nkv, dh, f):
        t[p + "input_layernorm.weight"] = (1 + 0.1 * rng.standard_normal(h)).astype(np.float32)
        t[p + "post_attention_layernorm.weight"] = (1 + 0.1 * rng.standard_normal(h)).astype(np.float32)
        t[p + "self_attn.q_norm.weight"] = (1 + 0.1 * rng.standard_normal(dh)).astype(np.float32)
        t[p + "self_attn.k_norm.weight"] = (1 + 0.1 * rng.standard_normal(dh)).astype(np.float32)
        lin(p + "self_attn.q_proj.weight", nh * dh, h)
        lin(p + "self_attn.k_proj.weight", nkv * dh, h)
        lin(p + "self_attn.v_proj.weight", nkv * dh, h)
        lin(p + "self_attn.o_proj.weight", h, nh * dh)
        lin(p + "mlp.gate_proj.weight", f, h)
        lin(p + "mlp.up_proj.weight", f, h)
        lin(p + "mlp.down_proj.weight", h, f)

    for i in range(layers):
        layer(f"talker.model.layers.{i}.", H, heads, kv, hd, ffn)
    for i in range(cp_layers):
        layer(f"talker.code_predictor.model.layers.{i}.", Hc, cp_heads, cp_kv, cp_hd, cp_ffn)
    t["talker.model.text_embedding.weight"] = rng.standard_normal((text_vocab, text_hidden)).astype(np.float32)
    lin("talker.text_projection.linear_fc1.weight", text_hidden, text_hidden)
    t["talker.text_projection.linear_fc1.bias"] = (0.05 * rng.standard_normal(text_hidden)).astype(np.float32)
    lin("talker.text_projection.linear_fc2.weight", H, text_hidden)
    t["talker.text_projection.linear_fc2.bias"] = (0.05 * rng.standard_normal(H)).astype(np.float32)
    t["talker.model.codec_embedding.weight"] = rng.standard_normal((V, H)).astype(np.float32)
    t["talker.model.norm.weight"] = np.ones(H, np.float32)
    lin("talker.codec_head.weight", V, H, 4.0)
    t["talker.code_predictor.model.norm.weight"] = np.ones(Hc, np.float32)
    for j in range(groups - 1):
        t[f"talker.code_predictor.model.codec_embedding.{j}.weight"] = rng.standard_normal((CB, H)).astype(np.float32)
        lin(f"talker.code_predictor.lm_head.{j}.weight", CB, Hc, 4.0)
    if Hc != H:
        lin("talker.code_predictor.small_to_mtp_projection.weight", Hc, H)
        t["talker.code_predictor.small_to_mtp_projection.bias"] = (0.05 * rng.standard_normal(Hc)).astype(np.float32)
    save_file(t, str(d / "model.safetensors"))
    ctl = dict(codec_pad_id=CB + 100, codec_bos_id=CB + 101, codec_eos_token_id=CB + 102, codec_think_id=CB + 106,
               codec_nothink_id=CB + 107, codec_think_bos_id=CB + 108, codec_think_eos_id=CB + 109)
    cfg = dict(tts_model_type="custom_voice", tts_model_size="rand", im_start_token_id=text_vocab - 7,
               im_end_token_id=text_vocab - 6, tts_pad_token_id=text_vocab - 5, tts_bos_token_id=text_vocab - 4,
               tts_eos_token_id=text_vocab - 3, assistant_token_id=text_vocab - 2,
               talker_config=dict(rms_norm_eps=1e-6, rope_theta=10000.0, num_code_groups=groups,
                                  codec_language_id={"english": CB + 120, "german": CB + 121},
                                  spk_id={"a": CB + 200, "b": CB + 201}, spk_is_dialect={"a": False, "b": False},
                                  code_predictor_config=dict(rms_norm_eps=1e-6, rope_theta=1e6), **ctl))
    (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.fixture(scope="module", params=[dict(), dict(Hc=48, cp_heads=4, cp_kv=4, cp_hd=6, groups=3, layers=1,
                                                     heads=3, kv=1, hd=10)])
def rand(request, tmp_path_factory):
    d = make_checkpoint(tmp_path_factory.mktemp("rand"), **request.param)
    return edgetts.load(d), request.param


def test_sizes_from_weights(rand):
    tts, p = rand
    c = tts.cfg
    assert c.talker.n_layers == p.get("layers", 3) and c.talker.n_heads == p.get("heads", 6)
    assert c.talker.n_kv_heads == p.get("kv", 2) and c.talker.head_dim == p.get("hd", 8)
    assert c.talker.vocab == V and c.predictor.vocab == CB and c.num_code_groups == p.get("groups", 5)
    assert c.predictor.hidden == p.get("Hc", 24) and (tts.predictor.proj is None) == (p.get("Hc", 24) == 48)
    assert tts.languages == ["auto", "english", "german"] and tts.speakers == ["a", "b"]
    assert not tts.has_codec


def test_prefill_equals_steps(rand):
    tts, _ = rand
    t = tts.cfg.talker
    x = np.random.default_rng(3).standard_normal((9, t.hidden)).astype(np.float32)
    c1 = KVCache(t.n_layers, t.n_kv_heads, t.head_dim, 16)
    tr = []
    tts.talker.prefill(x, c1, tr)
    full = tts.talker.all_logits(tr[-1])
    c2 = KVCache(t.n_layers, t.n_kv_heads, t.head_dim, 16)
    for i in range(9):
        _, lg = tts.talker.step(x[i:i + 1].copy(), c2)
        np.testing.assert_allclose(lg, full[i], rtol=1e-4, atol=1e-4 * np.abs(full).max())
    # prefill in two chunks through the cache equals one prefill
    c3 = KVCache(t.n_layers, t.n_kv_heads, t.head_dim, 16)
    tts.talker.prefill(x[:4], c3)
    _, lg = tts.talker.prefill(x[4:], c3)
    np.testing.assert_allclose(lg, full[-1], rtol=1e-4, atol=1e-4 * np.abs(full).max())


def test_generate_seeded_and_streamed(rand):
    tts, _ = rand
    G = tts.cfg.num_code_groups
    kw = dict(speaker="b", language="german", max_frames=12, min_frames=12)
    a = tts.generate([5, 6, 7], seed=7, **kw)
    b = tts.generate([5, 6, 7], seed=7, **kw)
    c = tts.generate([5, 6, 7], seed=8, **kw)
    assert a.codes.shape == (12, G) and a.codes.dtype == np.int64 and a.audio is None
    assert (a.codes >= 0).all() and (a.codes < CB).all()
    np.testing.assert_array_equal(a.codes, b.codes)
    assert (a.codes != c.codes).any()
    frames = list(tts.frames([5, 6, 7], seed=7, **kw))
    np.testing.assert_array_equal(np.stack(frames), a.codes)
    g1 = tts.generate([5, 6, 7], greedy=True, **kw)
    g2 = tts.generate([5, 6, 7], greedy=True, seed=99, **kw)
    np.testing.assert_array_equal(g1.codes, g2.codes)
    t = a.timings
    assert t["frames"] == 12 and t["prefill_s"] > 0 and t["talker_ms_per_frame"] > 0 and t["predictor_ms_per_frame"] > 0


class EosHead:
    """Wraps the codec head; sets the EOS logit relative to the best code logit."""

    def __init__(self, head, eos, offset):
        self.head, self.eos, self.offset = head, eos, offset

    def matvec(self, x, out):
        self.head.matvec(x, out)
        out[self.eos] = out[:CB].max() + self.offset
        return out


def test_stop_guards(rand):
    """EOS never before min_frames; a growing EOS bias past the expected length; the
    text-length frame cap ends a run that never says EOS; max_frames caps everything."""
    from edgetts.pipeline import frame_limits

    tts, _ = rand
    head = tts.talker.codec_head
    eos = tts.cfg.codec_eos_id
    expected, cap = frame_limits(3, tts.cfg.generation.max_new_tokens)
    try:
        tts.talker.codec_head = EosHead(head, eos, +100.0)       # EOS always wins when allowed
        r = tts.generate([5, 6, 7], greedy=True, speaker="a")
        assert r.codes.shape[0] == 2 and r.timings["stop"] == "eos"   # blocked for the first 2
        r = tts.generate([5, 6, 7], greedy=True, speaker="a", min_frames=5)
        assert r.codes.shape[0] == 5 and r.timings["stop"] == "eos"
        tts.talker.codec_head = EosHead(head, eos, -1e4)         # EOS never wins
        r = tts.generate([5, 6, 7], speaker="a", seed=0)
        assert r.timings["stop"] == "max_frames" and r.codes.shape[0] == cap
        assert tts.generate([5, 6, 7], speaker="a", seed=0, max_frames=4).codes.shape[0] == 4
        tts.talker.codec_head = EosHead(head, eos, -3.0)         # EOS a bit behind: the bias ends it
        r = tts.generate([5, 6, 7], greedy=True, speaker="a", repetition_penalty=1.0)
        assert r.timings["stop"] == "eos" and expected < r.codes.shape[0] < cap
    finally:
        tts.talker.codec_head = head


def test_decode_steps_allocate_nothing(rand):
    """After warm-up a talker step and a code-predictor single step allocate no array data
    (tracemalloc sees numpy's allocations; array views are a few hundred bytes)."""
    import tracemalloc

    tts, _ = rand
    t = tts.cfg.talker
    cache = KVCache(t.n_layers, t.n_kv_heads, t.head_dim, 32)
    row = np.random.default_rng(0).standard_normal((1, t.hidden)).astype(np.float32)
    tts.talker.step(row.copy(), cache)
    p = tts.predictor
    x1 = np.random.default_rng(1).standard_normal((1, tts.cfg.predictor.hidden)).astype(np.float32)
    p.stack.forward(x1.copy(), 0, p.cache, p.buf1)
    tracemalloc.start()
    try:
        for _ in range(3):
            tts.talker.step(row, cache)
            p.stack.forward(x1, 1, p.cache, p.buf1)
            p.heads[0].matvec(p.buf1.y[0], p.logits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4096, peak


def test_kv_cache_grows_without_changing_results(rand):
    tts, _ = rand
    kw = dict(speaker="a", greedy=True, max_frames=40, min_frames=40)
    ref = tts.generate([5, 6, 7], **kw).codes
    tts.cache.k = tts.cache.k[:, :, :4].copy()   # a small cache: grows during the run
    tts.cache.v = tts.cache.v[:, :, :4].copy()
    tts.cache.capacity = 4
    tts.cache.scores = np.zeros(4, np.float32)
    from edgetts import pipeline
    orig = pipeline.Limits.__init__

    def small(self, *a, **k):
        orig(self, *a, **k)
        self.expected_frames = 1          # initial size: prompt + 2 frames
    pipeline.Limits.__init__ = small
    try:
        got = tts.generate([5, 6, 7], **kw).codes
    finally:
        pipeline.Limits.__init__ = orig
    assert tts.cache.capacity >= 40
    np.testing.assert_array_equal(got, ref)
