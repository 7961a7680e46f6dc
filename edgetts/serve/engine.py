"""One resident model for every connection: a single worker thread and a bounded wait queue.

    engine = Engine(tts, Limits(max_queue=4, time_limit=120))
    job = engine.submit(Request("Hello.", {"speaker": "ryan", "seed": 1}))  # Busy when full
    async for chunk in job:          # float32 chunks as the model makes them
        ...
    job.cancel()                     # client gone: the model is free after the frame in progress

The worker runs `TTS.stream` for one job at a time and hands each chunk to the job's asyncio
queue (thread-safe, on the loop that submitted it), so the HTTP and Wyoming servers, both
asyncio, can share one engine. The worker never waits for a slow client: audio is small next to
the model's time, so the model moves on to the next job while the last chunks are still sent.

Cancellation: `Job.cancel()` takes a waiting job out of the queue, or cancels the running
stream (edgetts.streaming.AudioStream.cancel), which stops the LM after its current frame.
A job that runs past `time_limit` seconds is stopped the same way and ends with TimeLimit.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from dataclasses import dataclass, field

from ..errors import EdgeTTSError

log = logging.getLogger("edgetts.serve")


class Busy(EdgeTTSError):
    """The wait queue is full: try again later (HTTP 503 + Retry-After)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class TimeLimit(EdgeTTSError):
    """A request ran past the per-request time limit."""


class InternalError(EdgeTTSError):
    """The model failed on a valid request (not the client's fault)."""


@dataclass
class Limits:
    max_queue: int = 8           # requests waiting behind the running one
    time_limit: float = 300.0    # seconds of generation per request

    def __post_init__(self):
        if self.max_queue < 0:
            raise EdgeTTSError("--max-queue must be >= 0")
        if not self.time_limit > 0:
            raise EdgeTTSError("--time-limit must be > 0")


@dataclass
class Request:
    text: str
    options: dict = field(default_factory=dict)  # TTS.stream keyword arguments


_DONE = object()


class Job:
    """One request's audio: an async iterator of float32 chunks, fed by the engine's worker."""

    def __init__(self, engine: "Engine", request: Request):
        self.engine = engine
        self.request = request
        self.loop = asyncio.get_running_loop()
        self._items: asyncio.Queue = asyncio.Queue()
        self._cancel = threading.Event()
        self._stream = None          # the AudioStream while it runs
        self._lock = threading.Lock()
        self.timings: dict = {}

    # -- consumer side (event loop) ------------------------------------------------------------
    def __aiter__(self):
        return self

    async def __anext__(self):
        item = await self._items.get()
        if item is _DONE:
            self._items.put_nowait(_DONE)   # stays exhausted
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._items.put_nowait(_DONE)
            raise item
        return item

    def cancel(self) -> None:
        """The client is gone: drop the job from the queue, or stop its generation."""
        with self._lock:
            self._cancel.set()
            stream = self._stream
        if stream is not None:
            stream.cancel()
        self.engine._forget(self)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # -- worker side (engine thread) -----------------------------------------------------------
    def _emit(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._cancel.set()

    def _attach(self, stream) -> bool:
        with self._lock:
            self._stream = stream
            return not self._cancel.is_set()


class Engine:
    """Serializes every request through one worker thread on one TTS."""

    def __init__(self, tts, limits: Limits | None = None):
        self.tts = tts
        self.limits = limits or Limits()
        self._waiting: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._running: Job | None = None
        self._closed = False
        self.served = 0       # requests completed
        self.failed = 0       # requests that ended with an error of the server's
        self.cancelled = 0    # requests whose client went away
        self._thread = threading.Thread(target=self._work, daemon=True, name="edgetts-serve")
        self._thread.start()

    # -- public --------------------------------------------------------------------------------
    def submit(self, request: Request) -> Job:
        """Queue a request (call from the event loop); raises Busy when the queue is full."""
        job = Job(self, request)
        with self._cond:
            if self._closed:
                raise Busy("the server is shutting down", retry_after=1)
            if self._running is not None and len(self._waiting) >= self.limits.max_queue:
                raise Busy(f"the server is busy ({len(self._waiting)} request(s) waiting); "
                           "try again shortly", retry_after=self._retry_after())
            self._waiting.append(job)
            self._cond.notify()
        return job

    def state(self) -> dict:
        with self._cond:
            return {"busy": self._running is not None, "queued": len(self._waiting),
                    "max_queue": self.limits.max_queue, "served": self.served, "failed": self.failed,
                    "cancelled": self.cancelled}

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            waiting = list(self._waiting)
            self._waiting.clear()
            running = self._running
            self._cond.notify_all()
        for job in waiting:
            job._emit(Busy("the server is shutting down", retry_after=1))
        if running is not None:
            running.cancel()
        self._thread.join(timeout)

    # -- internals -----------------------------------------------------------------------------
    def _retry_after(self) -> int:
        """Seconds a client should wait: a rough guess from the queue length."""
        return max(1, min(60, 2 * (len(self._waiting) + 1)))

    def _forget(self, job: Job) -> None:
        with self._cond:
            if job in self._waiting:
                self._waiting.remove(job)
                self.cancelled += 1

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._waiting.popleft()
                if job.cancelled:
                    continue
                self._running = job
            try:
                self._run(job)
            finally:
                with self._cond:
                    self._running = None

    def _run(self, job: Job) -> None:
        t0 = time.monotonic()
        try:
            stream = self.tts.stream(job.request.text, **job.request.options)
        except EdgeTTSError as e:
            job._emit(e)
            return
        except Exception as e:  # noqa: BLE001 - reported to the client, the server stays up
            log.exception("request failed before generation")
            job._emit(InternalError(f"synthesis failed: {type(e).__name__}: {e}"))
            self.failed += 1
            return
        try:
            if not job._attach(stream):
                self.cancelled += 1
                return
            over = False
            for chunk in stream:
                if job.cancelled:
                    break
                job._emit(chunk)
                if time.monotonic() - t0 > self.limits.time_limit:
                    over = True
                    stream.cancel()
            stream.close()
            job.timings = stream.timings
            if job.cancelled:
                self.cancelled += 1
                return
            if over:
                job._emit(TimeLimit(f"the request ran past the {self.limits.time_limit:g} s time limit"))
                self.failed += 1
                return
            self.served += 1
            job._emit(_DONE)
        except EdgeTTSError as e:
            job._emit(e)
        except Exception as e:  # noqa: BLE001
            log.exception("request failed during generation")
            job._emit(InternalError(f"synthesis failed: {type(e).__name__}: {e}"))
            self.failed += 1
        finally:
            stream.close()   # after an error: wait for the LM thread, so the model is free
