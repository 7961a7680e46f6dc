"""The driver's loop, the same for every backend: hand out items in order, write what comes back.

A backend owns the workers and tells the loop what happened through events:

    ("ready", slot)                      a worker (re)started with the model loaded
    ("done", slot, item_id, Outcome)     an item finished (ok or failed) on that worker
    ("lost", slot, item_id, reason)      the worker died with the item handed to it
    ("gone", slot, reason)               the worker cannot come back

Each worker holds at most `backend.per_worker` items (back-pressure). A lost item goes back to
the front of the queue (so order is kept) until it has been handed out `1 + retries` times, then
it is recorded as failed: no item is ever dropped. Every outcome is written by this process
alone: the audio file first (atomically), then its manifest line.
"""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ..audio import write_audio
from ..errors import EdgeTTSError
from .jobs import Item, Manifest, failed_record


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


@dataclass
class Tally:
    done: int = 0
    failed: int = 0
    retried: int = 0
    audio_s: float = 0.0
    compute_s: float = 0.0
    startup_s: float = 0.0    # until every worker had the model loaded


class _Progress:
    """tqdm bar over the items to do: items/s and seconds of audio per wall second."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        self.t0 = time.perf_counter()
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="item", file=sys.stderr, dynamic_ncols=True,
                            desc="edgetts batch")

    def update(self, tally: Tally) -> None:
        if self.bar is not None:
            rate = tally.audio_s / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix_str(f"{rate:.2f} audio s/s, {tally.failed} failed", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(items: list[Item], backend, manifest: Manifest, outdir: Path, ext: str, retries: int,
        progress: bool, t_backend: float) -> Tally:
    """Run `items` on `backend` (created at perf_counter() `t_backend`) to the end."""
    tally = Tally()
    pending = deque(items)
    attempts = {it.id: 0 for it in items}
    by_id = {it.id: it for it in items}
    inflight: dict[object, list[str]] = {}     # slot -> item ids handed to it
    ready: set = set(backend.start())
    tally.startup_s = time.perf_counter() - t_backend
    inflight.update({s: [] for s in ready})
    bar = _Progress(len(items), progress)

    def record(rec: dict) -> None:
        manifest.append(rec)
        bar.update(tally)

    try:
        while pending or any(inflight.values()):
            for slot in sorted(ready, key=str):
                while pending and len(inflight[slot]) < backend.per_worker:
                    it = pending.popleft()
                    attempts[it.id] += 1
                    inflight[slot].append(it.id)
                    backend.submit(slot, it)
            if not inflight:   # every slot is gone (restarting slots stay in `inflight`)
                raise EdgeTTSError("no batch worker is left running; nothing more can be done")
            lost = []
            for ev in backend.wait():
                kind, slot = ev[0], ev[1]
                if kind == "ready":
                    ready.add(slot)
                    inflight.setdefault(slot, [])
                elif kind == "done":
                    inflight[slot].remove(ev[2])
                    record(_finish(by_id[ev[2]], ev[3], attempts[ev[2]], outdir, ext, tally))
                elif kind == "lost":
                    ready.discard(slot)
                    inflight[slot].remove(ev[2])
                    lost.append((by_id[ev[2]], ev[3]))
                elif kind == "gone":
                    ready.discard(slot)
                    for item_id in inflight.pop(slot, []):
                        lost.append((by_id[item_id], ev[2]))
            for it, reason in reversed(lost):   # back to the front, in their original order
                if attempts[it.id] > retries:
                    tally.failed += 1
                    error = f"worker died {attempts[it.id]} time(s) on this item ({reason})"
                    record(failed_record(it.id, error, seed=it.seed, attempts=attempts[it.id], line=it.line))
                else:
                    tally.retried += 1
                    pending.appendleft(it)
    finally:
        bar.close()
    return tally


def _finish(item: Item, out, attempts: int, outdir: Path, ext: str, tally: Tally) -> dict:
    """Write an outcome's audio file, then return its manifest record."""
    tally.compute_s += out.compute_s
    base = {"seed": item.seed, "attempts": attempts, "line": item.line}
    if not out.ok:
        tally.failed += 1
        return failed_record(item.id, out.error, compute_s=round(out.compute_s, 3),
                             worker=out.worker, **base)
    name = f"{item.id}{ext}"
    try:
        write_audio(outdir / name, out.audio, out.sample_rate)
    except EdgeTTSError as e:
        tally.failed += 1
        return failed_record(item.id, str(e), worker=out.worker, **base)
    seconds = out.audio.shape[0] / out.sample_rate
    tally.done += 1
    tally.audio_s += seconds
    rec = {"id": item.id, "file": name, "audio_s": round(seconds, 4), "frames": out.frames,
           "compute_s": round(out.compute_s, 3), "worker": out.worker, "status": "ok", "error": None,
           **base}
    if out.warnings:
        rec["warnings"] = out.warnings
    return rec
