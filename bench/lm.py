"""LM-side speed: talker decode step (context ~100) and code-predictor frame, per weight type.

    python bench/lm.py [--threads 2] [--types Q8_0,Q4_0] [--model PATH] [--ctx 100] [--per-op]

Without --model: a full-size 0.6B-shaped talker + code predictor with random weights is built in
process (sizes of spec/talker.md §1; the text-embedding table is cut to 4096 rows because only
prompt rows read it, which does not touch the timed steps). Weight types follow the quantize
policy: linears = the type, embeddings/heads Q8_0 for Q4_0, norms F32.
With --model: a checkpoint (HF dir or GGUF) as loaded by edgetts.load.

Reported per type: ms per talker step (28 layers + codec head, KV context ~ctx) and per
code-predictor frame (2-row prefill + 14 steps, 15 heads, sampling), their sum, the bandwidth
floor (weight bytes read per step or frame / read bandwidth measured in this run), and the
official PyTorch figures measured on this machine (constants below). Prints JSON.
Quantized x86 stacks run a talker step / a whole CP frame as ONE parallel region
(edgetts/kernels/decoder.py); --per-op also times the per-op path (one region per product) in the
same run, interleaved with the fused one, as "per_op" -- the A/B that survives a loaded machine.
"""
from __future__ import annotations

import argparse
import gc
import os
import time

# Measure what edgetts users get: the library defaults to passive OpenMP workers (see
# edgetts/__init__.py; _common.py would pick "active" for kernel throughput). A/B here, loaded
# box, Q4_0: talker step median 28-34 ms passive vs 42-213 ms active, CP frame 58-113 vs 120-354.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from _common import json_out, measure_read_bandwidth, run_info, setup_threads

from edgetts.kernels.matmul import Matrix
from edgetts.kvcache import KVCache
from edgetts.models import config as C
from edgetts.models.predictor import Predictor
from edgetts.models.talker import Talker
from edgetts.pipeline import FrameEmbedder
from edgetts.weights import Tensor

# Official qwen-tts 0.1.1 + torch 2.13.0 CPU, 2 threads, full-size 0.6B random weights, this
# machine (source: ../shared/reference/results/bench_fp32.json and bench_bf16.json, summarized in
# ../shared/reference/README.md "Measured"). min / median in ms.
OFFICIAL = {
    "float32": {"talker_step_ms": {"min": 117.4, "median": 120.4}, "cp_frame_ms": {"min": 346.0, "median": 356.6}},
    "bfloat16": {"talker_step_ms": {"min": 71.4, "median": 74.2}, "cp_frame_ms": {"min": 203.0, "median": 207.0}},
    "source": "shared/reference/results/bench_{fp32,bf16}.json (qwen-tts 0.1.1, torch 2.13.0+cpu, 2 threads)",
}
TARGET_MS = {"Q4_0": 45.0, "Q8_0": 65.0}   # talker step + CP frame (issue #3)

# 0.6B shapes (spec/talker.md §1.1, §1.2); text vocab cut (see above)
FULL_0B6 = dict(H=1024, layers=28, heads=16, kv=8, hd=128, ffn=3072, V=3072, text_vocab=4096, text_hidden=2048,
                Hc=1024, cp_layers=5, cp_ffn=3072, cb=2048, groups=16)


