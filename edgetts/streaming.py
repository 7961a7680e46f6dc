"""Streaming synthesis: audio chunks while the model is still talking.

    s = stream(tts, "Long text. Many sentences.", speaker="ryan")
    for chunk in s:          # float32 mono at tts.sample_rate
        player.write(chunk)
    s.timings                # {"ttfa_s", "wall_s", "audio_s", "rtf", "frames", ...}

Two threads overlap on two cores: a producer thread runs the language model (`tts.frames`, one
frame of 16 codes per 80 ms of audio) and puts codes on a queue; the caller's thread takes
whatever frames are ready (at most `max_batch`), decodes them in one `codec_stream.push`
(batched frames make the codec's matrix products efficient) and yields the audio. While the
codec decodes frame t the model already computes frame t+1 (the numba kernels release the GIL).
The first frame is decoded alone, so the first audio arrives after prefill + 1 frame.

Long text is normalized (numbers, currency, ...) and cut into sentence chunks; each chunk is
synthesized with the same settings (speaker, language, seed, ...) and a fresh codec stream, and
`join_silence` seconds of silence separate chunks. Closing the iterator early (break, Ctrl-C)
stops the producer after its current frame. An exception in the producer is re-raised here.
"""
from __future__ import annotations

import queue
import threading
import time

import numpy as np

from .errors import EdgeTTSError
from .text.chunk import chunk_text
from .text.normalize import normalize as normalize_text

JOIN_SILENCE = 0.12   # seconds between sentence chunks
MAX_CHUNK_LEN = 250   # weighted characters per chunk (see text.chunk.text_len)
MAX_BATCH = 8         # frames per codec push

_CHUNK, _END, _ERROR = "chunk", "end", "error"


class AudioStream:
    """Iterator of float32 audio chunks; `timings` is complete once it is exhausted."""

    def __init__(self, tts, text: str, *, normalize: bool = True, max_chunk_len: int = MAX_CHUNK_LEN,
                 join_silence: float = JOIN_SILENCE, max_batch: int = MAX_BATCH, **kw):
        self.tts = tts
        language = kw.get("language") or "auto"
        if normalize:
            text = normalize_text(text, language)
        self.chunks = chunk_text(text, max_chunk_len)
        if not self.chunks:
            raise EdgeTTSError("no text to speak")
        self.kw = kw
        self.join_samples = int(round(join_silence * tts.sample_rate))
        self.max_batch = max(1, int(max_batch))
        self.codes: list[np.ndarray] = []  # every frame's codes, in order (per chunk: see chunk_frames)
        self.chunk_frames: list[int] = []
        self.timings: dict = {}
        self._gen = self._run()

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ------------------------------------------------------------------------------------------
    def _produce(self, q: queue.Queue, stop: threading.Event) -> None:
        try:
            for i, text in enumerate(self.chunks):
                q.put((_CHUNK, i))
                frames = self.tts.frames(text, **self.kw)
                try:
                    for codes in frames:
                        q.put(codes)
                        if stop.is_set():
                            return
                finally:
                    frames.close()
            q.put((_END, None))
        except BaseException as e:  # re-raised in the consumer
            q.put((_ERROR, e))

    def _run(self):
        t0 = time.perf_counter()
        q: queue.Queue = queue.Queue()
        stop = threading.Event()
        producer = threading.Thread(target=self._produce, args=(q, stop), daemon=True,
                                    name="edgetts-lm")
        producer.start()
        codec = None
        pending: list[np.ndarray] = []
        ttfa = None
        speech = silence = pushes = 0
        try:
            done = False
            while not done:
                # Wait for at least one item, then take whatever else is ready, up to max_batch
                # frames; until the first audio is out, one frame (first audio comes soonest).
                limit = self.max_batch if ttfa is not None else 1
                items = [q.get()]
                while sum(not isinstance(i, tuple) for i in items) < limit:
                    try:
                        items.append(q.get_nowait())
                    except queue.Empty:
                        break
                for item in items:
                    if isinstance(item, tuple):
                        kind, value = item
                        if kind == _ERROR:
                            raise value
                        if pending:                  # finish the previous chunk first
                            audio = codec.push(np.stack(pending))
                            pending.clear()
                            pushes += 1
                            speech += audio.size
                            ttfa = ttfa if ttfa is not None else time.perf_counter() - t0
                            yield audio
                        if kind == _END:
                            done = True
                            break
                        if value > 0 and self.join_samples:
                            silence += self.join_samples
                            yield np.zeros(self.join_samples, np.float32)
                        codec = self.tts.codec_stream()
                        self.chunk_frames.append(0)
                    else:
                        codes = np.asarray(item)
                        pending.append(codes)
                        self.codes.append(codes)
                        self.chunk_frames[-1] += 1
                if pending:
                    audio = codec.push(np.stack(pending))
                    pending.clear()
                    pushes += 1
                    speech += audio.size
                    ttfa = ttfa if ttfa is not None else time.perf_counter() - t0
                    yield audio
        finally:
            stop.set()
            producer.join()  # returns after the frame in progress; then the model is free again
            wall = time.perf_counter() - t0
            sr = self.tts.sample_rate
            self.timings = {
                "ttfa_s": ttfa,
                "wall_s": wall,
                "audio_s": (speech + silence) / sr,
                "speech_s": speech / sr,
                "rtf": wall / (speech / sr) if speech else None,
                "frames": len(self.codes),
                "chunks": len(self.chunk_frames),
                "codec_pushes": pushes,
            }


def stream(tts, text: str, **kw) -> AudioStream:
    """Audio chunks of `text` as they are synthesized; see AudioStream for the options."""
    return AudioStream(tts, text, **kw)
