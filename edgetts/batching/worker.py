"""What runs inside a batch worker (a local process or a Ray actor): one model, many items.

The worker only computes: it returns the audio to the driver, which writes the file and the
manifest record (one writer; no shared file system needed between Ray nodes and the driver).
"""
from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import EdgeTTSError
from .jobs import Item


@dataclass
class Outcome:
    """The result of one item on one worker."""
    id: str
    worker: str
    ok: bool
    audio: np.ndarray | None = None     # float32 mono at `sample_rate`
    sample_rate: int = 0
    frames: int = 0
    compute_s: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


class Synthesizer:
    """Loads the model once; `run(item)` never raises for a problem with the item itself."""

    def __init__(self, model: str, threads: int, normalize: bool = True, host: str | None = None):
        from ..tts import load

        self.tts = load(model, threads=threads)
        self.normalize = normalize
        self.name = f"{host or socket.gethostname()}:{os.getpid()}"
        self._voices: dict[str, object] = {}

    def _voice(self, path: str):
        if path not in self._voices:
            from ..voice import Voice   # lazy: only lines with a voice file need it
            try:
                self._voices[path] = Voice.load(path)
            except EdgeTTSError as e:
                raise EdgeTTSError(f"voice {path}: {e}") from None
            except Exception as e:  # noqa: BLE001 - any unreadable file is this line's problem
                raise EdgeTTSError(f"voice {path}: cannot load ({type(e).__name__}: {e})") from None
        return self._voices[path]

    def run(self, item: Item) -> Outcome:
        t0 = time.perf_counter()
        out = Outcome(id=item.id, worker=self.name, ok=False, sample_rate=self.tts.sample_rate)
        try:
            kw = {"language": item.language or "auto", "seed": item.seed}
            for key in ("speaker", "instruct"):
                if getattr(item, key) is not None:
                    kw[key] = getattr(item, key)
            if item.voice is not None:
                kw["voice"] = self._voice(item.voice)
            text = item.text
            if self.normalize:
                from ..text.normalize import normalize
                text = normalize(text, kw["language"])
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = self.tts.generate(text, **kw)
            out.warnings = sorted({str(w.message) for w in caught})
            if res.audio is None and res.frames:
                raise EdgeTTSError("this checkpoint has no speech tokenizer (codec): no audio")
            audio = res.audio if res.audio is not None else np.zeros(0, np.float32)  # 0 frames: empty file
            out.audio = np.ascontiguousarray(audio, dtype=np.float32)
            out.frames = res.frames
            out.ok = True
        except EdgeTTSError as e:
            out.error = str(e)
        except Exception as e:  # noqa: BLE001 - one item's failure must not stop the job
            out.error = f"{type(e).__name__}: {e}"
        out.compute_s = time.perf_counter() - t0
        return out
