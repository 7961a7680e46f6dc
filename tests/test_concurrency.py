"""One TTS from several threads: generations serialize (outputs equal the sequential ones), a
stream holds the model for its life, and a second generation from the holding thread is a clear
error rather than a deadlock or interleaved state."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import edgetts
from edgetts.errors import EdgeTTSError
from edgetts.streaming import stream

from conftest import TOL_AUDIO_ORDER

TINY = Path(__file__).resolve().parent / "fixtures" / "tiny"
JOBS = [("Hello, this is a tiny test.", 1), ("Another sentence, quite different.", 2),
        ("Numbers like three and four.", 3), ("The last one here.", 4)]
KW = dict(max_frames=12, min_frames=12)   # the same length each time: the threads overlap


@pytest.fixture(scope="module")
def tts():
    return edgetts.load(TINY)


@pytest.fixture(scope="module")
def sequential(tts):
    return [tts.generate(text, seed=seed, **KW) for text, seed in JOBS]


def run_threads(fns, timeout=300):
    out, errors = [None] * len(fns), []
    barrier = threading.Barrier(len(fns))

    def work(i):
        try:
            barrier.wait()
            out[i] = fns[i]()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread hung (deadlock?)"
    assert not errors, errors
    return out


def test_threads_generate_the_sequential_results(tts, sequential):
    fns = [lambda t=text, s=seed: tts.generate(t, seed=s, **KW) for text, seed in JOBS] * 2
    got = run_threads(fns)
    for i, res in enumerate(got):
        ref = sequential[i % len(JOBS)]
        assert np.array_equal(res.codes, ref.codes), i
        np.testing.assert_array_equal(res.audio, ref.audio)


def test_threads_iterating_frames_the_sequential_codes(tts, sequential):
    fns = [lambda t=text, s=seed: np.stack(list(tts.frames(t, seed=s, **KW))) for text, seed in JOBS]
    for codes, ref in zip(run_threads(fns), sequential):
        assert np.array_equal(codes, ref.codes)


def test_a_stream_and_generations_from_other_threads(tts, sequential):
    def streamed():
        s = stream(tts, JOBS[0][0], seed=JOBS[0][1], normalize=False, **KW)
        audio = np.concatenate(list(s))
        return np.stack(s.codes), audio
    fns = [streamed] + [lambda t=text, s=seed: tts.generate(t, seed=s, **KW) for text, seed in JOBS[1:]]
    got = run_threads(fns)
    codes, audio = got[0]
    assert np.array_equal(codes, sequential[0].codes)
    np.testing.assert_allclose(audio, sequential[0].audio, atol=TOL_AUDIO_ORDER)
    for res, ref in zip(got[1:], sequential[1:]):
        assert np.array_equal(res.codes, ref.codes)


def test_generate_inside_a_stream_loop_is_a_clear_error(tts, sequential):
    s = stream(tts, JOBS[0][0], seed=JOBS[0][1], normalize=False, **KW)
    chunks = [next(s)]
    with pytest.raises(EdgeTTSError, match="already streaming in this thread"):
        tts.generate("Hi there.", **KW)
    with pytest.raises(EdgeTTSError, match="already streaming in this thread"):
        tts.frames("Hi there.", **KW)
    chunks += list(s)                   # the stream is unharmed and completes
    assert np.array_equal(np.stack(s.codes), sequential[0].codes)
    # once the stream is over the model is free again
    assert np.array_equal(tts.generate(JOBS[1][0], seed=JOBS[1][1], **KW).codes, sequential[1].codes)


def test_closing_a_stream_early_frees_the_model(tts, sequential):
    s = stream(tts, JOBS[0][0], seed=JOBS[0][1], normalize=False, **KW)
    next(s)
    assert tts.lock.busy
    s.close()
    assert not tts.lock.busy
    assert np.array_equal(tts.generate(JOBS[2][0], seed=JOBS[2][1], **KW).codes, sequential[2].codes)


def test_two_frames_generators_in_one_thread(tts, sequential):
    g = tts.frames(JOBS[0][0], seed=JOBS[0][1], **KW)
    first = next(g)
    with pytest.raises(EdgeTTSError, match="already generating in this thread"):
        tts.frames(JOBS[1][0], **KW)
    rest = list(g)                      # exhausted: released
    assert np.array_equal(np.stack([first, *rest]), sequential[0].codes)
    assert not tts.lock.busy
    g = tts.frames(JOBS[1][0], seed=JOBS[1][1], **KW)
    next(g)
    g.close()                           # closed early: released
    assert not tts.lock.busy


def test_another_thread_waits_for_an_open_stream(tts, sequential):
    s = stream(tts, JOBS[0][0], seed=JOBS[0][1], normalize=False, **KW)
    next(s)
    done = threading.Event()
    result = {}

    def other():
        result["res"] = tts.generate(JOBS[3][0], seed=JOBS[3][1], **KW)
        done.set()
    t = threading.Thread(target=other)
    t.start()
    assert not done.wait(0.5), "generate ran while a stream held the model"
    list(s)                             # stream finishes -> the other thread proceeds
    t.join(300)
    assert done.is_set()
    assert np.array_equal(result["res"].codes, sequential[3].codes)
