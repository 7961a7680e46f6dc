"""Codec decoder speed: seconds of compute per second of audio, full-size random weights.

    python bench/codec.py [--threads 2] [--frames 125] [--stream-frames 25] [--chunks 1,2,4,8]
                          [--dtype F32|F16] [--keep-f16] [--precision auto|f32|int8|bf16|bf16x3]
                          [--compare f32,auto,bf16x3] [--snr-groups] [--model PATH]

--compare: the codec at each precision (models/codec_precision.py) timed in interleaved rounds
(one-shot, fed 4 frames, fed 1 frame; medians), their weight bytes, and the waveform SNR of
each against f32 on this codec and on the tiny fixtures; --snr-groups adds the SNR with each
layer group alone on each compared kernel, and how much this codec amplifies a 60 dB white-noise error injected
after one stage (what bounds any reduced precision). --model PATH: that checkpoint's codec
instead of the in-process random one (e.g. bench/make_random_model.py's output).

Builds the released decoder shape (spec/codec.md section 2, 114.3 M params) with random
weights in-process (F16 = the same weights stored as float16, widened at load), then times:
one-shot decode of --frames frames, streaming frame by frame and in chunks, seconds per stage,
and numpy sgemm GFLOP/s (1 BLAS thread) on the decoder's GEMM shapes and the resulting floor:
2 x GMAC / best rate = CPU seconds per audio second that fp32 GEMMs alone need.
The official PyTorch decoder figures are constants from
/work/shared/reference/results/bench_fp32.json / bench_bf16.json (same machine, 2 threads,
125 frames): 0.7842 s (fp32) and 0.3474 s (bf16) per audio second. Prints JSON.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

# The codec runs beside numba's OpenMP pool (the panel packing at load is a parallel region) with
# its own Python threads and OpenBLAS's: under _common's "active" default an OpenMP worker spins
# for good after that region and takes one of two cores from them (one-shot f32 0.59 against
# 0.33 s per audio second here). Measure what the product runs: edgetts' PASSIVE default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from _common import json_out, run_info  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_codec_random import checkpoint_from_tensors, random_codec_tensors  # noqa: E402

from edgetts.models.codec import Codec, CodecStream  # noqa: E402
from edgetts.models.codec_precision import AUTO_F32, AUTO_KIND, available  # noqa: E402

OFFICIAL = {"fp32_s_per_audio_s": 0.7842, "bf16_s_per_audio_s": 0.3474,
            "source": "shared/reference/results/bench_{fp32,bf16}.json decoder_s_per_audio_s "
                      "(qwen-tts 0.1.1, torch 2.13 cpu, 2 threads, 125 frames, min of 2)"}

# speech_tokenizer/config.json decoder_config of the released Qwen3-TTS-Tokenizer-12Hz
FULL = dict(codebook_size=2048, codebook_dim=512, num_quantizers=16, num_semantic_quantizers=1,
            latent_dim=1024, hidden_size=512, intermediate_size=1024, num_hidden_layers=8,
            num_attention_heads=16, num_key_value_heads=16, head_dim=64, sliding_window=72,
            upsample_rates=[8, 5, 4, 3], upsampling_ratios=[2, 2], decoder_dim=1536,
            rms_norm_eps=1e-5, rope_theta=10000.0)


def macs_per_frame(cfg: dict) -> dict:
    """Multiply-adds per codec frame by stage (GEMM work only)."""
    L, Hd, I = cfg["latent_dim"], cfg["hidden_size"], cfg["intermediate_size"]
    qw = cfg["num_attention_heads"] * cfg["head_dim"]
    kw = cfg["num_key_value_heads"] * cfg["head_dim"]
    m = {"rvq+pre_conv": 3 * cfg["codebook_dim"] * L,
         "transformer": 2 * L * Hd + cfg["num_hidden_layers"] * (Hd * (qw + 2 * kw) + qw * Hd + 3 * Hd * I
                                                                 + 2 * qw * cfg["sliding_window"])}
    r, up = 1, 0
    for ratio in cfg["upsampling_ratios"]:
        up += r * L * L * ratio + r * ratio * 2 * L * 4 * L
        r *= ratio
    m["upsample"] = up
    C = cfg["decoder_dim"]
    m["decoder.0"] = r * 7 * L * C
    for b, rate in enumerate(cfg["upsample_rates"]):
        co = C // 2
        m[f"block{b}"] = r * C * co * 2 * rate + r * rate * 3 * (7 * co * co + co * co)
        r *= rate
        C = co
    m["final"] = r * 7 * C
    return m


def gemm_gflops(shapes, threads: int) -> dict:
    from edgetts.kernels import conv as kc
    out = {}
    prev = kc.blas_threads(threads)
    try:
        for M, K, N in shapes:
            a = np.random.default_rng(0).standard_normal((M, K), dtype=np.float32)
            b = np.random.default_rng(1).standard_normal((K, N), dtype=np.float32)
            c = np.empty((M, N), np.float32)
            np.dot(a, b, out=c)
            best, cpu = 1e9, 1e9
            for _ in range(5):
                t, p = time.perf_counter(), time.thread_time()
                np.dot(a, b, out=c)
                best = min(best, time.perf_counter() - t)
                cpu = min(cpu, time.thread_time() - p)
            out[f"{M}x{K}x{N}"] = {"wall": round(2 * M * K * N / best / 1e9, 1),
                                   "per_thread_cpu": round(2 * M * K * N / max(cpu, 1e-9) / 1e9, 1)}
    finally:
        kc.blas_threads(prev)
    return out


class _Inline:
    """Executor stand-in that runs submitted work at once on the calling thread."""

    def submit(self, fn, *args):
        fn(*args)

        class Done:
            def result(self):
                return None
        return Done()


def parallel_fraction(decoder, codes, chunk: int, threads: int = 2) -> dict:
    """CPU time (1 core) of a stream in pushes of `chunk` frames, the share of it inside the
    codec's split sections, and the Amdahl wall time on `threads` free cores. Does not need an
    idle machine (thread CPU time), unlike the wall figures."""
    c = Codec(decoder, threads=threads)
    c.rows.pool = _Inline()
    inside = [0.0]
    par = c.rows.par

    def timed_par(fn, n):
        t = time.thread_time()
        par(fn, n)
        inside[0] += time.thread_time() - t
    c.rows.par = timed_par
    st = c.stream()
    st.push(codes[:chunk])
    st.reset()
    inside[0] = 0.0
    t = time.thread_time()
    for i in range(0, len(codes), chunk):
        st.push(codes[i:i + chunk])
    tot = time.thread_time() - t
    audio = len(codes) * c.samples_per_frame / c.sample_rate
    p = inside[0] / tot
    return {"cpu_s_per_audio_s": round(tot / audio, 4), "parallel_fraction": round(p, 3),
            f"amdahl_wall_s_per_audio_s_{threads}_cores": round(tot / audio * ((1 - p) + p / threads), 4)}


def timed(fn, repeat):
    """(best wall seconds, process CPU seconds of that run). CPU time is the figure that
    survives a shared machine: wall ~= CPU / threads when the cores are free."""
    best, cpu = 1e9, 0.0
    for _ in range(repeat):
        t, p = time.perf_counter(), time.process_time()
        fn()
        w = time.perf_counter() - t
        if w < best:
            best, cpu = w, time.process_time() - p
    return best, cpu


def snr_db(ref, y) -> float:
    err = np.sum((np.asarray(y, np.float64) - ref) ** 2)
    return round(float(10 * np.log10(np.sum(np.asarray(ref, np.float64) ** 2) / err)), 2) if err > 0 else None  # None: identical


def compare_precisions(ck, precisions, codes, frames, stream_frames, threads, rounds, groups) -> dict:
    """Interleaved A/B(/C) rounds of the same work on the codec at each precision (medians of
    wall and process-CPU seconds per audio second), weight bytes, SNR against f32."""
    codecs = {p: Codec.load(ck, threads=threads, precision=p) for p in precisions}
    frame_s = next(iter(codecs.values())).samples_per_frame / next(iter(codecs.values())).sample_rate
    for c in codecs.values():
        c.decode(codes[:4])  # JIT warm-up
    works = {"oneshot": (frames, frames), "chunk4": (stream_frames, 4), "chunk1": (stream_frames, 1)}
    times = {p: {w: [] for w in works} for p in codecs}
    for _ in range(rounds):
        for w, (n, ch) in works.items():
            for p, c in codecs.items():
                t, cpu = time.perf_counter(), time.process_time()
                st = c.stream()
                for i in range(0, n, ch):
                    st.push(codes[i:i + ch])
                times[p][w].append((time.perf_counter() - t, time.process_time() - cpu))
    out = {}
    ref = codecs["f32"].decode(codes[:frames]) if "f32" in codecs else \
        Codec.load(ck, threads=threads, precision="f32").decode(codes[:frames])
    for p, c in codecs.items():
        r = {"weight_mb": round(c.decoder.weight_bytes / 1e6, 1),
             "snr_db_vs_f32": snr_db(ref, c.decode(codes[:frames]))}
        for w, (n, ch) in works.items():
            wall = float(np.median([a for a, _ in times[p][w]]))
            cpu = float(np.median([b for _, b in times[p][w]]))
            r[w] = {"s_per_audio_s": round(wall / (n * frame_s), 4), "cpu_s_per_audio_s": round(cpu / (n * frame_s), 4)}
        out[p] = r
    if groups:
        for k in precisions:
            if k not in ("f32", "auto"):
                out[f"{k}_one_group_snr_db"] = {
                    g: snr_db(ref, Codec.load(ck, threads=threads, precision={g: k}).decode(codes[:frames]))
                    for g in _groups(codecs[precisions[0]].decoder)}
        out["noise_60db_after_stage_snr_db"] = noise_amplification(codecs.get("f32") or Codec.load(
            ck, threads=threads, precision="f32"), codes[:frames], ref)
    return out


def _groups(dec) -> list:
    g = ["pre_conv", "transformer", "decoder.0", "final"]
    g += [f"upsample{u}.{x}" for u in range(len(dec.upsample)) for x in ("tconv", "pwconv")]
    g += [f"block{b}.{x}" for b in range(len(dec.blocks)) for x in ("tconv", "conv1", "conv2")]
    return g


def noise_amplification(codec, codes, ref, rel=1e-3) -> dict:
    """Output SNR when white noise at 20log10(1/rel) dB SNR is added after one stage of the f32
    codec: the floor any reduced-precision product (int8 ~38 dB, bf16 ~52 dB per product) hits."""
    rng = np.random.default_rng(5)
    out = {"injected_db": round(-20 * np.log10(rel), 1)}
    for stage in ("_rvq", "_transformer", "_upsample", "_block"):
        orig = getattr(CodecStream, stage)

        def noisy(self, *a, orig=orig):
            y = orig(self, *a)
            return y + (rel * np.sqrt(np.mean(y ** 2)) * rng.standard_normal(y.shape)).astype(np.float32)
        setattr(CodecStream, stage, noisy)
        try:
            out[stage.strip("_")] = snr_db(ref, codec.decode(codes))
        finally:
            setattr(CodecStream, stage, orig)
    return out


def fixture_snr(precisions, threads) -> dict:
    import edgetts.weights as W
    fx = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
    out = {}
    for d in sorted(fx.glob("tiny*")):
        ck = W.open(d)
        f32 = Codec.load(ck, threads=threads, precision="f32")
        codes = np.random.default_rng(0).integers(0, f32.codebook_size, (20, f32.num_quantizers))
        ref = f32.decode(codes)
        out[d.name] = {p: snr_db(ref, Codec.load(ck, threads=threads, precision=p).decode(codes))
                       for p in precisions if p != "f32"}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=125)
    ap.add_argument("--stream-frames", type=int, default=32)
    ap.add_argument("--chunks", default="1,2,4,8")
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16"])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--keep-f16", action="store_true", help="with --dtype F16: keep matrices half precision")
    ap.add_argument("--precision", default="auto", help="codec precision of the main figures")
    ap.add_argument("--compare", default="", help="comma list of precisions to time interleaved (f32 first)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--snr-groups", action="store_true")
    ap.add_argument("--model", help="a checkpoint whose codec to measure instead of random weights")
    ap.add_argument("--compare-only", action="store_true", help="skip the f32-era sections below --compare")
    args = ap.parse_args()

    res = {"bench": "codec_decoder", "config": "released decoder shape, random weights",
           "threads": args.threads, "dtype_stored": args.dtype, "official": OFFICIAL, "run": run_info()}
    t = time.perf_counter()
    if args.model:
        import edgetts.weights as W
        ck = W.open(args.model)
        res["config"] = f"codec of {args.model}"
    else:
        tensors = random_codec_tensors(FULL, seed=0, dtype=np.float16 if args.dtype == "F16" else np.float32)
        ck = checkpoint_from_tensors(tensors, FULL)
        del tensors
    codec = Codec.load(ck, threads=args.threads, keep_f16=args.keep_f16, precision=args.precision)
    res["keep_f16"] = args.keep_f16
    res["precision"] = args.precision
    res["auto_plan"] = {"kind": AUTO_KIND, "float32_groups": list(AUTO_F32),
                        "kind_on_this_cpu": available(AUTO_KIND)}
    res["load_s"] = round(time.perf_counter() - t, 2)
    spf, sr = codec.samples_per_frame, codec.sample_rate
    frame_s = spf / sr
    mpf = macs_per_frame(FULL)
    res["gmac_per_audio_s"] = round(sum(mpf.values()) / frame_s / 1e9, 2)

    rng = np.random.default_rng(0)
    codes = rng.integers(0, codec.codebook_size, (max(args.frames, args.stream_frames), codec.num_quantizers))
    codec.decode(codes[:4])  # JIT warm-up

    if args.compare:
        precs = args.compare.split(",")
        res["compare"] = compare_precisions(ck, precs, codes, args.frames, args.stream_frames, args.threads,
                                            args.rounds, args.snr_groups)
        res["compare"]["fixtures_snr_db"] = fixture_snr(precs, args.threads)
        res["compare"]["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
        if args.compare_only:
            json_out(res)
            return

    # one-shot (decode = a fresh stream fed in chunks of Codec.chunk_frames)
    T = args.frames
    best, cpu = timed(lambda: codec.decode(codes[:T]), args.repeat)
    res["oneshot"] = {"frames": T, "s": round(best, 3), "s_per_audio_s": round(best / (T * frame_s), 4),
                      "cpu_s_per_audio_s": round(cpu / (T * frame_s), 4), "chunk_frames": codec.chunk_frames}

    # streamed
    res["stream"] = {}
    n = args.stream_frames
    for ch in [int(c) for c in args.chunks.split(",")]:
        def run(ch=ch):
            st = codec.stream()
            for i in range(0, n, ch):
                st.push(codes[i:i + ch])
        best, cpu = timed(run, args.repeat)
        res["stream"][f"chunk{ch}"] = {"frames": n, "s": round(best, 3),
                                       "s_per_audio_s": round(best / (n * frame_s), 4),
                                       "cpu_s_per_audio_s": round(cpu / (n * frame_s), 4),
                                       "ms_per_frame": round(1e3 * best / n, 1)}

    # per stage (chunks of 4 frames): wall time, and thread CPU time on a 1-thread codec
    audio = n * frame_s
    for label, c, clock in (("stages_chunk4_wall", codec, None),
                            ("stages_chunk4_cpu_1thread", Codec(codec.decoder, threads=1), time.thread_time)):
        import edgetts.models.codec as cm
        saved = cm.time
        if clock is not None:
            import types
            cm.time = types.SimpleNamespace(perf_counter=clock)
        try:
            st = c.stream()
            st.profile = {}
            for i in range(0, n, 4):
                st.push(codes[i:i + 4])
        finally:
            cm.time = saved
        res[label] = {k: {"s_per_audio_s": round(v / audio, 4),
                          "gflops": round(2 * mpf.get(k, 0) * n / v / 1e9, 1) if mpf.get(k) else None}
                      for k, v in st.profile.items()}
        res[label]["total_s_per_audio_s"] = round(sum(st.profile.values()) / audio, 4)

    # parallel fraction -> projected wall on free cores (robust to a loaded machine)
    res["amdahl"] = {f"chunk{ch}": parallel_fraction(codec.decoder, codes[:32], ch, max(2, args.threads))
                     for ch in (1, 4, 8, 16)}

    # the bound: numpy sgemm on the decoder's GEMM shapes at 4 frames per call
    # (block1 conv1 im2col, block0 transposed conv, block2 conv1, block3 conv1, pwconv1)
    res["sgemm_gflops"] = gemm_gflops([(640, 7 * 384, 384), (32, 1536, 16 * 768), (2560, 7 * 192, 192),
                                       (7680, 7 * 96, 96), (16, 1024, 4096), (4000, 2688, 384)], 1)
    best_rate = max(v["per_thread_cpu"] for v in res["sgemm_gflops"].values())
    res["gemm_floor_cpu_s_per_audio_s"] = round(2 * res["gmac_per_audio_s"] / best_rate, 3)
    res["target_s_per_audio_s"] = 0.4
    res["note"] = ("wall figures hold only on an otherwise idle machine (see run.loadavg); "
                   "cpu_s_per_audio_s is process CPU time: on free cores wall ~= cpu / threads")
    json_out(res)


if __name__ == "__main__":
    main()
