"""Many texts to audio files: `edgetts batch` and `edgetts.batch()`, on all cores or a Ray cluster.

    edgetts batch lines.jsonl -o out/ -m models/cv-q4_0              # local worker processes
    edgetts batch lines.jsonl -o out/ --workers 1 --threads-per-worker 2
    edgetts batch lines.jsonl -o out/ --ray                          # a private local Ray instance
    edgetts batch lines.jsonl -o out/ --ray 10.0.0.5:6379            # join a running Ray cluster

    import edgetts
    summary = edgetts.batch("lines.jsonl", "out", edgetts.BatchOptions(model="models/cv-q4_0"))

Input: one JSON object per line, `{"id": "a1", "text": "Hello."}` plus optional `speaker`,
`voice` (a voice file, relative to the input's folder), `language`, `instruct` and `seed`. Each line is one
`TTS.generate` call (text normalized as in `edgetts say` unless normalize=False), so keep lines to
a paragraph or less.

Output: OUTDIR/<id>.<format> (written to a temporary file, then renamed), and OUTDIR/manifest.jsonl
with one record per outcome: id, file, audio_s, frames, compute_s, worker ("host:pid"), status
("ok" or "failed"), error, seed, attempts, line. Bad lines (invalid JSON, no id, empty text,
duplicate id, unknown speaker, unreadable voice file, ...) are recorded as failed and the job goes on.

Resume: a second run over the same OUTDIR skips the ids that have an "ok" record whose file is
still there, and tries everything else again; one job at a time may write to an OUTDIR.

Reproducible: a line's `seed` fixes its samples, whatever the worker count, threads or backend; a
line without one gets `derive_seed(id)`: the first 8 bytes of SHA-256 of the UTF-8 id, big-endian,
top bit cleared.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgeTTSError
from ..hub import DEFAULT_MODEL
from .jobs import MANIFEST, Manifest, derive_seed, read_input

FORMATS = ("wav", "flac", "ogg")
LOCK = ".edgetts-batch.lock"

__all__ = ["BatchOptions", "Summary", "batch", "derive_seed", "FORMATS", "MANIFEST"]


@dataclass
class BatchOptions:
    model: str = DEFAULT_MODEL          # checkpoint folder, GGUF file/folder, or hub id
    workers: int | None = None          # default: CPUs // threads_per_worker (of the Ray cluster with ray)
    threads_per_worker: int = 1
    ray: bool | str = False             # True: local Ray (or the connected session); str: cluster address
    format: str = "wav"                 # wav | flac | ogg
    retries: int = 2                    # times an item is retried after its worker died, before failing it
    normalize: bool = True              # spell out numbers, currency, dates (as `edgetts say`)
    qtype: str = "q8_0"                 # weight type when a hub model is converted on first use
    progress: bool | None = None        # tqdm bar on stderr (default: when stderr is a terminal)

    def check(self) -> None:
        if self.format not in FORMATS:
            raise EdgeTTSError(f"unknown format {self.format!r}; choose one of: {', '.join(FORMATS)}")
        if self.workers is not None and (isinstance(self.workers, bool) or int(self.workers) < 1):
            raise EdgeTTSError("workers must be >= 1")
        if int(self.threads_per_worker) < 1:
            raise EdgeTTSError("threads per worker must be >= 1")
        if int(self.retries) < 0:
            raise EdgeTTSError("retries must be >= 0")


@dataclass
class Summary:
    outdir: Path
    manifest: Path
    items: int          # usable input lines
    done: int           # written by this run
    skipped: int        # already done by an earlier run
    failed: int         # bad lines and items that failed in this run
    retried: int        # times an item went back to the queue after its worker died
    audio_s: float
    compute_s: float    # summed over the workers
    startup_s: float    # starting the workers and loading the model (included in wall_s)
    wall_s: float
    backend: str

    def __str__(self) -> str:
        rate = self.audio_s / self.wall_s if self.wall_s > 0 else 0.0
        retried = f", {self.retried} retried" if self.retried else ""
        return (f"{self.done} done, {self.skipped} already done, {self.failed} failed{retried}; "
                f"{self.audio_s:.1f} s of audio in {self.wall_s:.1f} s ({rate:.2f} audio s/s) "
                f"on {self.backend}; manifest: {self.manifest}")


class _Lock:
    """One job per OUTDIR: an exclusive flock on OUTDIR/.edgetts-batch.lock (freed if the job dies)."""

    def __init__(self, outdir: Path):
        self.path = outdir / LOCK
        self.fd: int | None = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:   # not POSIX: no lock
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise EdgeTTSError(f"{self.path.parent}: another batch job is writing there") from None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
        return False


def _outdir(path) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeTTSError(f"{out}: cannot create the output folder ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise EdgeTTSError(f"{out}: output folder is not writable")
    return out


def _backend(opts: BatchOptions, model: str):
    threads = int(opts.threads_per_worker)
    workers = None if opts.workers is None else int(opts.workers)
    if opts.ray:
        from .ray_backend import RayBackend
        return RayBackend(model, workers, threads, opts.normalize,
                          address=None if opts.ray is True else str(opts.ray))
    from .local import LocalBackend
    from .runner import cores
    return LocalBackend(model, workers or max(1, cores() // threads), threads, opts.normalize)


def batch(input, outdir, options: BatchOptions | None = None) -> Summary:
    """Synthesize every line of `input` (a JSONL path, or an iterable of dicts) into `outdir`."""
    from . import runner

    opts = options or BatchOptions()
    opts.check()
    t0 = time.perf_counter()
    items, bad = read_input(input)
    out = _outdir(outdir)
    progress = sys.stderr.isatty() if opts.progress is None else bool(opts.progress)
    tally, backend_name = runner.Tally(), "no worker (nothing to do)"
    with _Lock(out):
        for stale in out.glob(".*.part"):   # temporary audio files of a job that was killed
            stale.unlink(missing_ok=True)
        manifest = Manifest(out)
        done = manifest.done()
        todo = [it for it in items if it.id not in done]
        manifest.open()
        try:
            for rec in bad:
                manifest.append(rec)
            if todo:
                from .. import hub
                model = str(Path(hub.resolve(opts.model, qtype=opts.qtype, progress=progress)).resolve())
                t_backend = time.perf_counter()
                backend = _backend(opts, model)
                backend_name = backend.describe()
                try:
                    tally = runner.run(todo, backend, manifest, out, "." + opts.format, int(opts.retries),
                                       progress, t_backend)
                except BaseException:
                    backend.close(abort=True)    # Ctrl-C, a lost cluster: stop the workers now
                    raise
                backend.close()
        finally:
            manifest.close()
    return Summary(outdir=out, manifest=manifest.path, items=len(items), done=tally.done,
                   skipped=len(items) - len(todo), failed=tally.failed + len(bad), retried=tally.retried,
                   audio_s=tally.audio_s, compute_s=tally.compute_s, startup_s=tally.startup_s,
                   wall_s=time.perf_counter() - t0,
                   backend=backend_name)
