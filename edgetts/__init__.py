"""edgetts: Qwen3-TTS text-to-speech on CPU, numpy + numba, no PyTorch."""
import os as _os
from importlib import metadata as _metadata

# numba's OpenMP workers spin (active wait) after every parallel region when told to. On a 2-core
# machine that steals the core from the codec thread running beside the LM and from anything
# else. Measured with bench/lm.py (0.6B, Q4_0, LM frame = talker step + CP frame, median):
#   free cores:         active+GOMP_SPINCOUNT=200000 43-46 ms, passive 54-70 ms
#   2 busy processes:   active+spincount 189 ms, passive 76 ms; unbounded active: seconds
# Passive is the safe default while the codec shares the cores; the fix for its wake-up cost
# (~70 us x ~430 parallel regions per frame) is fewer regions per frame. Must be set before the
# OpenMP runtime loads (first parallel call); an explicit user setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The LM and the codec launch numba kernels from two Python threads at once (streaming): OpenMP
# or TBB, which allow that, when one loads (edgetts/threading_layer.py). An explicit
# NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in _os.environ:
    from . import threading_layer as _threading_layer

    _threading_layer.choose()

try:
    __version__ = _metadata.version("edgetts")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

# The API is imported on first use, so that `import edgetts.weights` (quantize/, tools) does not
# load the whole engine.
_API = {"load": "tts", "TTS": "tts", "Result": "tts", "batch": "batching", "BatchOptions": "batching",
        "Voice": "voice"}
__all__ = [*_API, "__version__"]


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'edgetts' has no attribute {name!r}")
