"""One model, one generation at a time: the lock a TTS holds while it generates or streams.

A TTS has per-model state that a generation mutates (the KV cache, the kernels' scratch rows,
`last_stats`). Calls from several threads are serialized: the second caller waits until the first
generation (or the whole life of a stream) is over, so states never interleave.

One thread cannot wait for itself: a thread that already holds the model (inside a stream loop,
or between two `next()` calls of a `frames()` generator) and starts another generation gets an
EdgeTTSError at once, naming what is in progress, instead of a deadlock. Finish or close the
first one, or use a second TTS.

A holder may lend the model to worker threads that do its work (the stream's LM thread):
`with lock.lent():` in the worker; those calls pass through without waiting.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

from .errors import EdgeTTSError


class ModelLock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None     # thread ident of the holder
        self._what = ""                    # what the holder is doing (for the error)
        self._helpers: set[int] = set()    # worker threads working for the holder

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @contextmanager
    def hold(self, what: str):
        """Hold the model for this block; waits while another thread holds it."""
        me = threading.get_ident()
        if me in self._helpers:            # a worker of the current holder
            yield
            return
        if self._owner == me:
            raise EdgeTTSError(
                f"this TTS is already {self._what} in this thread; finish or close that first "
                "(one TTS runs one generation at a time; use a second TTS for parallel work)")
        self._lock.acquire()
        self._owner, self._what = me, what
        try:
            yield
        finally:
            self._owner, self._what = None, ""
            self._lock.release()

    @contextmanager
    def lent(self):
        """In a worker thread started by the holder: its calls use the holder's hold."""
        me = threading.get_ident()
        self._helpers.add(me)
        try:
            yield
        finally:
            self._helpers.discard(me)
