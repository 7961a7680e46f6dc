"""Local backend: N worker processes on this machine, each with the model loaded once.

Processes are started with the "spawn" method: forking a parent that already runs numba's
thread pool (or a codec-loading thread) is not safe. Each worker loads the checkpoint itself;
GGUF and safetensors weights are memory-mapped read-only, so the N workers share one copy of the
weight pages through the page cache. A worker holds one item at a time (the next one is sent as
soon as it answers; the pipe round trip is microseconds against seconds of synthesis). A worker
that dies is replaced by a fresh process and the runner retries its item.

Like every spawn-based pool, a script calling edgetts.batch() must guard its entry point with
`if __name__ == "__main__":` (the workers import the main module).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from multiprocessing.connection import wait as wait_any

from ..errors import EdgeTTSError

_READY, _FATAL, _DONE = "ready", "fatal", "done"


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this worker when the driver dies (kill -9 of the job included)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:   # the driver died before prctl took effect
        os._exit(1)


def _serve(conn, parent: int, model: str, threads: int, normalize: bool) -> None:
    """Worker process main: load the model, then answer items until None or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the driver's to handle
    _die_with_parent(parent)
    from .worker import Synthesizer

    try:
        syn = Synthesizer(model, threads, normalize)
    except BaseException as e:  # noqa: BLE001 - reported to the driver as one line
        conn.send((_FATAL, str(e) if isinstance(e, EdgeTTSError) else f"{type(e).__name__}: {e}"))
        return
    conn.send((_READY, syn.name))
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        if item is None:
            return
        conn.send((_DONE, item.id, syn.run(item)))


class LocalBackend:
    per_worker = 1

    def __init__(self, model: str, workers: int, threads: int, normalize: bool):
        self.model, self.workers, self.threads, self.normalize = model, workers, threads, normalize
        self.ctx = mp.get_context("spawn")
        self.procs: dict[int, mp.Process] = {}
        self.conns: dict[int, object] = {}
        self.loaded: dict[int, bool] = {}
        self.held: dict[int, str | None] = {}

    def describe(self) -> str:
        return f"{self.workers} local worker(s) x {self.threads} thread(s)"

    def _spawn(self, slot: int) -> None:
        ours, theirs = self.ctx.Pipe(duplex=True)
        p = self.ctx.Process(target=_serve, name=f"edgetts-batch-{slot}", daemon=True,
                             args=(theirs, os.getpid(), self.model, self.threads, self.normalize))
        p.start()
        theirs.close()
        self.procs[slot], self.conns[slot] = p, ours
        self.loaded[slot], self.held[slot] = False, None

    def start(self) -> list[int]:
        for slot in range(self.workers):
            self._spawn(slot)
        ready: list[int] = []
        while len(ready) < self.workers:
            for ev in self.wait():
                if ev[0] == "gone":
                    raise EdgeTTSError(f"a batch worker could not load the model: {ev[2]}")
                ready.append(ev[1])
        return ready

    def submit(self, slot: int, item) -> None:
        self.held[slot] = item.id
        try:
            self.conns[slot].send(item)
        except (BrokenPipeError, OSError):
            pass   # the worker is dead: wait() reports it and the item is retried

    def wait(self) -> list[tuple]:
        objs = {}
        for slot, p in self.procs.items():
            objs[self.conns[slot]] = (slot, p)
            objs[p.sentinel] = (slot, p)
        events: list[tuple] = []
        for obj in wait_any(list(objs)):
            slot, p = objs[obj]
            if self.procs.get(slot) is not p:
                continue          # already handled this round (message and exit together)
            if obj is self.conns[slot]:
                try:
                    msg = self.conns[slot].recv()
                except (EOFError, OSError):
                    self._died(slot, events)
                    continue
                self._message(slot, msg, events)
            else:
                self._died(slot, events)
        return events

    def _message(self, slot: int, msg: tuple, events: list) -> None:
        if msg[0] == _READY:
            self.loaded[slot] = True
            events.append(("ready", slot))
        elif msg[0] == _DONE:
            self.held[slot] = None
            events.append(("done", slot, msg[1], msg[2]))
        elif msg[0] == _FATAL:
            self._remove(slot)
            events.append(("gone", slot, msg[1]))

    def _died(self, slot: int, events: list) -> None:
        p, conn = self.procs[slot], self.conns[slot]
        try:
            while conn.poll():            # what it sent before dying still counts
                self._message(slot, conn.recv(), events)
        except (EOFError, OSError):
            pass
        if slot not in self.procs:        # it reported a fatal error
            return
        p.join(5)
        code = p.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        reason = f"worker process {p.pid} {how}"
        was_loaded, item_id = self.loaded[slot], self.held[slot]
        self._remove(slot)
        if not was_loaded:
            events.append(("gone", slot, reason + " while loading the model"))
            return
        if item_id is not None:
            events.append(("lost", slot, item_id, reason))
        self._spawn(slot)                 # a fresh process; "ready" once it has loaded the model

    def _remove(self, slot: int) -> None:
        p = self.procs.pop(slot)
        self.conns.pop(slot).close()
        self.loaded.pop(slot, None)
        self.held.pop(slot, None)
        p.join(5)
        if p.is_alive():      # busy with an item nobody will read
            p.kill()
            p.join()

    def close(self, abort: bool = False) -> None:
        """Let idle workers exit; kill the busy ones (abort: all of them at once)."""
        for slot, conn in self.conns.items():
            try:
                if abort:
                    self.procs[slot].kill()
                else:
                    conn.send(None)
            except OSError:
                pass
        for slot in list(self.procs):
            self._remove(slot)
