"""Ray backend: one actor per worker with the model resident, on one machine or a cluster.

Each actor reserves `num_cpus = threads per worker` and loads the checkpoint once (every node
needs edgetts installed and the model at the same path). The runner keeps at most `per_worker`
calls queued on each actor (back-pressure: items are handed out in input order, never all at
once). Ray restarts a dead actor (`max_restarts`, model reloaded); its calls in flight fail
and the runner puts their items back in the queue (retried up to `retries` times, then recorded as
failed). A ping on the restarted actor tells when it can take items again; an actor that cannot
come back is dropped.

`address=None` starts a private local Ray instance on 127.0.0.1 (no dashboard, no usage stats)
and stops it at the end; an address joins that cluster. If this process is already connected to
Ray (a pipeline that called ray.init), that session is used and left running.
"""
from __future__ import annotations

import logging
import os
import socket

from ..errors import EdgeTTSError
from .runner import cores

MAX_RESTARTS = 8          # per actor, over the whole job


def _import_ray(local: bool):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")   # workers use this interpreter as is
    if local:  # a private single-machine instance: advertise the loopback address, not the LAN one
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise EdgeTTSError("the Ray backend needs Ray: pip install 'edgetts[ray]'") from None
    return ray


class _Actor:
    """The Ray actor's body (wrapped with ray.remote in RayBackend)."""

    def __init__(self, model: str, threads: int, normalize: bool):
        import ray

        from .worker import Synthesizer

        self.error = None
        try:
            host = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"
            self.syn = Synthesizer(model, threads, normalize, host=host)
        except BaseException as e:  # noqa: BLE001 - reported to the driver by status()
            self.error = str(e) if isinstance(e, EdgeTTSError) else f"{type(e).__name__}: {e}"

    def status(self) -> tuple[bool, str]:
        return (False, self.error) if self.error else (True, self.syn.name)

    def run(self, item):
        return self.syn.run(item)


class RayBackend:
    per_worker = 2

    def __init__(self, model: str, workers: int | None, threads: int, normalize: bool,
                 address: str | None):
        self.ray = ray = _import_ray(local=address is None and not _connected())
        self.threads = threads
        self.own_session = not ray.is_initialized()
        if self.own_session:
            kw = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
            try:
                if address is None:
                    ray.init(address="local", num_cpus=(workers or cores() // threads or 1) * threads, **kw)
                else:
                    ray.init(address=address, **kw)
            except Exception as e:  # noqa: BLE001 - ConnectionError, ValueError, RuntimeError, ...
                raise EdgeTTSError(f"cannot start or join Ray ({address or 'local'}): "
                                   f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        cpus = int(ray.cluster_resources().get("CPU", 0))
        self.workers = workers or max(1, cpus // threads)
        if self.workers * threads > cpus:
            self.close()
            raise EdgeTTSError(f"the Ray cluster has {cpus} CPU(s): {self.workers} worker(s) x {threads} "
                               f"thread(s) do not fit (lower --workers or --threads-per-worker)")
        self.nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        actor_cls = ray.remote(_Actor)
        opts = dict(num_cpus=threads, max_restarts=MAX_RESTARTS, max_task_retries=0)  # we retry items
        self.actors = {slot: actor_cls.options(**opts).remote(model, threads, normalize)
                       for slot in range(self.workers)}
        self.names = {slot: f"Ray worker {slot}" for slot in self.actors}
        self.refs: dict = {}        # ObjectRef -> (slot, item id, or None for a status ping)
        self.recovering: set[int] = set()
        self.pings: dict[int, int] = {}   # failed status pings since the actor was last ready

    def describe(self) -> str:
        return f"{self.workers} Ray worker(s) x {self.threads} thread(s) on {self.nodes} node(s)"

    def _ping(self, slot: int) -> None:
        self.refs[self.actors[slot].status.remote()] = (slot, None)

    def start(self) -> list[int]:
        for slot in self.actors:
            self._ping(slot)
        ready: list[int] = []
        while len(ready) < len(self.actors):
            for ev in self.wait():
                if ev[0] == "gone":
                    raise EdgeTTSError(f"a batch worker could not load the model: {ev[2]}")
                if ev[0] == "ready":
                    ready.append(ev[1])
        return ready

    def submit(self, slot: int, item) -> None:
        self.refs[self.actors[slot].run.remote(item)] = (slot, item.id)

    def wait(self) -> list[tuple]:
        ray = self.ray
        done, rest = ray.wait(list(self.refs), num_returns=1)
        if rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            done += more
        events: list[tuple] = []
        for ref in done:
            if ref not in self.refs:
                continue                  # belonged to an actor dropped in this round
            slot, item_id = self.refs.pop(ref)
            try:
                value = ray.get(ref)
            except ray.exceptions.RayError as e:
                reason = f"{self.names[slot]} died ({type(e).__name__})"
                if item_id is None:
                    self.pings[slot] = self.pings.get(slot, 0) + 1
                    restarting = isinstance(e, ray.exceptions.ActorUnavailableError)
                    if restarting and self.pings[slot] <= MAX_RESTARTS:
                        self._ping(slot)          # restarting: ask again
                    else:
                        self._drop(slot)          # dead for good (restarts used up, or it cannot start)
                        events.append(("gone", slot, reason))
                    continue
                events.append(("lost", slot, item_id, reason))
                if slot not in self.recovering:   # ask when the restarted actor can take items
                    self.recovering.add(slot)
                    self._ping(slot)
                continue
            if item_id is not None:
                events.append(("done", slot, item_id, value))
            elif value[0]:
                self.names[slot] = f"Ray worker {value[1]}"
                self.recovering.discard(slot)
                self.pings[slot] = 0
                events.append(("ready", slot))
            else:
                self._drop(slot)
                events.append(("gone", slot, value[1]))
        return events

    def _drop(self, slot: int) -> None:
        for ref in [r for r, (s, _) in self.refs.items() if s == slot]:
            del self.refs[ref]
        self.recovering.discard(slot)
        self.ray.kill(self.actors.pop(slot), no_restart=True)

    def close(self, abort: bool = False) -> None:
        for slot in list(getattr(self, "actors", {})):
            self._drop(slot)
        if self.own_session:
            self.ray.shutdown()


def _connected() -> bool:
    import sys
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()
