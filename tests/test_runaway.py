"""Runaway generation: a model that never says EOS stops at its frame cap, a stuck model (one code
or a short pattern over and over) is ended early by the stop guard; both with a warning."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import edgetts
from edgetts.pipeline import StopGuard, StopWarning, StuckDetector, frame_limits
import robust_models as R

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
TEXT = "Hello there."


def run_say(args, cwd: Path, stdin: bytes | None = None, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "edgetts.cli", "say", *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def never_eos(tmp_path_factory):
    return R.never_eos(tmp_path_factory.mktemp("never_eos") / "model")


@pytest.fixture(scope="module")
def stuck(tmp_path_factory):
    return R.stuck(tmp_path_factory.mktemp("stuck") / "model")


def expected_cap(tts, text: str) -> int:
    n_text = len(tts.text_ids(text)[1])
    return frame_limits(n_text, tts.cfg.generation.max_new_tokens)[1]


# ------------------------------------------------------------------------------ detector
@pytest.mark.parametrize("period", [1, 2, 3, 4])
def test_detector_fires_on_a_repeated_pattern_after_one_window(period):
    rng = np.random.default_rng(period)
    pattern = list(rng.choice(1000, period, replace=False) + 10)
    det = StuckDetector(window=30, period=4, distinct=1)   # the pattern check alone
    lead = [int(x) for x in rng.permutation(10)]   # varied speech first
    seq = lead + pattern * 40
    fired = [i for i, c in enumerate(seq) if det(c)]
    assert fired, "a repeated pattern was not detected"
    # the first frame at which the last 30 codes are the repeated pattern
    assert fired[0] == len(lead) + 29
    assert ("pattern" in det.reason) == (period > 1)


def test_detector_fires_on_two_codes_in_any_order():
    rng = np.random.default_rng(0)
    det = StuckDetector(window=40, period=4, distinct=2)
    seq = list(rng.choice([5, 9], 200))          # silence dithering between two codes
    assert any(det(int(c)) for c in seq)
    assert "2 different codes" in det.reason


def test_detector_quiet_on_varied_codes_and_long_patterns():
    rng = np.random.default_rng(1)
    det = StuckDetector(window=30, period=4, distinct=2)
    assert not any(det(int(c)) for c in rng.integers(0, 1000, 2000))
    det = StuckDetector(window=30, period=4, distinct=2)
    assert not any(det(c) for c in [1, 2, 3, 4, 5] * 100)   # period 5 > max period


def test_guard_quiet_on_the_parity_fixtures():
    """Even with a 1-second window the official greedy outputs never look stuck."""
    checked = 0
    for d in ("tiny", "tiny_proj", "tiny_vd", "tiny_base"):
        g = np.load(FIX / d / "golden.npz")
        for k in g.files:
            if k.startswith("c_") and k.endswith("_codes"):
                det = StuckDetector(window=12, period=4, distinct=2)
                assert not any(det(int(c)) for c in g[k][:, 0]), (d, k)
                checked += 1
    assert checked >= 10


def test_guard_quiet_on_free_running_tiny_model():
    tts = edgetts.load(FIX / "tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("error", StopWarning)   # neither guard may fire here
        for seed in range(3):
            res = tts.generate("Hello, this is a tiny test of the guard.", seed=seed,
                               max_frames=200, min_frames=150)
            assert res.timings["stop"] in ("eos", "max_frames")


# ------------------------------------------------------------------------------ never EOS
def test_never_eos_stops_at_the_cap_with_a_warning(never_eos):
    tts = edgetts.load(never_eos)
    cap = expected_cap(tts, TEXT)
    for kw in (dict(greedy=True), dict(seed=3)):
        with pytest.warns(StopWarning, match=f"frame cap \\({cap} frames\\)"):
            res = tts.generate(TEXT, stop_guard=StopGuard(seconds=0), **kw)
        assert res.timings["stop"] == "max_frames"
        assert res.frames == cap
    # a cap the caller chose is no surprise: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", StopWarning)
        assert tts.generate(TEXT, greedy=True, max_frames=7).frames == 7


def test_say_never_eos_writes_the_capped_sentence(never_eos, tmp_path):
    tts = edgetts.load(never_eos)
    cap = expected_cap(tts, TEXT)
    spf = round(tts.sample_rate / tts.frame_rate)
    r = run_say(["-m", str(never_eos), "--seed", "1", "--stuck-stop", "0", "-o", "out.wav", TEXT], tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "Traceback" not in err
    warn = [l for l in err.splitlines() if "warning" in l]
    assert len(warn) == 1 and f"frame cap ({cap} frames)" in warn[0], err
    assert sf.info(str(tmp_path / "out.wav")).frames == cap * spf


# ------------------------------------------------------------------------------ stuck
def test_stuck_model_is_ended_by_the_guard(stuck):
    tts = edgetts.load(stuck)
    guard = StopGuard(seconds=2.0)
    window = round(guard.seconds * tts.frame_rate)
    text = "Hello there, how are you doing today, my friend?"
    assert window < frame_limits(len(tts.text_ids(text)[1]), 10 ** 6)[0], "EOS bias would come first"
    with pytest.warns(StopWarning, match="one code repeated"):
        res = tts.generate(text, greedy=True, stop_guard=guard)
    assert res.timings["stop"] == "stuck"
    assert res.frames == window
    assert len(set(res.codes[:, 0].tolist())) == 1
    # the guard off: the same model runs on until the EOS bias ends it
    with warnings.catch_warnings():
        warnings.simplefilter("error", StopWarning)
        off = tts.generate(text, greedy=True, stop_guard=StopGuard(seconds=0))
    assert off.timings["stop"] == "eos" and off.frames > window
    assert np.array_equal(off.codes[:window], res.codes)   # the guard only stops, never changes codes


def test_say_stuck_model_warns_and_continues(stuck, tmp_path):
    text = "Hello there, how are you doing today, my friend?\nAnd a second line for good measure, friend."
    r = run_say(["-m", str(stuck), "--greedy", "--stuck-stop", "2", "-o", "out.wav"], tmp_path,
                stdin=text.encode())
    err = r.stderr.decode()
    assert r.returncode == 0, err
    warn = [l for l in err.splitlines() if l.startswith("edgetts: warning:")]
    assert len(warn) == 2 and all("ended early" in w for w in warn), err   # one per sentence
    assert sf.info(str(tmp_path / "out.wav")).frames > 0
