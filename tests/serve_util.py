"""Start `edgetts serve` / `edgetts wyoming` as real subprocesses on a free port (port 0)."""
from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from conftest import FIXTURES, ROOT, TINY, TOL_AUDIO_ORDER  # noqa: F401 - re-exported for the serve tests

# int16 steps: streamed and one-shot decoding differ by summation-order noise (conftest), then round
LSB = math.ceil(TOL_AUDIO_ORDER * 32767 + 0.5)


def _names():
    import edgetts
    tts = edgetts.load(TINY)
    return list(tts.speakers), [lang for lang in tts.languages if lang != "auto"]


SPEAKERS, LANGUAGES = _names()   # from the checkpoint, never spelled out in the tests


class Server:
    def __init__(self, command: str, args: list[str], log: Path, env: dict | None = None, timeout=120):
        self.log = log
        e = dict(os.environ)
        e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
        e.update(env or {})
        self._out = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "edgetts.cli", command, *args],
                                     stdout=self._out, stderr=subprocess.STDOUT, env=e, cwd=ROOT)
        deadline = time.monotonic() + timeout
        pat = re.compile(rb"serving .* on (?:http|tcp)://([\d.]+):(\d+)")
        while True:
            m = pat.search(log.read_bytes())
            if m:
                self.host, self.port = m.group(1).decode(), int(m.group(2))
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)

    @property
    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def s16(audio) -> np.ndarray:
    """float32 audio as the int16 samples the servers send."""
    from edgetts.audio import to_s16le
    return np.frombuffer(to_s16le(audio), "<i2")


def assert_same_samples(got, want) -> None:
    got, want = np.asarray(got, np.int32), np.asarray(want, np.int32)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.max(np.abs(got - want)) <= LSB


def best_correlation(got, want) -> tuple[float, int]:
    """Largest normalized correlation of `want` with `got` over small shifts (codec delays)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    best = (-1.0, 0)
    for shift in range(0, min(3000, max(1, got.size - want.size + 1))):
        a = got[shift:shift + want.size]
        if a.size < want.size * 0.9:
            break
        b = want[:a.size]
        c = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
        if c > best[0]:
            best = (c, shift)
    return best
