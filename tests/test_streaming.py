"""edgetts.streaming against a fake TTS: order, batching, joins, errors, early stop."""
import threading

import numpy as np
import pytest

from edgetts.errors import EdgeTTSError
from edgetts.streaming import stream
from conftest import TINY, TOL_AUDIO_ORDER
from fake_tts import FakeTTS


def test_stream_equals_one_shot_decode():
    tts = FakeTTS(frame_delay=0.002)
    s = stream(tts, "Hello there, how are you", max_frames=9, seed=3)
    audio = np.concatenate(list(s))
    codes, want = tts.generate("Hello there, how are you", max_frames=9, seed=3)
    np.testing.assert_array_equal(np.stack(s.codes), codes)
    np.testing.assert_array_equal(audio, want)
    assert audio.size == 9 * 1920
    t = s.timings
    assert t["frames"] == 9 and t["chunks"] == 1 and t["ttfa_s"] > 0 and t["rtf"] > 0
    assert t["speech_s"] == pytest.approx(9 * 0.08)


def test_first_push_is_one_frame_then_batches():
    tts = FakeTTS(frame_delay=0.0, codec_delay=0.01)  # every frame is ready at once: batches of 5 after the first
    s = stream(tts, "x", max_frames=20, max_batch=5)
    chunks = list(s)
    assert tts.pushes[0] == 1 and max(tts.pushes) <= 5 and sum(tts.pushes) == 20
    assert len(tts.pushes) < 20  # frames were batched
    assert [c.size for c in chunks] == [n * 1920 for n in tts.pushes]


def test_long_text_chunks_with_silence_and_same_settings():
    tts = FakeTTS()
    text = "First sentence is here. Second one follows it. Third."
    s = stream(tts, text, max_chunk_len=25, join_silence=0.1, speaker="ryan", seed=7)
    audio = np.concatenate(list(s))
    assert [c[0] for c in tts.calls] == ["First sentence is here.", "Second one follows it.", "Third."]
    assert all(c[1] == {"speaker": "ryan", "seed": 7} for c in tts.calls)
    parts = []
    for i, (text_i, kw) in enumerate(list(tts.calls)):
        if i:
            parts.append(np.zeros(2400, np.float32))
        parts.append(tts.generate(text_i, **kw)[1])
    np.testing.assert_array_equal(audio, np.concatenate(parts))
    assert s.timings["chunks"] == 3
    assert s.timings["audio_s"] == pytest.approx(s.timings["speech_s"] + 0.2)


def test_normalizes_text_by_language():
    tts = FakeTTS()
    list(stream(tts, "I have 3 cats.", language="english"))
    assert tts.calls[0][0] == "I have three cats."
    list(stream(tts, "I have 3 cats.", normalize=False))
    assert tts.calls[1][0] == "I have 3 cats."


def test_producer_error_is_raised_in_consumer():
    tts = FakeTTS(fail_after=3)
    s = stream(tts, "boom", max_frames=10)
    with pytest.raises(RuntimeError, match="model exploded"):
        list(s)


def test_empty_text_is_an_error():
    with pytest.raises(EdgeTTSError, match="no text"):
        stream(FakeTTS(), "  \n ")


def test_close_stops_producer():
    tts = FakeTTS(frame_delay=0.01)
    s = stream(tts, "a long one", max_frames=10_000)
    next(s)
    s.close()
    assert tts.closed == 1  # producer left the frames() generator
    assert not any(t.name == "edgetts-lm" and t.is_alive() for t in threading.enumerate())
    assert len(s.codes) < 10_000


def test_tiny_model_stream_matches_generate():
    """Real model (tiny fixture): streamed chunks == one-shot decode; sentence chunks + silence."""

    import edgetts
    tts = edgetts.load(TINY)
    kw = dict(seed=5, max_frames=4, min_frames=4)
    s = tts.stream("Hello there. General Kenobi!", max_chunk_len=15, join_silence=0.05, **kw)
    audio = np.concatenate(list(s))
    assert s.chunks == ["Hello there.", "General Kenobi!"] and s.chunk_frames == [4, 4]
    sil = int(0.05 * tts.sample_rate)
    assert audio.size == 8 * 1920 + sil
    first = tts.generate("Hello there.", **kw)
    np.testing.assert_array_equal(np.stack(s.codes[:4]), first.codes)
    np.testing.assert_allclose(audio[:4 * 1920], first.audio, atol=TOL_AUDIO_ORDER)
    assert np.all(audio[4 * 1920:4 * 1920 + sil] == 0)
    second = tts.generate("General Kenobi!", **kw)
    np.testing.assert_allclose(audio[-4 * 1920:], second.audio, atol=TOL_AUDIO_ORDER)


def test_cancel_from_another_thread_ends_the_stream_within_a_frame():
    """A server cancels while the consumer waits for frames: the producer stops after its frame
    in progress and the iterator ends (it must not wait forever for frames that never come)."""
    tts = FakeTTS(frame_delay=0.02)
    s = stream(tts, "a long one. And another one after it.", max_frames=10_000, min_batch=4)
    next(s)
    threading.Timer(0.05, s.cancel).start()
    rest = list(s)                      # returns once cancelled
    assert s.cancelled and tts.closed == 1
    assert len(tts.calls) == 1          # the second sentence never started
    assert sum(c.size for c in rest) == (len(s.codes) - 1) * 1920   # every produced frame was decoded
    assert len(s.codes) < 50
    assert not any(t.name == "edgetts-lm" and t.is_alive() for t in threading.enumerate())
