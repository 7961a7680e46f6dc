"""F32 parity of the talker, code predictor and generation loop with the official implementation
(golden fixtures made by tests/fixtures/make_fixtures.py from qwen-tts 0.1.1 on tiny random weights)."""
import io
import json

import numpy as np
import pytest

import edgetts
from edgetts import weights
from edgetts.gguf.names import GGUFView
from edgetts.kvcache import KVCache
from edgetts.models import config as C
from edgetts.models.predictor import Predictor
from edgetts.models.talker import Talker
from edgetts.pipeline import Stats

from conftest import FIXTURES as FIX
REL = 1e-4


def rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def golden(name):
    return np.load(FIX / name / "golden.npz")


def meta(name):
    return json.loads((FIX / name / "golden_meta.json").read_text())


def models(name):
    ck = weights.open(FIX / name)
    cfg = C.from_checkpoint(ck)
    view = GGUFView(ck.main)
    return cfg, Talker(view, cfg), Predictor(view, cfg)


@pytest.mark.parametrize("name", ["tiny", "tiny_proj"])
def test_talker_forward(name):
    g = golden(name)
    cfg, talker, _ = models(name)
    t = cfg.talker
    cache = KVCache(t.n_layers, t.n_kv_heads, t.head_dim, 64)
    trace = []
    y, logits = talker.prefill(g["a_inputs_embeds"], cache, trace)
    hs = g["a_hidden_states"]
    assert len(trace) == hs.shape[0] - 1
    for i, h in enumerate(trace):
        assert rel(h, hs[i + 1]) < REL, f"hidden state {i + 1}"
    assert rel(y, g["a_last_hidden"]) < REL
    assert rel(talker.all_logits(trace[-1]), g["a_logits"]) < REL
    assert rel(logits, g["a_logits"][-1]) < REL


@pytest.mark.parametrize("name", ["tiny", "tiny_proj"])
def test_talker_prefill_equals_steps(name):
    """The KV-cache path (one row at a time) gives the prefill's logits."""
    g = golden(name)
    cfg, talker, _ = models(name)
    t = cfg.talker
    x = g["a_inputs_embeds"]
    cache = KVCache(t.n_layers, t.n_kv_heads, t.head_dim, 64)
    for i in range(x.shape[0]):
        _, logits = talker.step(x[i:i + 1].copy(), cache)
        assert rel(logits, g["a_logits"][i]) < REL


@pytest.mark.parametrize("name", ["tiny", "tiny_proj"])
def test_predictor_frame(name):
    g = golden(name)
    cfg, talker, pred = models(name)
    n = cfg.num_code_groups - 1
    codes = np.zeros(n, np.int64)
    lo = np.zeros((n, cfg.predictor.vocab), np.float32)
    e = talker.codec_rows(g["b_code0"])[0]
    pred.frame(g["b_past_hidden"], e, codes, True, 1.0, 0, 1.0, None, lo)
    np.testing.assert_array_equal(codes, g["b_codes"])
    assert rel(lo, g["b_logits"]) < REL


def cases():
    out = []
    for name in ["tiny", "tiny_proj", "tiny_vd", "tiny_base"]:
        for case, m in meta(name).get("cases", {}).items():
            out.append((name, case))
    return out


def case_kwargs(name, case, g):
    m = meta(name)["cases"][case]
    kw = dict(language=m["languages"][0], non_streaming_mode=m["non_streaming_mode"])
    if m.get("speakers"):
        kw["speaker"] = m["speakers"][0]
    if "c_instruct_ids" in g and (name == "tiny_vd" or "instruct" in case):
        kw["instruct"] = g["c_instruct_ids"]
    if name == "tiny_base":
        kw["speaker_embedding"] = g["s_xvector"]
    if case.startswith("c_icl"):
        kw["ref_codes"] = g["c_ref_code"]
        kw["ref_text"] = g["c_ref_ids"][3:-2]
    return kw


_TTS = {}


def tts_for(path):
    if path not in _TTS:
        _TTS[path] = edgetts.load(path, codec_precision="f32")
    return _TTS[path]


