"""Fuzz targets: bytes -> a load through the real readers; the only allowed failure is EdgeTTSError.

    target = TARGETS["gguf"](workdir)     # a callable taking the input bytes
    target(data)                          # returns "load" or "error"; anything else raises

gguf         bytes as a GGUF file: edgetts.weights.read_gguf, then what the loaders read from it
             (talker config and text tokenizer of a qwen3-tts file, codec config of a
             qwen3-tts-tokenizer file) and every small tensor dequantized
safetensors  bytes as a safetensors file: read_safetensors, small tensors dequantized, and the
             talker config from its shapes (with the tiny fixture's config.json)
config       first byte picks config.json / generation_config.json / speech_tokenizer/config.json,
             the rest is that file: read as `weights.open` reads it, then the talker, generation
             and codec configs of the tiny fixture's weights with it
model        bytes as the talker GGUF next to a valid codec GGUF: the whole `edgetts.load` (models
             built, codec loaded) -- slow, for fewer runs

Imports of edgetts happen inside `make()` so a coverage-guided fuzzer can instrument them.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny"
SMALL = 1 << 16   # tensors up to this many elements are dequantized by the reader targets


def _dequantize_small(w) -> None:
    for t in w.tensors.values():
        if t.data.size <= SMALL:
            t.numpy()


def make(target: str, workdir: Path, codec_gguf: Path | None = None):
    from edgetts import weights as W
    from edgetts.errors import EdgeTTSError
    from edgetts.gguf import constants as K
    from edgetts.models import config as C
    from edgetts.text.tokenizer import TextTokenizer

    workdir.mkdir(parents=True, exist_ok=True)

    def guarded(fn):
        def run(data: bytes) -> str:
            try:
                fn(data)
            except EdgeTTSError:
                return "error"
            return "load"
        return run

    if target == "gguf":
        path = workdir / "fuzz.gguf"

        def gguf(data: bytes) -> None:
            path.write_bytes(data)
            w = W.read_gguf(path)
            if w.architecture == K.ARCH_MAIN:
                ck = W.Checkpoint("gguf", workdir, main=w)
                C.from_checkpoint(ck)
                TextTokenizer.from_checkpoint(ck)
            elif w.architecture == K.ARCH_CODEC:
                C.CodecConfig.from_checkpoint(W.Checkpoint("gguf", workdir, codec=w))
            _dequantize_small(w)
        return guarded(gguf)

    if target == "safetensors":
        path = workdir / "fuzz.safetensors"
        cfg = W._read_json(TINY / "config.json")
        gen = W._read_json(TINY / "generation_config.json")

        def safetensors(data: bytes) -> None:
            path.write_bytes(data)
            w = W.read_safetensors(path)
            _dequantize_small(w)
            C.from_checkpoint(W.Checkpoint("hf", workdir, main=w, config=cfg, generation_config=gen))
        return guarded(safetensors)

    if target == "config":
        base = W.open(TINY)
        files = [("config.json", "config"), ("generation_config.json", "generation_config"),
                 ("speech_tokenizer/config.json", "codec_config")]
        (workdir / "speech_tokenizer").mkdir(exist_ok=True)

        def config(data: bytes) -> None:
            if not data:
                return
            name, attr = files[data[0] % len(files)]
            path = workdir / name
            path.write_bytes(data[1:])
            ck = dataclasses.replace(base, root=workdir, **{attr: W._read_json(path)})  # as open() reads it
            C.from_checkpoint(ck)
            C.CodecConfig.from_checkpoint(ck)
        return guarded(config)

    if target == "model":
        from edgetts.tts import TTS

        if codec_gguf is None:
            raise ValueError("the model target needs a codec GGUF")
        shutil.copy(codec_gguf, workdir / "codec.gguf")
        path = workdir / "talker.gguf"

        def model(data: bytes) -> None:
            path.write_bytes(data)
            tts = TTS(W.open(path))
            tts.codec                  # the codec loads on a thread; its errors surface here
        return guarded(model)

    raise ValueError(f"unknown target {target!r}")


TARGETS = ("gguf", "safetensors", "config", "model")
