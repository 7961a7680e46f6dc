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
    from edgetts.kernels.conv import blas_core
    core = blas_core()
    if core:   # OpenBLAS's kernel set: AVX2 (Haswell) kernels run the codec's sgemm at half the
        info["openblas_core"] = core   # AVX-512 (SkylakeX) ones' speed on an AVX-512 CPU
    if os.environ.get("OPENBLAS_CORETYPE"):
        info["OPENBLAS_CORETYPE"] = os.environ["OPENBLAS_CORETYPE"]
    try:
        info["loadavg"] = os.getloadavg()[0]
    except OSError:
        pass
    return info


# the measurement helpers live in the package (`edgetts bench` uses them too)
from edgetts.bench import (best_time, free_bandwidth_buffer, measure_read_bandwidth,  # noqa: E402,F401
                           measure_read_bandwidth_summin)


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