def run_case(tts, name, case, g):
    kw = case_kwargs(name, case, g)
    text = g["c_input_ids"][3:-5]
    st = Stats(trace={})
    res = tts.generate(text, greedy=True, min_frames=25, max_frames=25, repetition_penalty=1.05, stats=st, **kw)
    return res, st.trace, kw


@pytest.mark.parametrize("name,case", cases())
def test_generate_greedy(name, case):
    g = golden(name)
    tts = tts_for(FIX / name)
    kw = case_kwargs(name, case, g)
    prompt = tts._resolve(g["c_input_ids"][3:-5], kw.get("speaker"), kw["language"], kw.get("instruct"),
                          kw.get("speaker_embedding"), kw["non_streaming_mode"], kw.get("ref_codes"),
                          kw.get("ref_text"))
    assert rel(prompt.rows, g[f"{case}_prompt_embeds"]) < REL
    assert rel(prompt.trailing, g[f"{case}_trailing_text"]) < REL
    res, trace, _ = run_case(tts, name, case, g)
    ref = g[f"{case}_codes"]
    assert res.codes.dtype == np.int64 and res.codes.shape == ref.shape
    np.testing.assert_array_equal(res.codes, ref)
    tl = np.array(trace["talker_logits"])
    rl = g[f"{case}_talker_logits"]
    assert tl.shape[0] == 25  # the 26th (never expanded) token is not computed
    assert rel(tl[:, :rl.shape[1]], rl[:25]) < REL
    assert rel(np.array(trace["cp_logits"]), g[f"{case}_cp_logits"]) < REL
    assert rel(np.array(trace["talker_hidden"]), g[f"{case}_talker_hidden"]) < REL


@pytest.fixture(scope="module")
def gguf_f32(tmp_path_factory):
    from quantize.convert import convert as quantize

    out = {}
    for name in ["tiny", "tiny_proj"]:
        tp, _ = quantize(str(FIX / name), "f32", str(tmp_path_factory.mktemp(name) / "gguf"),
                         progress=False, out=io.StringIO())
        out[name] = tp
    return out


@pytest.mark.parametrize("name", ["tiny", "tiny_proj"])
def test_gguf_f32_same_as_safetensors(name, gguf_f32):
    g = golden(name)
    a = tts_for(FIX / name)
    b = edgetts.load(gguf_f32[name], codec_precision="f32")
    assert b.checkpoint.main.format == "gguf"
    assert (a.model_type, a.speakers, a.languages) == (b.model_type, b.speakers, b.languages)
    assert a.cfg.talker == b.cfg.talker and a.cfg.predictor == b.cfg.predictor
    assert a.cfg.generation == b.cfg.generation
    for case in [c for n, c in cases() if n == name][:2]:
        ra, ta, _ = run_case(a, name, case, g)
        rb, tb, _ = run_case(b, name, case, g)
        np.testing.assert_array_equal(ra.codes, rb.codes)
        np.testing.assert_array_equal(np.array(ta["talker_logits"]), np.array(tb["talker_logits"]))
    # text given as a string goes through the GGUF tokenizer and gives the same ids
    text = meta(name)["text"]
    assert b.text_ids(text) == a.text_ids(text)


def test_icl_ref_text_string_and_audio():
    """ref_text as a string gives the golden ids; ICL audio = decode(ref + generated) minus the ref part."""
    g = golden("tiny_base")
    tts = tts_for(FIX / "tiny_base")
    ref_text = meta("tiny_base")["ref_text"]
    assert tts.ref_text_ids(ref_text) == g["c_ref_ids"][3:-2].tolist()
    kw = case_kwargs("tiny_base", "c_icl_stream", g)
    kw["ref_text"] = ref_text
    r = tts.generate(g["c_input_ids"][3:-5], greedy=True, min_frames=4, max_frames=4, **kw)
    np.testing.assert_array_equal(r.codes, g["c_icl_stream_codes"][:4])
    if r.audio is not None:
        spf = tts.codec.samples_per_frame
        assert r.audio.shape[0] == 4 * spf
        full = tts.decode(np.concatenate([g["c_ref_code"].astype(np.int64), r.codes]))
        np.testing.assert_allclose(r.audio, full[len(g["c_ref_code"]) * spf:])
