"""Shared benchmark helpers: thread setup, read-bandwidth measurement, JSON output.

    from _common import setup_threads, measure_read_bandwidth, json_out, best_time

Benchmarks print one JSON object on stdout (json_out) so runs can be compared by machine.
Numbers on a shared machine are noisy: every timing is the best of several repeats, and the
kernels are reported as a ratio to the read bandwidth measured in the same run.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

# make `import edgetts` work when run as `python bench/x.py` from a checkout
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

# Kernel benchmarks measure throughput, not thread wake-up latency: with libgomp's default
# (passive after a short spin) a worker thread that another process has preempted is woken only
# at the next scheduler tick, which on this shared 2-core machine adds 4-16 ms to a fork-join
# call. Spinning workers take that out. Must be set before numba starts its OpenMP pool; an
# explicit OMP_WAIT_POLICY in the environment wins. Recorded in run_info().
os.environ.setdefault("OMP_WAIT_POLICY", "active")

import numba  # noqa: E402
from numba import njit, prange  # noqa: E402


def setup_threads(threads: int | None = None) -> int:
    """numba (and, via env, BLAS) thread count; returns the count in use."""
    if threads is None:
        threads = numba.config.NUMBA_NUM_THREADS
    threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    return threads


def run_info() -> dict:
    """What the numbers depend on: CPU, threading layer, wait policy."""
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "cpus": os.cpu_count(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
            "threading_layer_config": numba.config.THREADING_LAYER}
    try:
        info["threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel function has run yet
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["loadavg"] = os.getloadavg()[0]
    except OSError:
        pass
    return info


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
def _sum_u64(a):
    # 8 independent lanes of xor so the loop is load-bound, not add-latency-bound
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
    return s0 ^ s1 ^ s2 ^ s3


@njit(cache=True, parallel=True, nogil=True)
def _par_read(a, part):
    nchunk = part.shape[0]
    cs = a.shape[0] // nchunk
    for c in prange(nchunk):
        part[c] = _sum_u64(a[c * cs:(c + 1) * cs])


_BW_BUF: np.ndarray | None = None


def measure_read_bandwidth(threads: int | None = None, gbytes: float = 1.0, repeat: int = 7) -> float:
    """GB/s of a parallel read (xor-reduce) over a >= `gbytes` GB array, best of `repeat`."""
    global _BW_BUF
    n = int(gbytes * 1e9) // 8
    if _BW_BUF is None or _BW_BUF.shape[0] < n:
        _BW_BUF = np.ones(n, np.uint64)  # written once so the pages are real
    a = _BW_BUF[:n]
    prev = numba.get_num_threads()
    if threads is not None:
        setup_threads(threads)
    part = np.zeros(64, np.uint64)
    try:
        t = best_time(lambda: _par_read(a, part), repeat=repeat)
    finally:
        numba.set_num_threads(prev)
    return a.nbytes / t / 1e9


def measure_read_bandwidth_summin(threads: int | None = None, gbytes: float = 1.0,
                                  chunk_mb: float = 4.0, rounds: int = 7) -> float:
    """GB/s of the same parallel read done chunk by chunk (chunks the size of a weight matrix),
    each chunk's fastest time over `rounds` in-order passes, summed: the bandwidth counterpart
    of a sum-of-minimum kernel timing (same time scale, same robustness to preemption)."""
    global _BW_BUF
    n = int(gbytes * 1e9) // 8
    if _BW_BUF is None or _BW_BUF.shape[0] < n:
        _BW_BUF = np.ones(n, np.uint64)
    cs = int(chunk_mb * 1e6) // 8
    chunks = [_BW_BUF[i:i + cs] for i in range(0, n - cs + 1, cs)]
    prev = numba.get_num_threads()
    if threads is not None:
        setup_threads(threads)
    part = np.zeros(threads or prev, np.uint64)
    best = [float("inf")] * len(chunks)
    try:
        _par_read(chunks[0], part)
        for _ in range(rounds):
            for i, c in enumerate(chunks):
                t0 = time.perf_counter()
                _par_read(c, part)
                dt = time.perf_counter() - t0
                if dt < best[i]:
                    best[i] = dt
    finally:
        numba.set_num_threads(prev)
    return sum(c.nbytes for c in chunks) / sum(best) / 1e9


def free_bandwidth_buffer() -> None:
    global _BW_BUF
    _BW_BUF = None


def json_out(d: dict) -> None:
    """Print d as JSON (numpy scalars converted), one object on stdout."""
    def conv(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(type(o))

    print(json.dumps(d, indent=1, default=conv))
    sys.stdout.flush()
