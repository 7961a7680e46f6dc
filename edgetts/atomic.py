"""Output files that appear whole or not at all; signals that unwind instead of killing.

Every writer of a user-visible file (audio from `say -o`, the GGUF pair from `quantize`, a cloned
voice, ...) goes through `AtomicOutput`:

    with AtomicOutput() as out:
        tmp = out.temp("voice.wav")      # a hidden temporary file next to the final path
        write_something(tmp)
    # on success every temporary file is fsync'ed and renamed onto its final name (one rename
    # per file, so an existing file is replaced whole, never overwritten half-way); on any
    # exception, Ctrl-C or SIGTERM every temporary file is removed

`signals_unwind()` (the CLI runs every command inside it) turns SIGTERM and SIGHUP into
`Interrupted` (a KeyboardInterrupt, so the same cleanup paths run as for Ctrl-C) and makes a
file-size limit (SIGXFSZ) an ordinary write error instead of a kill. Temporary files still registered when the
interpreter exits are removed by an atexit hook. Only SIGKILL (or a power cut) can leave a
temporary file behind; its name starts with '.' and ends with `TEMP_SUFFIX`.
"""
from __future__ import annotations

import atexit
import errno
import os
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from .errors import EdgeTTSError

TEMP_SUFFIX = ".part"

_live: set[Path] = set()           # temporary files not yet committed or removed
_live_lock = threading.Lock()


class Interrupted(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP) delivered as an exception, like Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


@contextmanager
def signals_unwind():
    """While in this block (main thread only): SIGTERM/SIGHUP raise `Interrupted` so cleanup
    runs as for Ctrl-C, and a file-size limit makes writes fail with EFBIG (SIGXFSZ would kill
    the process mid-write). The previous handlers come back afterwards."""
    saved = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            sig = getattr(signal, name, None)
            if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
                saved[sig] = signal.signal(sig, _raise_interrupted)
        if hasattr(signal, "SIGXFSZ"):
            saved[signal.SIGXFSZ] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def exit_code(exc: KeyboardInterrupt) -> int:
    """Shell convention: 128 + signal number (130 for Ctrl-C)."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


def write_error(path, e: BaseException) -> EdgeTTSError:
    """One-line error for a failed write of `path` (full disk, file too large, permissions...)."""
    text = str(e).strip()
    reason = getattr(e, "strerror", None) or (text.splitlines()[0] if text else "")
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        reason = os.strerror(e.errno)
    return EdgeTTSError(f"{path}: cannot write ({reason or type(e).__name__})")


def probe_write_error(path) -> OSError | None:
    """The OSError a one-byte append to `path` gets now (ENOSPC, EFBIG, ...), or None.

    For writers that report a failed write without its cause (libsndfile says only "system
    error"): the next write fails the same way, and the file is discarded anyway."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError as e:
        return e
    try:
        os.write(fd, b"\0")
    except OSError as e:
        return e
    finally:
        os.close(fd)
    return None


@atexit.register
def _remove_leftovers() -> None:
    with _live_lock:
        left = list(_live)
        _live.clear()
    for p in left:
        try:
            os.unlink(p)
        except OSError:
            pass


class AtomicOutput:
    """Temporary files renamed to their final names together on `commit()`, removed on `abort()`.

    A context manager commits when its block succeeds and aborts on any exception (including
    KeyboardInterrupt / Interrupted). Several files commit in the order they were asked for.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[Path, Path]] = []   # (temporary, final)

    def temp(self, final) -> Path:
        """A new empty temporary file in `final`'s folder (normal permissions); returns its path."""
        final = Path(final)
        folder = final.parent if str(final.parent) else Path(".")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=TEMP_SUFFIX, dir=folder)
        except OSError as e:
            raise write_error(final, e) from None
        os.close(fd)
        tmp = Path(tmp)
        with _live_lock:
            _live.add(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; give the file normal permissions
        self.pending.append((tmp, final))
        return tmp

    def failed(self, e: BaseException, name=None) -> EdgeTTSError:
        """The one-line error for a write into one of the temporary files that failed with `e`
        (a partial write or libsndfile's bare "system error" carry no errno: one more byte
        appended to the newest temporary file shows the cause, ENOSPC, EFBIG, ...)."""
        probe = probe_write_error(self.pending[-1][0]) if self.pending else None
        if name is None:
            name = self.pending[-1][1] if self.pending else "output"
        return write_error(name, probe or e)

    def commit(self) -> list[Path]:
        """fsync each temporary file, then rename it onto its final name."""
        done = []
        try:
            for tmp, final in self.pending:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for tmp, final in self.pending:
                os.replace(tmp, final)
                with _live_lock:
                    _live.discard(tmp)
                done.append(final)
        except OSError as e:
            self.abort()
            raise write_error(final, e) from None
        self.pending = []
        return done

    def abort(self) -> None:
        for tmp, _ in self.pending:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            with _live_lock:
                _live.discard(tmp)
        self.pending = []

    def __enter__(self) -> "AtomicOutput":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False
