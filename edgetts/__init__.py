"""edgetts: Qwen3-TTS text-to-speech on CPU, numpy + numba, no PyTorch."""
__version__ = "0.1.0"
