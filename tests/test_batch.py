"""`edgetts batch` on the tiny model: local worker processes, Ray (one `ray.init(num_cpus=2)` session
for the module, and a simulated two-node `ray.cluster_utils.Cluster`), kill -9 of the job and of a
worker, resume, bad lines.

Every written file is compared sample for sample with `TTS.generate` in this process (same seed,
same text normalization), which is what "the same samples whatever the workers or backend" means.
"""
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")   # Ray on 127.0.0.1 only
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

import edgetts  # noqa: E402
from edgetts import cli  # noqa: E402
from edgetts.audio import write_audio  # noqa: E402
from edgetts.batching import BatchOptions, derive_seed  # noqa: E402
from edgetts.batching.jobs import Manifest, read_input  # noqa: E402
from edgetts.errors import EdgeTTSError  # noqa: E402
from edgetts.text.normalize import normalize  # noqa: E402

from conftest import ROOT, TINY, requires_ray  # noqa: E402
TORN = '{"id": "utt-09", "file": "utt-0'
TEXTS = ["Hello there, how are you?", "The quick brown fox jumps over the lazy dog.",
         "Good morning.", "Please read this sentence aloud, slowly and clearly.",
         "Batch jobs keep one model per worker.", "That is all for today."]


def live_children(pid: int) -> list[int]:
    """Descendants of pid that are still running (zombies do not count)."""
    kids = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                rest = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if rest[0] != "Z":
                kids.setdefault(int(rest[1]), []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


@pytest.fixture(scope="module", autouse=True)
def no_leftover_processes():
    """After the module (Ray sessions shut down, pools closed): no process of ours is left running."""
    def cmdline(pid):
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""

    def ours():   # multiprocessing's resource tracker is a per-interpreter helper that lives on by design
        return {p for p in live_children(os.getpid())
                if p not in before and b"multiprocessing.resource_tracker" not in cmdline(p)}

    before = set(live_children(os.getpid()))
    yield
    t0 = time.monotonic()
    while ours() and time.monotonic() - t0 < 20:
        time.sleep(0.2)
    left = ours()
    assert not left, [cmdline(p)[:200] for p in left]


@pytest.fixture(scope="module")
def tts():
    return edgetts.load(TINY)


def good_lines(tts, n):
    """n usable input objects over the checkpoint's own speakers and languages."""
    out = []
    for i in range(n):
        d = {"id": f"utt-{i:02d}", "text": TEXTS[i % len(TEXTS)]}
        if i % 3 != 2:
            d["seed"] = 100 + i                     # every third line: seed derived from the id
        if i % 2:
            d["speaker"] = tts.speakers[i % len(tts.speakers)]
        if i % 4 == 1:
            d["language"] = tts.languages[-1]
        out.append(d)
    return out


def bad_lines(tts, dup_id):
    """(raw line, words expected in its error)."""
    return [
        (json.dumps({"text": "A line without an id."}), "no id"),
        (json.dumps({"id": "blank", "text": "   "}), "empty text"),
        (json.dumps({"id": "who", "text": "Hi.", "speaker": "not-" + tts.speakers[0]}), "unknown speaker"),
        (json.dumps({"id": dup_id, "text": "Again."}), "duplicate id"),
        ('{"id": "torn", "text": "cut', "invalid JSON"),
        (json.dumps({"id": "typo", "text": "Hi.", "speeker": tts.speakers[0]}), "unknown field"),
        (json.dumps({"id": "v", "text": "Hi.", "voice": "no-such-voice.safetensors"}), "no-such-voice"),
    ]


def write_input(path, lines):
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
    return path


_refs: dict = {}


def reference(tts, d, tmp, fmt="wav"):
    """(int16 samples, frames) of `TTS.generate` for input object d, written the way batch writes files."""
    key = json.dumps(d, sort_keys=True) + fmt
    if key not in _refs:
        lang = d.get("language", "auto")
        seed = d.get("seed", derive_seed(d["id"]))
        kw = {"speaker": d["speaker"]} if "speaker" in d else {}
        res = tts.generate(normalize(d["text"], lang), language=lang, seed=seed, **kw)
        path = write_audio(Path(tmp) / f"ref.{fmt}", res.audio, tts.sample_rate)
        _refs[key] = sf.read(str(path), dtype="int16")[0], res.frames
    return _refs[key]


def records(outdir):
    """The manifest's records (a torn line, which the test writes on purpose, is skipped as batch does)."""
    out = []
    for line in (Path(outdir) / "manifest.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            assert line == TORN
    return out


def pid_of(worker: str) -> int:
    return int(worker.rsplit(":", 1)[1])


def check_output(tts, outdir, good, tmp, fmt="wav"):
    """Every good id: exactly one ok record, its file, the reference samples. Returns the ok records."""
    ok = [r for r in records(outdir) if r["status"] == "ok"]
    assert sorted(r["id"] for r in ok) == sorted(d["id"] for d in good)      # each id once
    by_id = {r["id"]: r for r in ok}
    for d in good:
        r = by_id[d["id"]]
        assert r["file"] == f"{d['id']}.{fmt}" and r["error"] is None
        assert r["seed"] == d.get("seed", derive_seed(d["id"]))
        got, sr = sf.read(str(Path(outdir) / r["file"]), dtype="int16")
        assert sr == tts.sample_rate
        ref, frames = reference(tts, d, tmp, fmt)
        np.testing.assert_array_equal(got, ref, err_msg=d["id"])
        assert r["frames"] == frames
        assert r["audio_s"] == pytest.approx(got.shape[0] / sr, abs=1e-3) and r["compute_s"] > 0
    names = {p.name for p in Path(outdir).iterdir()}
    assert not [n for n in names if n.endswith(".part")]
    return ok


def check_bad(outdir, bad):
    failed = [r for r in records(outdir) if r["status"] == "failed"]
    for _, words in bad:
        assert any(words in r["error"] for r in failed), (words, failed)
    assert len(failed) == len(bad)
    return failed


def run_thread(fn):
    """Run fn in a thread; returns (thread, box) where box gets the result or the exception."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised by the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def wait_for_records(outdir, n, timeout=120, proc=None):
    """The ok records once there are at least n of them."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if (Path(outdir) / "manifest.jsonl").exists():
            ok = [r for r in records(outdir) if r["status"] == "ok"]
            if len(ok) >= n:
                return ok
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the job ended early: {proc.stderr.read().decode()}")
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} records after {timeout} s")


def gone(pid, timeout=10.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:   # a zombie child of this process counts as gone
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def batch_cli(args, cwd, env=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "edgetts.cli", "batch", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# -- input, manifest, options: no model ------------------------------------------------------------

def test_read_input_and_torn_manifest(tmp_path, tts):
    good = good_lines(tts, 3)
    bad = bad_lines(tts, good[0]["id"])
    src = write_input(tmp_path / "in.jsonl", [good[0], "", *[l for l, _ in bad], *good[1:]])
    items, failed = read_input(src)
    # unknown speaker and voice file parse fine: the worker (with the model) judges them
    assert [it.id for it in items] == [good[0]["id"], "who", "v", good[1]["id"], good[2]["id"]]
    assert [it.line for it in items] == [1, 5, 9, 3 + len(bad), 4 + len(bad)]
    assert items[4].seed == derive_seed(good[2]["id"]) and items[0].seed == good[0]["seed"]
    assert items[2].voice == str(tmp_path / "no-such-voice.safetensors")   # relative to the input
    assert sorted(r["line"] for r in failed) == [3, 4, 6, 7, 8]
    from_dicts, _ = read_input(iter(good))                 # the Python API takes dicts too
    from_file, _ = read_input(write_input(tmp_path / "g.jsonl", good))
    assert [(it.id, it.text, it.seed, it.speaker) for it in from_dicts] == \
        [(it.id, it.text, it.seed, it.speaker) for it in from_file]
    # a manifest whose last line was torn (power loss) still reads, and the next record starts a new line
    (tmp_path / "a.wav").write_bytes(b"x")
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"id": "a", "file": "a.wav", "status": "ok"})
                                             + "\n" + '{"id": "b", "fi')
    m = Manifest(tmp_path)
    assert list(m.done()) == ["a"] and m.torn == 1
    m.open()
    m.append({"id": "c", "file": "c.wav", "status": "ok"})
    m.close()
    (tmp_path / "c.wav").write_bytes(b"x")
    assert list(m.done()) == ["a", "c"] and m.torn == 1


