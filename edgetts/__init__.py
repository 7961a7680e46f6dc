"""edgetts: Qwen3-TTS text-to-speech on CPU, numpy + numba, no PyTorch."""
import os as _os

# numba's OpenMP workers spin (active wait) after every parallel region by default. On a 2-core
# machine that steals the core from OpenBLAS, from the codec thread running beside the LM, and
# from anything else: measured here, a loaded box ran the LM frame ~5x slower (0.46 s vs 0.087 s
# at Q4_0) and a Q8_0 prefill matmul 15x slower with spinning workers. Must be set before the
# OpenMP runtime loads (first parallel call); an explicit user setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from .tts import TTS, Result, load  # noqa: E402

__all__ = ["load", "TTS", "Result", "__version__"]
