"""`edgetts bench [-m MODEL | --random] [--threads N] [--frames N] [--json]`: a one-screen report a
user on any board can run and paste.

    CPU, kernel ISA, threads, read bandwidth, LM ms per frame, codec s per audio s, streaming RTF,
    time to first audio, cold start, peak RSS

--random builds (once, cached) a full-size 0.6B checkpoint with random weights, quantized to
Q4_0, so it needs no download. The model runs in child processes: a first one fills numba's
cache (not reported); the measured one gives the cold start (its spawn to its first audio chunk,
numba cache warm), then `--runs` warm streaming runs of a forced `--frames` frames (best RTF /
time to first audio), one serial generate (LM ms per frame, codec seconds per audio second), and
its peak RSS.

The measurement helpers (read bandwidth, best-of timing) are shared with bench/ (bench/_common.py
imports them from here).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit, prange

from .errors import EdgeTTSError

TEXT = ("The quick brown fox jumps over the lazy dog, and then it runs back into the forest "
        "where the trees are tall and the air is cool and quiet.")


# ------------------------------------------------------------------------ measurement helpers

def best_time(fn, repeat: int = 5, warmup: int = 1) -> float:
    """Best wall time of fn() in seconds."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@njit(cache=True, fastmath=True, nogil=True)
def xor_reduce_u64(a):
    """XOR of every element of a uint64[n]: 4 independent lanes so the loop is load-bound, not
    latency-bound."""
    s0 = np.uint64(0)
    s1 = np.uint64(0)
    s2 = np.uint64(0)
    s3 = np.uint64(0)
    n = a.shape[0] // 4 * 4
    for i in range(0, n, 4):
        s0 ^= a[i]
        s1 ^= a[i + 1]
        s2 ^= a[i + 2]
        s3 ^= a[i + 3]
    for i in range(n, a.shape[0]):
        s0 ^= a[i]
    return s0 ^ s1 ^ s2 ^ s3


@njit(cache=True, parallel=True, nogil=True)
def par_xor_read(a, part):
    """part[c] = xor_reduce_u64 of chunk c of a (part.shape[0] equal chunks; a remainder past the
    last whole chunk is not read)."""
    nchunk = part.shape[0]
    cs = a.shape[0] // nchunk
    for c in prange(nchunk):
        part[c] = xor_reduce_u64(a[c * cs:(c + 1) * cs])


_BW_BUF: np.ndarray | None = None


def _bw_buffer(n: int) -> np.ndarray:
    global _BW_BUF
    if _BW_BUF is None or _BW_BUF.shape[0] < n:
        _BW_BUF = np.ones(n, np.uint64)  # written once so the pages are real
    return _BW_BUF[:n]


