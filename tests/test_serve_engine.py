"""edgetts.serve.engine against the fake TTS: order, queue bound, cancellation, time limit, errors."""
import asyncio

import numpy as np
import pytest

from edgetts.errors import EdgeTTSError
from edgetts.serve.engine import Busy, Engine, InternalError, Limits, Request, TimeLimit
from edgetts.streaming import stream
from fake_tts import FakeTTS


class StreamingFake(FakeTTS):
    def stream(self, text, **kw):
        return stream(self, text, **kw)


async def collect(job):
    return np.concatenate([c async for c in job])


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_jobs_run_one_at_a_time_and_get_their_own_audio():
    tts = StreamingFake(frame_delay=0.002)
    engine = Engine(tts, Limits(max_queue=4))

    async def main():
        jobs = [engine.submit(Request("Hello there", {"seed": i, "max_frames": 6})) for i in range(5)]
        return await asyncio.gather(*(collect(j) for j in jobs))
    try:
        outs = run(main())
    finally:
        engine.close()
    for i, audio in enumerate(outs):
        np.testing.assert_array_equal(audio, tts.generate("Hello there", seed=i, max_frames=6)[1])
    assert engine.state() == {"busy": False, "queued": 0, "max_queue": 4, "served": 5, "failed": 0,
                              "cancelled": 0}


def test_queue_bound_busy_and_cancelling_a_waiting_job_frees_its_place():
    tts = StreamingFake(frame_delay=0.01)
    engine = Engine(tts, Limits(max_queue=1))

    async def main():
        running = engine.submit(Request("long", {"max_frames": 10_000}))
        while not engine.state()["busy"]:
            await asyncio.sleep(0.005)
        waiting = engine.submit(Request("short", {"max_frames": 3}))
        with pytest.raises(Busy) as e:
            engine.submit(Request("one too many", {"max_frames": 3}))
        assert e.value.retry_after >= 1
        waiting.cancel()                      # its client left: the place is free again
        again = engine.submit(Request("short", {"max_frames": 3}))
        running.cancel()
        return await collect(again)
    try:
        audio = run(main())
    finally:
        engine.close()
    assert audio.size == 3 * 1920
    st = engine.state()
    assert st["cancelled"] == 2 and st["served"] == 1
    assert len(tts.calls) == 2                # the cancelled waiting job never reached the model


def test_cancel_stops_the_model_after_the_frame_in_progress():
    tts = StreamingFake(frame_delay=0.01)
    engine = Engine(tts, Limits(max_queue=1))

    async def main():
        job = engine.submit(Request("long", {"max_frames": 10_000}))
        await job.__anext__()
        job.cancel()
        while engine.state()["busy"]:
            await asyncio.sleep(0.005)
    try:
        run(main())
    finally:
        engine.close()
    assert tts.closed == 1 and engine.state()["cancelled"] == 1


def test_time_limit_ends_a_request_with_an_error():
    tts = StreamingFake(frame_delay=0.01)
    engine = Engine(tts, Limits(max_queue=1, time_limit=0.2))

    async def main():
        job = engine.submit(Request("long", {"max_frames": 10_000}))
        chunks = []
        with pytest.raises(TimeLimit, match="0.2 s time limit"):
            async for c in job:
                chunks.append(c)
        return chunks
    try:
        chunks = run(main())
    finally:
        engine.close()
    assert chunks and sum(c.size for c in chunks) < 10_000 * 1920
    assert engine.state()["failed"] == 1 and not engine.state()["busy"]


def test_model_errors_reach_the_client_and_the_next_job_runs():
    tts = StreamingFake(fail_after=2)
    engine = Engine(tts, Limits())

    async def main():
        with pytest.raises(InternalError, match="model exploded"):
            await collect(engine.submit(Request("boom", {"max_frames": 5})))
        with pytest.raises(EdgeTTSError, match="no text"):
            await collect(engine.submit(Request("   ", {})))
        tts.fail_after = None
        return await collect(engine.submit(Request("fine", {"max_frames": 2})))
    try:
        assert run(main()).size == 2 * 1920
    finally:
        engine.close()


def test_limits_are_checked():
    with pytest.raises(EdgeTTSError, match="max-queue"):
        Limits(max_queue=-1)
    with pytest.raises(EdgeTTSError, match="time-limit"):
        Limits(time_limit=0)


def test_catalog_lists_speakers_and_saved_voice_files(tmp_path):
    from edgetts.serve.voices import Catalog, VoiceLibrary
    (tmp_path / "narrator.safetensors").write_bytes(b"")
    (tmp_path / "Ryan.safetensors").write_bytes(b"")     # a speaker's name: the speaker wins
    (tmp_path / "notes.txt").write_text("not a voice")
    (tmp_path / "folder.safetensors").mkdir()
    tts = StreamingFake()
    cat = Catalog(tts, VoiceLibrary(tmp_path), "english")
    assert cat.library.names() == ["Ryan", "narrator"]
    assert [(v["id"], v["kind"]) for v in cat.voices()] == [("ryan", "speaker"), ("vivian", "speaker"),
                                                           ("narrator", "saved")]
    assert cat.voice_options("Ryan") == {"speaker": "ryan"}
    assert cat.default_language == "english"
    for bad in ["nobody", "notes", "../narrator", "folder"]:
        with pytest.raises(EdgeTTSError, match="unknown voice"):
            cat.voice_options(bad)
    assert cat.library.path("narrator") == tmp_path / "narrator.safetensors"
    with pytest.raises(EdgeTTSError, match="unknown language"):
        cat.language("klingon")