class RandomView:
    """GGUF-named random tensors, created already in their stored type (as a quantized file holds)."""

    def __init__(self, qtype: str, s=FULL_0B6, seed=0):
        self.t: dict[str, Tensor] = {}
        self.rng = np.random.default_rng(seed)
        side = "Q8_0" if qtype == "Q4_0" else qtype
        H, Hc = s["H"], s["Hc"]

        def layer(p, h):
            self.norm(p + "attn_norm.weight", h)
            self.norm(p + "ffn_norm.weight", h)
            self.norm(p + "attn_q_norm.weight", s["hd"])
            self.norm(p + "attn_k_norm.weight", s["hd"])
            self.mat(p + "attn_q.weight", s["heads"] * s["hd"], h, qtype)
            self.mat(p + "attn_k.weight", s["kv"] * s["hd"], h, qtype)
            self.mat(p + "attn_v.weight", s["kv"] * s["hd"], h, qtype)
            self.mat(p + "attn_output.weight", h, s["heads"] * s["hd"], qtype)
            self.mat(p + "ffn_gate.weight", s["ffn"], h, qtype)
            self.mat(p + "ffn_up.weight", s["ffn"], h, qtype)
            self.mat(p + "ffn_down.weight", h, s["ffn"], qtype)

        for i in range(s["layers"]):
            layer(f"talker.blk.{i}.", H)
        for i in range(s["cp_layers"]):
            layer(f"code_pred.blk.{i}.", Hc)
        self.norm("talker.output_norm.weight", H)
        self.norm("code_pred.output_norm.weight", Hc)
        self.mat("talker.text_embd.weight", s["text_vocab"], s["text_hidden"], side)
        self.mat("talker.text_proj.fc1.weight", s["text_hidden"], s["text_hidden"], qtype)
        self.mat("talker.text_proj.fc2.weight", H, s["text_hidden"], qtype)
        self.norm("talker.text_proj.fc1.bias", s["text_hidden"])
        self.norm("talker.text_proj.fc2.bias", H)
        self.mat("talker.codec_embd.weight", s["V"], H, side)
        self.mat("talker.codec_head.weight", s["V"], H, side)
        for j in range(s["groups"] - 1):
            self.mat(f"code_pred.codec_embd.{j}.weight", s["cb"], H, side)
            self.mat(f"code_pred.lm_head.{j}.weight", s["cb"], Hc, side)
        if Hc != H:
            self.mat("code_pred.mtp_proj.weight", Hc, H, qtype)
            self.norm("code_pred.mtp_proj.bias", Hc)

    def norm(self, name, n):
        self.t[name] = Tensor(name, "F32", (n,), (1 + 0.1 * self.rng.standard_normal(n)).astype(np.float32))

    def mat(self, name, rows, cols, dtype):
        w = self.rng.standard_normal((rows, cols), dtype=np.float32)
        w *= np.float32(1 / np.sqrt(cols))
        m = Matrix.from_f32(w, dtype)
        del w
        self.t[name] = Tensor(name, dtype, (rows, cols), m.data)

    def __contains__(self, name):
        return name in self.t

    def __getitem__(self, name):
        return self.t[name]


def random_config(view, s=FULL_0B6) -> C.TalkerConfig:
    cb = s["cb"]
    ctl = dict(codec_pad_id=cb + 100, codec_bos_id=cb + 101, codec_eos_token_id=cb + 102, codec_think_id=cb + 106,
               codec_nothink_id=cb + 107, codec_think_bos_id=cb + 108, codec_think_eos_id=cb + 109)
    cfg = dict(tts_model_type="custom_voice", tts_model_size="0b6",
               talker_config=dict(num_code_groups=s["groups"], codec_language_id={"english": cb + 2},
                                  spk_id={"ryan": cb + 1013}, spk_is_dialect={"ryan": False}, **ctl,
                                  code_predictor_config={}))
    return C.from_hf(cfg, None, view)


