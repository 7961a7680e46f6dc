"""Interruption and full disks: SIGINT / SIGTERM during `say -o` and `quantize`, a file-size limit
(RLIMIT_FSIZE) and a full tmpfs: a clean one-line message, no partial output file, an existing
output untouched. Real subprocesses, real signals."""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny"
LONG = "\n".join(f"This is sentence number {i}, spoken slowly and with care." for i in range(60))
SAY = ["say", "-m", str(TINY), "--seed", "1", "--max-frames", "25", "--min-frames", "25"]
OLD = b"an older file that must survive"

# quantize with its encoder slowed down (the tiny model converts in well under a second): the
# signal must land while the GGUF files are half-written
SLOW_QUANTIZE = """
import sys, time
import quantize.writer as w
encode = w.encode
def slow(item, x):
    time.sleep(0.05)
    return encode(item, x)
w.encode = slow
from edgetts.cli import main
sys.exit(main(sys.argv[1:]))
"""


def env():
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def edgetts_cmd(args, slow_quantize=False):
    if slow_quantize:
        return [sys.executable, "-c", SLOW_QUANTIZE, *args]
    return [sys.executable, "-m", "edgetts.cli", *args]


def wait_for_partial(folder: Path, proc: subprocess.Popen, pattern: str, timeout=240.0) -> Path:
    """The temporary output file, once it holds data."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for f in folder.glob(pattern):
            try:
                if f.stat().st_size > 4096:
                    return f
            except FileNotFoundError:
                pass
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"finished before the signal: {err.decode()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no partial output appeared")


def assert_one_line(err: bytes, *words):
    text = err.decode()
    assert "Traceback" not in text, text
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) == 1, text
    for w in words:
        assert w in lines[0], text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("existing", [False, True])
def test_say_interrupted_leaves_no_partial_file(tmp_path, sig, existing):
    out = tmp_path / "out.wav"
    if existing:
        out.write_bytes(OLD)
    text = tmp_path.parent / f"{tmp_path.name}.txt"
    text.write_text(LONG)
    with open(text, "rb") as stdin:
        p = subprocess.Popen(edgetts_cmd([*SAY, "-o", str(out)]), stdin=stdin, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=tmp_path, env=env())
    wait_for_partial(tmp_path, p, ".out.wav.*")
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, err.decode()
    assert_one_line(err, "edgetts: interrupted")
    left = sorted(f.name for f in tmp_path.iterdir())
    assert left == (["out.wav"] if existing else []), left
    if existing:
        assert out.read_bytes() == OLD


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("existing", [False, True])
def test_quantize_interrupted_leaves_no_partial_file(tmp_path, sig, existing):
    outdir = tmp_path / "gguf"
    if existing:
        outdir.mkdir()
        (outdir / "keep.txt").write_bytes(OLD)
    p = subprocess.Popen(edgetts_cmd(["quantize", str(TINY), "--qtype", "q8_0", "-o", str(outdir)],
                                     slow_quantize=True),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env())
    t0 = time.monotonic()
    while not outdir.is_dir() and time.monotonic() - t0 < 120:
        time.sleep(0.02)
    wait_for_partial(outdir, p, ".*.gguf.*")
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, err.decode()
    assert_one_line(err, "edgetts: interrupted")
    if existing:
        assert sorted(f.name for f in outdir.iterdir()) == ["keep.txt"]
        assert (outdir / "keep.txt").read_bytes() == OLD
    else:
        assert not outdir.exists()   # not even the directory quantize made


def _fsize_limit(nbytes):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


def test_say_file_size_limit_is_a_clean_error(tmp_path):
    out = tmp_path / "out.wav"
    out.write_bytes(OLD)
    r = subprocess.run(edgetts_cmd([*SAY, "-o", str(out)]), input=LONG.encode(), capture_output=True,
                       cwd=tmp_path, env=env(), preexec_fn=_fsize_limit(300_000), timeout=600)
    assert r.returncode == 1, r.stderr.decode()
    assert_one_line(r.stderr, "edgetts: error:", "out.wav", "File too large")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["out.wav"]
    assert out.read_bytes() == OLD


def test_quantize_file_size_limit_is_a_clean_error(tmp_path):
    outdir = tmp_path / "gguf"
    r = subprocess.run(edgetts_cmd(["quantize", str(TINY), "--qtype", "f32", "-o", str(outdir)]),
                       capture_output=True, cwd=tmp_path, env=env(), preexec_fn=_fsize_limit(200_000),
                       timeout=600)
    assert r.returncode == 1, r.stderr.decode()
    assert_one_line(r.stderr, "edgetts: error:", "File too large")
    assert not outdir.exists()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KB tmpfs (root only; skipped where mounting is not allowed)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_say_full_disk_is_a_clean_error(small_tmpfs, tmp_path):
    out = small_tmpfs / "out.wav"
    r = subprocess.run(edgetts_cmd([*SAY, "-o", str(out)]), input=LONG.encode(), capture_output=True,
                       cwd=tmp_path, env=env(), timeout=600)
    assert r.returncode == 1, r.stderr.decode()
    assert_one_line(r.stderr, "edgetts: error:", "out.wav", "No space left on device")
    assert list(small_tmpfs.iterdir()) == []


def test_quantize_full_disk_is_a_clean_error(small_tmpfs, tmp_path):
    outdir = small_tmpfs / "gguf"
    r = subprocess.run(edgetts_cmd(["quantize", str(TINY), "--qtype", "f32", "-o", str(outdir)]),
                       capture_output=True, cwd=tmp_path, env=env(), timeout=600)
    assert r.returncode == 1, r.stderr.decode()
    assert_one_line(r.stderr, "edgetts: error:", "No space left on device")
    assert list(small_tmpfs.iterdir()) == []
