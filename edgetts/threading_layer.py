"""Which numba threading layer edgetts runs on, chosen once at import (edgetts/__init__.py).

The LM and the codec launch numba parallel kernels from two Python threads at once (streaming,
the codec loading beside the LM). numba's "workqueue" layer aborts the process on concurrent
launches; OpenMP and TBB do not. numba's OpenMP layer links the system's libgomp.so.1, which a
minimal Linux install may lack (Debian / Raspberry Pi OS package `libgomp1`), and numba ships
no TBB for aarch64. So: OpenMP or TBB when one loads; otherwise workqueue, which is enough for
one thread of kernels (quantize, bench's products), and `require_threadsafe` turns the TTS's
need for more into a one-line error that names the fix, instead of numba's abort.
"""
from __future__ import annotations

import importlib

from .errors import EdgeTTSError

_LAYERS = (("omp", "numba.np.ufunc.omppool"), ("tbb", "numba.np.ufunc.tbbpool"))
missing: str | None = None  # why no thread-safe layer loaded (None: one did, or the user chose)


def loadable() -> list[str]:
    """The thread-safe layers whose libraries load here (importing numba's pool module loads
    them: libgomp.so.1 for omp, the tbb package for tbb)."""
    found = []
    for name, module in _LAYERS:
        try:
            importlib.import_module(module)
            found.append(name)
        except (ImportError, OSError):
            pass
    return found


def choose() -> None:
    """Point numba at a thread-safe layer, or at workqueue (noting why) when none loads."""
    global missing
    import numba

    if loadable():
        numba.config.THREADING_LAYER = "threadsafe"
        return
    numba.config.THREADING_LAYER = "workqueue"
    missing = ("numba has no thread-safe threading layer here: its OpenMP layer needs the system "
               "library libgomp.so.1 (install it: apt install libgomp1), or pip install tbb (x86)")


def require_threadsafe() -> None:
    """Raise EdgeTTSError when the layer cannot run kernels from two threads at once."""
    if missing is not None:
        raise EdgeTTSError(missing)