def test_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["batch", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgetts: error:") and "missing.jsonl" in err and len(err.splitlines()) == 1
    src = write_input(tmp_path / "in.jsonl", [{"id": "a", "text": "Hi."}])
    with pytest.raises(EdgeTTSError, match="format"):
        edgetts.batch(src, tmp_path / "out", BatchOptions(model=str(TINY), format="mp3"))
    with pytest.raises(EdgeTTSError, match="no such file"):
        edgetts.batch(src, tmp_path / "out", BatchOptions(model=str(tmp_path / "nope"), progress=False))
    from edgetts.batching import _Lock
    with _Lock(tmp_path / "out"):   # one job per OUTDIR
        with pytest.raises(EdgeTTSError, match="another batch job"):
            edgetts.batch(src, tmp_path / "out", BatchOptions(model=str(TINY), progress=False))


# -- local worker processes ----------------------------------------------------------------------

def test_local_every_id_once_same_samples_bad_lines(tmp_path, tts):
    good = good_lines(tts, 6)
    bad = bad_lines(tts, good[0]["id"])
    src = write_input(tmp_path / "in.jsonl", [*good[:3], *[l for l, _ in bad], *good[3:]])
    s = edgetts.batch(src, tmp_path / "out", BatchOptions(model=str(TINY), workers=2, progress=False,
                                                          format="flac"))
    assert (s.items, s.done, s.failed, s.skipped) == (len(good) + 2, len(good), len(bad), 0)
    ok = check_output(tts, tmp_path / "out", good, tmp_path, fmt="flac")
    assert len({r["worker"] for r in ok}) == 2
    check_bad(tmp_path / "out", bad)
    again = edgetts.batch(src, tmp_path / "out", BatchOptions(model=str(TINY), workers=2, progress=False,
                                                              format="flac"))
    assert (again.done, again.skipped) == (0, len(good))   # resume: nothing is done twice


def test_resume_after_kill_9(tmp_path, tts):
    good = good_lines(tts, 10)
    write_input(tmp_path / "in.jsonl", good)
    args = ["in.jsonl", "-o", "out", "-m", str(TINY), "--workers", "1", "--no-progress"]
    p = batch_cli(args, tmp_path)
    try:
        first = wait_for_records(tmp_path / "out", 3, proc=p)
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    finally:
        p.kill()
    assert gone(pid_of(first[0]["worker"]))            # the worker went with the job
    first = [r for r in records(tmp_path / "out") if r["status"] == "ok"]
    assert 3 <= len(first) < len(good)
    with open(tmp_path / "out" / "manifest.jsonl", "a") as f:
        f.write(TORN)                                    # and a torn last line, as after a power cut
    r = batch_cli(args, tmp_path)
    out, err = r.communicate(timeout=300)
    assert r.returncode == 0, err.decode()
    assert f"{len(good) - len(first)} done, {len(first)} already done, 0 failed" in err.decode()
    ok = check_output(tts, tmp_path / "out", good, tmp_path)
    assert [r for r in ok[:len(first)]] == first       # nothing lost, nothing done twice


def test_local_worker_killed_mid_item(tmp_path, tts):
    good = good_lines(tts, 8)
    src = write_input(tmp_path / "in.jsonl", good)
    t, box = run_thread(lambda: edgetts.batch(src, tmp_path / "out",
                                              BatchOptions(model=str(TINY), workers=1, progress=False)))
    ok = wait_for_records(tmp_path / "out", 2)
    victim = pid_of(ok[-1]["worker"])
    os.kill(victim, signal.SIGKILL)                     # busy with the next item
    t.join(300)
    assert "error" not in box, box.get("error")
    s = box["result"]
    assert (s.done, s.failed, s.retried) == (len(good), 0, 1)
    ok = check_output(tts, tmp_path / "out", good, tmp_path)
    (retried,) = [r for r in ok if r["attempts"] == 2]
    assert pid_of(retried["worker"]) != victim
    assert gone(victim)


def test_local_worker_killed_without_retries_fails_the_item(tmp_path, tts):
    good = good_lines(tts, 5)
    src = write_input(tmp_path / "in.jsonl", good)
    t, box = run_thread(lambda: edgetts.batch(src, tmp_path / "out", BatchOptions(
        model=str(TINY), workers=1, retries=0, progress=False)))
    ok = wait_for_records(tmp_path / "out", 2)
    os.kill(pid_of(ok[-1]["worker"]), signal.SIGKILL)
    t.join(300)
    s = box["result"]
    assert (s.done, s.failed) == (len(good) - 1, 1)
    (failed,) = [r for r in records(tmp_path / "out") if r["status"] == "failed"]
    assert "worker died 1 time(s)" in failed["error"] and "signal 9" in failed["error"]
    rest = [d for d in good if d["id"] != failed["id"]]
    check_output(tts, tmp_path / "out", rest, tmp_path)   # recorded as failed, never dropped


# -- Ray -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    ray.shutdown()


@requires_ray
def test_ray_every_id_once_same_samples_bad_lines(tmp_path, tts, ray_session):
    good = good_lines(tts, 6)
    bad = bad_lines(tts, good[1]["id"])
    src = write_input(tmp_path / "in.jsonl", [*good[:2], *[l for l, _ in bad], *good[2:]])
    s = edgetts.batch(src, tmp_path / "out", BatchOptions(model=str(TINY), ray=True, workers=2,
                                                          progress=False))
    assert (s.done, s.failed) == (len(good), len(bad)) and "2 Ray worker(s)" in s.backend
    ok = check_output(tts, tmp_path / "out", good, tmp_path)
    assert len({r["worker"] for r in ok}) == 2
    check_bad(tmp_path / "out", bad)
    assert ray_session.is_initialized()                  # the caller's session is left running


@requires_ray
def test_ray_actor_killed_mid_item(tmp_path, tts, ray_session):
    good = good_lines(tts, 8)
    src = write_input(tmp_path / "in.jsonl", good)
    t, box = run_thread(lambda: edgetts.batch(src, tmp_path / "out", BatchOptions(
        model=str(TINY), ray=True, workers=1, progress=False)))
    ok = wait_for_records(tmp_path / "out", 2)
    victim = pid_of(ok[-1]["worker"])
    os.kill(victim, signal.SIGKILL)                     # Ray restarts the actor; its items come back
    t.join(300)
    assert "error" not in box, box.get("error")
    s = box["result"]
    assert (s.done, s.failed) == (len(good), 0) and s.retried >= 1
    ok = check_output(tts, tmp_path / "out", good, tmp_path)
    retried = [r for r in ok if r["attempts"] == 2]
    assert retried and all(pid_of(r["worker"]) != victim for r in retried)


@pytest.fixture
def two_node_cluster(ray_session):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


@requires_ray
def test_ray_two_node_cluster_resume_after_kill_9(tmp_path, tts, two_node_cluster):
    good = good_lines(tts, 10)
    write_input(tmp_path / "in.jsonl", good)
    args = ["in.jsonl", "-o", "out", "-m", str(TINY), "--ray", two_node_cluster.address, "--no-progress"]
    p = batch_cli(args, tmp_path)                        # joins the cluster: 2 CPUs -> 2 workers
    try:
        wait_for_records(tmp_path / "out", 4, proc=p)
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    finally:
        p.kill()
    first = [r for r in records(tmp_path / "out") if r["status"] == "ok"]
    assert len(first) < len(good)
    r = batch_cli(args, tmp_path)
    out, err = r.communicate(timeout=300)
    assert r.returncode == 0, err.decode()
    assert "on 2 node(s)" in err.decode() and f"{len(first)} already done, 0 failed" in err.decode()
    ok = check_output(tts, tmp_path / "out", good, tmp_path)
    assert ok[:len(first)] == first
    nodes = {r["worker"].rsplit(":", 1)[0] for r in ok}
    assert len(nodes) == 2                                # both nodes did work


@requires_ray
def test_ray_flag_without_address_starts_and_stops_a_private_instance(tmp_path, tts):
    good = good_lines(tts, 2)
    write_input(tmp_path / "in.jsonl", good)
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")     # short: Ray's socket paths must fit
    try:
        p = batch_cli(["in.jsonl", "-o", "out", "-m", str(TINY), "--ray", "--workers", "1", "--no-progress"],
                      tmp_path, env={"RAY_TMPDIR": ray_tmp})
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
        assert "1 Ray worker(s) x 1 thread(s) on 1 node(s)" in err.decode()
        check_output(tts, tmp_path / "out", good, tmp_path)
        assert list(Path(ray_tmp).glob("ray/session_*")), "the job did not run its own Ray instance"
        t0 = time.monotonic()                             # and stopped it: no Ray process of that session
        while (left := [d for d in Path("/proc").iterdir() if d.name.isdigit() and _mentions(d, ray_tmp)]):
            assert time.monotonic() - t0 < 20, left
            time.sleep(0.2)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _mentions(proc: Path, text: str) -> bool:
    try:
        return text.encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def test_voice_files_clone_lines(tmp_path):
    """Lines with `voice` (a saved edgetts.Voice, path relative to the input file) speak in that
    voice: the samples equal TTS.generate(voice=...) with the same seed."""
    from conftest import FIXTURES
    from edgetts import Voice

    base = FIXTURES / "tiny_clone"
    tts = edgetts.load(base)
    tts.clone_voice(base / "ref.wav").save(tmp_path / "plain.safetensors")
    tts.clone_voice(base / "ref.wav", ref_text="Good morning, how are you today?").save(tmp_path / "icl.safetensors")
    lines = [{"id": "a", "text": "Hello there.", "voice": "plain.safetensors", "seed": 3},
             {"id": "b", "text": "Hello there.", "voice": "icl.safetensors", "seed": 3}]
    src = write_input(tmp_path / "in.jsonl", lines)
    s = edgetts.batch(src, tmp_path / "out", BatchOptions(model=str(base), workers=1, progress=False))
    assert (s.done, s.failed) == (2, 0)
    for d in lines:
        want = tts.generate(normalize(d["text"], "auto"), seed=3, voice=Voice.load(tmp_path / d["voice"])).audio
        path = write_audio(tmp_path / "ref.wav", want, tts.sample_rate)
        got = sf.read(str(tmp_path / "out" / f"{d['id']}.wav"), dtype="int16")[0]
        np.testing.assert_array_equal(got, sf.read(str(path), dtype="int16")[0])
