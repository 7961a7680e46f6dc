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
The first frame is decoded alone, so the first audio arrives after prefill + 1 frame + a one-frame
codec push; the LM waits for that push (it has both cores) before its second frame.

Long text is normalized (numbers, currency, ...) and cut into sentence chunks; each chunk is
synthesized with the same settings (speaker, language, seed, ...) and a fresh codec stream, and
`join_silence` seconds of silence separate chunks. Closing the iterator early (break, Ctrl-C)
stops the producer after its current frame; so does `cancel()` from any thread (a server whose
client went away), after which the iterator ends. An exception in the producer is re-raised here.

The stream holds the model (`tts.lock`, edgetts.busy) from its first chunk until it is exhausted
or closed: other threads' generations wait; the LM thread works under the stream's hold.
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time

import numpy as np

from .errors import EdgeTTSError
from .text.chunk import chunk_text
from .text.normalize import normalize as normalize_text

JOIN_SILENCE = 0.12   # seconds between sentence chunks
MAX_CHUNK_LEN = 250   # weighted characters per chunk (see text.chunk.text_len)
# A codec push costs a fixed part (it reads every codec weight, ~360 MB of float32) plus a part
# per frame, so on two cores bigger pushes leave more to the LM. 0.6B Q4_0, 2 threads, 125
# frames, alternating in one process: min 4 / max 8 RTF 1.02-1.05, 6 / 12 0.95-0.98, 8 / 16
# 0.93-0.95; time to first audio unchanged (the first push is one frame, then 1, 2, 3 ... up to
# MIN_BATCH). The price: chunks of up to 16 frames (1.28 s) once audio runs ahead.
MAX_BATCH = 16        # frames per codec push, at most (the codec's own step: Codec.chunk_frames)
MIN_BATCH = 8         # frames a push waits for once audio is flowing (ramped up to)

_CHUNK, _END, _ERROR = "chunk", "end", "error"


class AudioStream:
    """Iterator of float32 audio chunks; `timings` is complete once it is exhausted."""

    def __init__(self, tts, text: str, *, normalize: bool = True, max_chunk_len: int = MAX_CHUNK_LEN,
                 join_silence: float = JOIN_SILENCE, max_batch: int = MAX_BATCH,
                 min_batch: int = MIN_BATCH, **kw):
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
        self.min_batch = max(1, min(int(min_batch), self.max_batch))
        self.codes: list[np.ndarray] = []  # every frame's codes, in order (per chunk: see chunk_frames)
        self.chunk_frames: list[int] = []
        self.timings: dict = {}
        self._stop = threading.Event()
        self._first_out = threading.Event()  # the first audio has been decoded
        self._gen = self._run()

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def cancel(self) -> None:
        """Stop after the frame in progress (callable from any thread); the iterator then ends."""
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ------------------------------------------------------------------------------------------
    def _lock(self, how: str):
        lock = getattr(self.tts, "lock", None)   # edgetts.busy.ModelLock of a TTS
        if lock is None:
            return contextlib.nullcontext()
        return lock.hold("streaming") if how == "hold" else lock.lent()

    def _produce(self, q: queue.Queue, stop: threading.Event) -> None:
        try:
            with self._lock("lent"):
                self._produce_chunks(q, stop)
        except BaseException as e:  # re-raised in the consumer
            q.put((_ERROR, e))

    def _produce_chunks(self, q: queue.Queue, stop: threading.Event) -> None:
        for i, text in enumerate(self.chunks):
            if stop.is_set():
                break
            q.put((_CHUNK, i))
            frames = self.tts.frames(text, **self.kw)
            try:
                for codes in frames:
                    if stop.is_set():
                        break
                    q.put(codes)
                    # The first audio waits only for the first frame's codec push: give that
                    # push the cores (the LM resumes as soon as it is out) instead of computing
                    # frame 2 beside it.
                    while not self._first_out.wait(0.05) and not stop.is_set():
                        pass
            finally:
                frames.close()
        q.put((_END, None))

    @staticmethod
    def _take(q: queue.Queue, want: int, most: int) -> list:
        """Block until `want` frames are in hand (a chunk marker, the end or an error ends the
        wait), then add whatever else is ready, up to `most` frames."""
        items, frames = [], 0
        while frames < most:
            try:
                item = q.get() if frames < want else q.get_nowait()
            except queue.Empty:
                break
            items.append(item)
            if isinstance(item, tuple):
                want = 0
            else:
                frames += 1
        return items

    def _run(self):
        with self._lock("hold"):
            yield from self._stream()

    def _stream(self):
        t0 = time.perf_counter()
        q: queue.Queue = queue.Queue()
        stop = self._stop
        producer = threading.Thread(target=self._produce, args=(q, stop), daemon=True,
                                    name="edgetts-lm")
        producer.start()
        codec = None
        pending: list[np.ndarray] = []
        ttfa = None
        speech = silence = pushes = 0

        def flush() -> np.ndarray:  # decode the pending frames in one codec push
            nonlocal speech, pushes, ttfa
            audio = codec.push(np.stack(pending))
            pending.clear()
            pushes += 1
            speech += audio.size
            if ttfa is None:
                ttfa = time.perf_counter() - t0
                self._first_out.set()
            return audio

        try:
            done = False
            while not done:
                # The first audio is one frame, as soon as it exists. After that the batch grows
                # (1, 1, 2, 3, 4 ... frames): a one-frame push costs the codec nearly as much as
                # a four-frame one, and on two cores a codec busy with tiny pushes slows the LM.
                if ttfa is None:
                    want = most = 1
                else:  # every frame so far has been decoded (pending is empty here)
                    want, most = min(self.min_batch, max(1, len(self.codes) // 2)), self.max_batch
                items = self._take(q, want, most)
                for item in items:
                    if isinstance(item, tuple):
                        kind, value = item
                        if kind == _ERROR:
                            raise value
                        if pending:                  # finish the previous chunk first
                            yield flush()
                        if kind == _END:
                            done = True
                            break
                        if value > 0 and self.join_samples:
                            silence += self.join_samples
                            yield np.zeros(self.join_samples, np.float32)
                        ref = self.kw.get("ref_codes")     # Base ICL: warm with the reference
                        codec = self.tts.codec_stream() if ref is None else self.tts.codec_stream(ref)
                        self.chunk_frames.append(0)
                    else:
                        codes = np.asarray(item)
                        pending.append(codes)
                        self.codes.append(codes)
                        self.chunk_frames[-1] += 1
                if pending:
                    yield flush()
        finally:
            stop.set()
            self._first_out.set()
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
