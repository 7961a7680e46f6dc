"""A stand-in for edgetts.TTS with the same surface (frames / decode / codec_stream), no model.

Codes are a deterministic function of the text; audio is a deterministic function of the codes,
so streamed output can be compared with one-shot `decode`.
"""
from __future__ import annotations

import time
import zlib

import numpy as np


class FakeCodecStream:
    def __init__(self, tts):
        self.tts = tts
        self.frames = 0

    def push(self, codes):
        codes = np.asarray(codes)
        assert codes.ndim == 2 and codes.shape[1] == self.tts.groups
        self.tts.pushes.append(codes.shape[0])
        if self.tts.codec_delay:
            time.sleep(self.tts.codec_delay * codes.shape[0])
        out = self.tts.decode(codes, start=self.frames)
        self.frames += codes.shape[0]
        return out


class FakeTTS:
    model_type = "custom_voice"
    sample_rate = 24000
    spf = 1920
    speakers = ["ryan", "vivian"]
    languages = ["auto", "english", "chinese"]

    def __init__(self, groups=4, frame_delay=0.0, codec_delay=0.0, fail_after=None):
        self.groups = groups
        self.frame_delay = frame_delay
        self.codec_delay = codec_delay
        self.fail_after = fail_after
        self.calls = []      # (text, kw) per frames() call
        self.pushes = []     # frames per codec push
        self.closed = 0      # frames() generators closed

    def n_frames(self, text, kw):
        if kw.get("max_frames") is not None:
            return int(kw["max_frames"])
        return 2 + len(text) // 4

    def frames(self, text, **kw):
        self.calls.append((text, kw))
        n = self.n_frames(text, kw)
        seed = zlib.crc32(text.encode()) + int(kw.get("seed") or 0)
        rng = np.random.default_rng(seed)
        try:
            for t in range(n):
                if self.fail_after is not None and t >= self.fail_after:
                    raise RuntimeError("model exploded")
                if self.frame_delay:
                    time.sleep(self.frame_delay)
                yield rng.integers(0, 1024, self.groups).astype(np.int64)
        finally:
            self.closed += 1

    def decode(self, codes, start=0):
        codes = np.asarray(codes)
        t = np.arange(self.spf, dtype=np.float32) / self.spf
        out = [0.5 * np.sin(2 * np.pi * (1 + c[0] % 7) * t + c[1] % 5 + 0.01 * (start + i)).astype(np.float32)
               for i, c in enumerate(codes)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def codec_stream(self):
        return FakeCodecStream(self)

    def generate(self, text, **kw):
        codes = np.stack(list(self.frames(text, **kw)))
        return codes, self.decode(codes)
