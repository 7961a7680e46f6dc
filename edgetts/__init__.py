"""edgetts: Qwen3-TTS text-to-speech on CPU, numpy + numba, no PyTorch."""
__version__ = "0.1.0"

from .tts import TTS, Result, load  # noqa: E402

__all__ = ["load", "TTS", "Result", "__version__"]