def bench_type(talker, predictor, cfg, ctx: int, steps: int, frames: int, rng) -> dict:
    t = cfg.talker
    H = t.hidden
    cache = KVCache(t.n_layers, t.n_kv_heads, t.head_dim, ctx + steps + 8)
    x = (0.1 * rng.standard_normal((ctx - steps // 2, H))).astype(np.float32)
    t0 = time.perf_counter()
    talker.prefill(x, cache)
    prefill_s = time.perf_counter() - t0
    pos0 = cache.pos
    row = np.zeros((1, H), np.float32)
    step_ms = []
    for rep in range(3):
        cache.pos = pos0
        for _ in range(steps):
            row[0] = 0.1 * rng.standard_normal(H)
            t0 = time.perf_counter()
            y, logits = talker.step(row, cache)
            step_ms.append(1e3 * (time.perf_counter() - t0))
    G = cfg.num_code_groups
    codes = np.zeros(G - 1, np.int64)
    e0 = np.zeros(H, np.float32)
    embed = FrameEmbedder(talker, predictor)
    frame = np.zeros(G, np.int64)
    cp_ms, emb_ms = [], []
    for f in range(frames + 2):
        talker.codec_embd.rows_f32(int(f % 100), e0)
        t0 = time.perf_counter()
        predictor.frame(y, e0, codes, False, 0.9, 50, 1.0, rng)
        t1 = time.perf_counter()
        frame[0] = f % 100
        frame[1:] = codes
        embed(frame, row)
        t2 = time.perf_counter()
        if f >= 2:  # the first frames warm the caches
            cp_ms.append(1e3 * (t1 - t0))
            emb_ms.append(1e3 * (t2 - t1))
    return dict(prefill_rows=int(x.shape[0]), prefill_s=prefill_s,
                talker_step_ms=dict(min=min(step_ms), median=float(np.median(step_ms)), n=len(step_ms)),
                cp_frame_ms=dict(min=min(cp_ms), median=float(np.median(cp_ms)), n=len(cp_ms)),
                frame_embed_ms=float(np.median(emb_ms)))


def weight_bytes(talker, predictor) -> dict:
    """Bytes of weights read per talker step and per CP frame."""
    tb = sum(m.nbytes for m in talker.stack.matrices()) + talker.codec_head.nbytes
    layers = sum(m.nbytes for m in predictor.stack.matrices())
    heads = sum(h.nbytes for h in predictor.heads)
    n = predictor.groups - 1                    # 1 two-row prefill + (G-2) steps = G-1 weight passes
    proj = (predictor.proj.nbytes * n) if predictor.proj is not None else 0
    return dict(talker_step=tb, cp_frame=layers * n + heads + proj, cp_layer_set=layers)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--types", default="Q8_0,Q4_0")
    ap.add_argument("--model", default=None, help="checkpoint (HF dir / GGUF) instead of random weights")
    ap.add_argument("--ctx", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--per-op", action="store_true", help="also time the per-op path (A/B, interleaved)")
    a = ap.parse_args()
    threads = setup_threads(a.threads)
    rng = np.random.default_rng(0)
    bw = measure_read_bandwidth(threads)
    out = dict(bench="lm", threads=threads, ctx=a.ctx, read_bandwidth_gbs=bw, official=OFFICIAL,
               target_ms=TARGET_MS, results={})
    if a.model:
        import edgetts
        tts = edgetts.load(a.model, threads=threads)
        runs = [(tts.talker.stack.layers[0].qkv.dtype, lambda: (tts.talker, tts.predictor, tts.cfg))]
    else:
        def build(q):
            def make():
                t0 = time.perf_counter()
                view = RandomView(q)
                cfg = random_config(view)
                tk, pr = Talker(view, cfg), Predictor(view, cfg)
                out["results"].setdefault(q, {})["build_s"] = time.perf_counter() - t0
                return tk, pr, cfg
            return make
        runs = [(q, build(q)) for q in a.types.split(",")]
    for q, make in runs:
        talker, predictor, cfg = make()
        r = out["results"].setdefault(q, {})
        if a.per_op:  # alternate fused / per-op rounds, keep each side's pooled medians
            fz = (talker.stack._fused, predictor.stack._fused, predictor._frame)
            sides = {"fused": [], "per_op": []}
            for rep in range(3):
                for side in sides:
                    on = side == "fused"
                    talker.stack._fused, predictor.stack._fused, predictor._frame = fz if on else (None,) * 3
                    sides[side].append(bench_type(talker, predictor, cfg, a.ctx, a.steps, a.frames, rng))
            talker.stack._fused, predictor.stack._fused, predictor._frame = fz

            def pool(runs):
                out = dict(runs[0])
                for k in ("talker_step_ms", "cp_frame_ms"):
                    out[k] = dict(min=min(x[k]["min"] for x in runs),
                                  median=float(np.median([x[k]["median"] for x in runs])),
                                  n=sum(x[k]["n"] for x in runs))
                return out

            r.update(pool(sides["fused"]))
            po = pool(sides["per_op"])
            r["per_op"] = dict(talker_step_ms=po["talker_step_ms"], cp_frame_ms=po["cp_frame_ms"],
                               lm_frame_ms=po["talker_step_ms"]["median"] + po["cp_frame_ms"]["median"])
        else:
            r.update(bench_type(talker, predictor, cfg, a.ctx, a.steps, a.frames, rng))
        r["fused"] = dict(talker=talker.stack.fused, cp_frame=predictor._frame is not None)
        wb = weight_bytes(talker, predictor)
        r["weight_bytes"] = wb
        r["floor_ms"] = dict(talker_step=1e3 * wb["talker_step"] / (bw * 1e9),
                             cp_frame=1e3 * wb["cp_frame"] / (bw * 1e9))
        r["floor_ms"]["sum"] = r["floor_ms"]["talker_step"] + r["floor_ms"]["cp_frame"]
        lm = r["talker_step_ms"]["median"] + r["cp_frame_ms"]["median"]
        r["lm_frame_ms"] = lm
        r["x_floor"] = lm / r["floor_ms"]["sum"]
        r["x_official_fp32"] = (OFFICIAL["float32"]["talker_step_ms"]["median"]
                                + OFFICIAL["float32"]["cp_frame_ms"]["median"]) / lm
        if q in TARGET_MS:
            r["target_ms"] = TARGET_MS[q]
            r["meets_target"] = lm <= TARGET_MS[q]
        del talker, predictor
        gc.collect()
    import os as _os
    out["load_avg"] = _os.getloadavg()
    out["info"] = run_info()
    json_out(out)


if __name__ == "__main__":
    main()
