"""Q8_0 / Q4_0 talker + code predictor against F32 on identical inputs (teacher forcing)."""
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

import edgetts
from edgetts.kvcache import KVCache
from edgetts.pipeline import FrameEmbedder

from conftest import FIXTURES as FIX
FRAMES = 40
REPORT = Path(os.environ.get("EDGETTS_QUANT_REPORT", "")) if os.environ.get("EDGETTS_QUANT_REPORT") else None


def teacher_forced(tts, prompt, codes):
    """Raw talker logits [F, V] and CP logits [F, G-1, Vc] along a fixed code sequence."""
    cfg = tts.cfg
    t = cfg.talker
    cache = KVCache(t.n_layers, t.n_kv_heads, t.head_dim, prompt.rows.shape[0] + len(codes) + 1)
    y, logits = tts.talker.prefill(prompt.rows, cache)
    emb = FrameEmbedder(tts.talker, tts.predictor)
    row = np.zeros((1, t.hidden), np.float32)
    e0 = np.zeros((1, t.hidden), np.float32)
    G = cfg.num_code_groups
    tl, cl = [], []
    for g, frame in enumerate(codes):
        tl.append(logits.copy())
        tts.talker.codec_embd.rows_f32(int(frame[0]), e0[0])
        lo = np.zeros((G - 1, cfg.predictor.vocab), np.float32)
        tts.predictor.frame(y, e0[0], np.zeros(G - 1, np.int64), True, 1.0, 0, 1.0, None, lo, forced=frame[1:])
        cl.append(lo)
        emb(frame, row)
        row += prompt.trailing[g] if g < prompt.trailing.shape[0] else prompt.pad_row
        y, logits = tts.talker.step(row, cache)
    return np.array(tl), np.array(cl)


# The tiny random-weight fixtures have near-tied logits now and then (F32 top-1/top-2 gaps of
# 0.002..0.2 against a logit std of ~4). Q8_0 WEIGHTS alone (float32 activations) already move
# logits by ~1e-4 relative-cosine, enough to swap such near-ties in ~2% of 600 teacher-forced steps;
# the bar is therefore applied to "decisive" steps (gap >= MARGIN * logit std); all steps reported.
MARGIN = 0.05


def top2_margin(x):
    s = np.sort(x.reshape(-1, x.shape[-1]), -1)
    return s[:, -1] - s[:, -2]


def cosine(a, b):
    a = a.reshape(-1, a.shape[-1]).astype(np.float64)
    b = b.reshape(-1, b.shape[-1]).astype(np.float64)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.fixture(scope="module", params=["tiny", "tiny_proj"])
def quantized(request, tmp_path_factory):
    from quantize.convert import convert as quantize

    name = request.param
    out = {"name": name, "f32": edgetts.load(FIX / name)}
    for q in ("q8_0", "q4_0"):
        tp, _ = quantize(str(FIX / name), q, str(tmp_path_factory.mktemp(f"{name}_{q}")),
                         progress=False, out=io.StringIO())
        out[q] = edgetts.load(tp)
    return out


def compare(quantized, q):
    ref = quantized["f32"]
    text = ref.text_ids("Hello, this is a tiny test.")[1]
    codes = ref.generate(text, speaker="tiny", language="english", greedy=True, min_frames=FRAMES,
                         max_frames=FRAMES).codes
    prompt = ref._resolve(text, "tiny", "english", None, None, None)
    lo, hi = ref.cfg.suppress_range
    keep = np.r_[0:lo, ref.cfg.codec_eos_id]   # the ids that survive suppression
    tl0, cl0 = teacher_forced(ref, prompt, codes)
    tts = quantized[q]
    prompt_q = tts._resolve(text, "tiny", "english", None, None, None)
    tl, cl = teacher_forced(tts, prompt_q, codes)
    cos_t = cosine(tl[:, keep], tl0[:, keep])
    cos_c = cosine(cl, cl0)
    top_t = (tl[:, keep].argmax(-1) == tl0[:, keep].argmax(-1))
    top_c = (cl.argmax(-1) == cl0.argmax(-1)).reshape(-1)
    top = np.r_[top_t, top_c]
    margin = np.r_[top2_margin(tl0[:, keep]), top2_margin(cl0)]
    decisive = margin >= MARGIN * np.r_[tl0[:, keep].ravel(), cl0.ravel()].std()
    res = dict(model=quantized["name"], qtype=q, talker_cos_min=float(cos_t.min()), cp_cos_min=float(cos_c.min()),
               talker_top1=float(top_t.mean()), cp_top1=float(top_c.mean()),
               top1_all=float(top.mean()), top1_decisive=float(top[decisive].mean()),
               steps=int(top.size), decisive_steps=int(decisive.sum()))
    if REPORT:
        with open(REPORT, "a") as f:
            f.write(json.dumps(res) + "\n")
    return res


def test_q8_0_matches_f32(quantized):
    r = compare(quantized, "q8_0")
    assert quantized["q8_0"].talker.stack.layers[0].qkv.dtype == "Q8_0"
    assert r["talker_cos_min"] >= 0.999 and r["cp_cos_min"] >= 0.999, r
    assert r["top1_decisive"] >= 0.99 and r["top1_all"] >= 0.97, r


def test_q4_0_runs_and_is_close(quantized):
    """Q4_0 figures are reported (EDGETTS_QUANT_REPORT=file); the bar here is loose."""
    r = compare(quantized, "q4_0")
    assert quantized["q4_0"].talker.stack.layers[0].qkv.dtype == "Q4_0"
    assert r["talker_cos_min"] >= 0.9 and r["cp_cos_min"] >= 0.9, r
    assert r["top1_all"] >= 0.6, r