def measure_read_bandwidth(threads: int | None = None, gbytes: float = 1.0, repeat: int = 7) -> float:
    """GB/s of a parallel read (xor-reduce) over a `gbytes` GB array, best of `repeat`."""
    import numba

    a = _bw_buffer(int(gbytes * 1e9) // 8)
    prev = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    part = np.zeros(64, np.uint64)
    try:
        t = best_time(lambda: par_xor_read(a, part), repeat=repeat)
    finally:
        numba.set_num_threads(prev)
    return a.nbytes / t / 1e9


def measure_read_bandwidth_summin(threads: int | None = None, gbytes: float = 1.0,
                                  chunk_mb: float = 4.0, rounds: int = 7) -> float:
    """GB/s of the same parallel read done chunk by chunk (chunks the size of a weight matrix),
    each chunk's fastest time over `rounds` in-order passes, summed: the bandwidth counterpart
    of a sum-of-minimum kernel timing (same time scale, same robustness to preemption)."""
    import numba

    buf = _bw_buffer(int(gbytes * 1e9) // 8)
    cs = int(chunk_mb * 1e6) // 8
    chunks = [buf[i:i + cs] for i in range(0, buf.shape[0] - cs + 1, cs)]
    prev = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    part = np.zeros(threads or prev, np.uint64)
    best = [float("inf")] * len(chunks)
    try:
        par_xor_read(chunks[0], part)
        for _ in range(rounds):
            for i, c in enumerate(chunks):
                t0 = time.perf_counter()
                par_xor_read(c, part)
                best[i] = min(best[i], time.perf_counter() - t0)
    finally:
        numba.set_num_threads(prev)
    return sum(c.nbytes for c in chunks) / sum(best) / 1e9


def free_bandwidth_buffer() -> None:
    global _BW_BUF
    _BW_BUF = None


def cpu_name() -> str:
    """The CPU as the OS reports it: x86 'model name'; on ARM the implementer / part ids named
    (Raspberry Pi 4 = Cortex-A72, Pi 5 = Cortex-A76) and the board's model."""
    parts = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
             "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
             "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd49": "Neoverse-N2",
             "0xd4f": "Neoverse-V2"}
    name, part = None, None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k == "model name" and name is None:
                    name = v
                elif k == "CPU part" and part is None:
                    part = parts.get(v.lower(), f"part {v}")
    except OSError:
        pass
    board = None
    try:
        board = Path("/proc/device-tree/model").read_bytes().rstrip(b"\0").decode(errors="replace")
    except OSError:
        pass
    s = part or name or platform.processor() or platform.machine()
    return f"{s} ({board})" if board else s


# ------------------------------------------------------------------------------ the random model

def random_model(progress=sys.stderr) -> Path:
    """The full-size 0.6B random-weight checkpoint as a Q4_0 GGUF pair, built once into the
    edgetts cache (EDGETTS_CACHE, else ~/.cache/edgetts): ~2.4 GB written, then quantized."""
    import shutil

    from quantize.cli import quantize

    from .hub import cache_dir
    from .random_model import write_byte_tokenizer, write_checkpoint

    out = Path(cache_dir()) / "bench-random-0.6b-q4_0"
    if list(out.glob("*.gguf")):
        return out
    src = out.with_name(out.name + ".src")
    shutil.rmtree(src, ignore_errors=True)
    print(f"bench: writing a random 0.6B checkpoint (once) into {src}", file=progress)
    try:
        write_checkpoint(src, "0.6b", "custom_voice", "bf16", seed=0)
        write_byte_tokenizer(src)
        print(f"bench: quantizing it to Q4_0 into {out}", file=progress)
        quantize(str(src), "q4_0", str(out), progress=False, out=progress)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------------- child

def child(args) -> dict:
    t_spawn = float(args.spawn_time)
    import edgetts
    from edgetts.streaming import stream

    kw = dict(max_frames=args.frames, min_frames=args.frames, seed=1234, language="auto")
    t0 = time.time()
    tts = edgetts.load(args.model, threads=args.threads)
    out = {"load_s": time.time() - t0}
    s = stream(tts, TEXT, **kw)
    first = None
    for _chunk in s:
        if first is None:
            first = time.time()
    out["cold_start_s"] = first - t_spawn
    runs = []
    for _ in range(args.runs):
        s = stream(tts, TEXT, **kw)
        for _chunk in s:
            pass
        runs.append({"rtf": s.timings["rtf"], "ttfa_s": s.timings["ttfa_s"]})
    out["warm_runs"] = runs
    r = tts.generate(TEXT, **kw)
    st = tts.last_stats.timings() if tts.last_stats is not None else {}
    out["lm_ms_per_frame"] = st.get("lm_ms_per_frame")
    out["codec_s_per_audio_s"] = r.timings["codec_s"] / r.duration if r.duration else None
    out["audio_s_per_run"] = r.duration
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _run_child(model: str, threads: int | None, frames: int, runs: int) -> dict:
    cmd = [sys.executable, "-m", "edgetts.cli", "bench", "--child", "-m", str(model),
           "--frames", str(frames), "--runs", str(runs), "--spawn-time", repr(time.time())]
    if threads:
        cmd += ["--threads", str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    raise EdgeTTSError(f"bench: the measuring process failed: {err[-1] if err else f'exit {r.returncode}'}")


# ------------------------------------------------------------------------------------- report

def measure(model: str, threads: int | None, frames: int, runs: int, bw_gbytes: float) -> dict:
    import numba

    from .kernels.quant import KERNEL_ISA

    n = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)) if threads else numba.config.NUMBA_NUM_THREADS
    rep = {"cpu": cpu_name(), "machine": platform.machine(), "isa": KERNEL_ISA, "threads": n,
           "cores": os.cpu_count(), "model": str(model), "frames": frames}
    rep["read_bandwidth_gbs"] = measure_read_bandwidth(n, gbytes=bw_gbytes, repeat=5)
    free_bandwidth_buffer()
    _run_child(model, threads, 2, 0)  # fills numba's cache: the measured start is a warm-cache one
    c = _run_child(model, threads, frames, runs)
    rep.update(lm_ms_per_frame=c["lm_ms_per_frame"], codec_s_per_audio_s=c["codec_s_per_audio_s"],
               streaming_rtf=min(w["rtf"] for w in c["warm_runs"]),
               ttfa_s=min(w["ttfa_s"] for w in c["warm_runs"]), cold_start_s=c["cold_start_s"],
               load_s=c["load_s"], peak_rss_mb=c["peak_rss_mb"], audio_s_per_run=c["audio_s_per_run"])
    try:
        rep["load_avg"] = os.getloadavg()[0]
    except OSError:
        pass
    import edgetts
    rep["versions"] = {"edgetts": edgetts.__version__, "numpy": np.__version__, "numba": numba.__version__,
                       "python": platform.python_version(), "threading_layer": numba.threading_layer()}
    return rep


def render(rep: dict) -> str:
    f = rep.get
    rows = [("CPU", f"{f('cpu')}  [{f('machine')}, {f('cores')} cores]"),
            ("kernel ISA", f"{f('isa')}  ({f('threads')} threads, {f('versions')['threading_layer']})"),
            ("read bandwidth", f"{f('read_bandwidth_gbs'):.1f} GB/s"),
            ("LM", f"{f('lm_ms_per_frame'):.1f} ms per frame (80 ms of audio)"),
            ("codec", f"{f('codec_s_per_audio_s'):.3f} s per audio s"),
            ("streaming RTF", f"{f('streaming_rtf'):.2f}  (wall / audio, {f('frames')} frames; < 1 is real time)"),
            ("first audio", f"{1e3 * f('ttfa_s'):.0f} ms (warm)"),
            ("cold start", f"{f('cold_start_s'):.2f} s (process start to first audio, numba cache warm)"),
            ("peak RSS", f"{f('peak_rss_mb'):.0f} MB"),
            ("model", f"{f('model')}"),
            ("versions", ", ".join(f"{k} {v}" for k, v in f("versions").items() if k != "threading_layer")
             + (f"; load avg {f('load_avg'):.2f}" if f("load_avg") is not None else ""))]
    return "\n".join(f"{k + ':':16}{v}" for k, v in rows)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="measure this machine: LM, codec, streaming RTF, start, memory",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-m", "--model", help="model: directory, GGUF pair or hub id")
    g.add_argument("--random", action="store_true",
                   help="a full-size 0.6B Q4_0 model with random weights (built once, no download)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--frames", type=int, default=50, help="frames per run (80 ms of audio each; default 50)")
    p.add_argument("--runs", type=int, default=2, help="warm streaming runs (best is reported)")
    p.add_argument("--bandwidth-gb", type=float, default=0.5, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--spawn-time", help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    if args.child:
        print("BENCH_JSON " + json.dumps(child(args)), flush=True)
        return 0
    if args.frames < 1 or args.runs < 1:
        raise EdgeTTSError("bench: --frames and --runs must be at least 1")
    if args.random:
        model = str(random_model())
    elif args.model:
        model = args.model
    else:
        raise EdgeTTSError("bench: give a model (-m MODEL) or --random")
    rep = measure(model, args.threads, args.frames, args.runs, args.bandwidth_gb)
    print(json.dumps(rep, indent=1) if args.json else render(rep))
    return 0
