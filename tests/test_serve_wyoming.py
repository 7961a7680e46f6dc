"""`edgetts wyoming` with the real `wyoming` client (AsyncTcpClient) on the tiny model.

One test runs the CLI as a subprocess; the rest run the same service in-process (port from the
OS) so they can watch the engine's state. Audio must equal TTS.generate with the same seed.
"""
import asyncio
import json
import socket

import numpy as np
import pytest

pytest.importorskip("wyoming")
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.error import Error  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.server import AsyncTcpServer  # noqa: E402
from wyoming.tts import (Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop,  # noqa: E402
                         SynthesizeStopped, SynthesizeVoice)

from edgetts.serve.engine import Engine, Limits  # noqa: E402
from edgetts.serve.voices import Catalog, VoiceLibrary  # noqa: E402
from edgetts.serve.wyoming import WyomingTTS, complete_sentences  # noqa: E402
from edgetts.serve.wyoming import LANGUAGE_CODES  # noqa: E402
from conftest import SLOWDOWN  # noqa: E402
from serve_util import LANGUAGES, SPEAKERS, TINY, Server, assert_same_samples, s16  # noqa: E402

VOICE, OTHER_VOICE = SPEAKERS[:2]
LANG, OTHER_LANG = [lang for lang in LANGUAGES if lang in LANGUAGE_CODES][:2]   # server default, other

FRAMES = 12
SEED = 7
SILENCE = 0.05


@pytest.fixture(scope="module")
def tts():
    import edgetts
    return edgetts.load(TINY)


def ref(tts, text, language=LANG, speaker=VOICE, frames=FRAMES):
    return s16(tts.generate(text, speaker=speaker, language=language, seed=SEED, max_frames=frames,
                            min_frames=frames).audio)


def make_service(options, language=LANG):
    import edgetts
    model = edgetts.load(TINY)    # the server's own model, as in a real server process
    engine = Engine(model, Limits(max_queue=8, time_limit=60))
    catalog = Catalog(model, VoiceLibrary(None), language)
    return WyomingTTS(engine, catalog, base_options=options, sentence_silence=SILENCE)


@pytest.fixture(scope="module")
def service():
    svc = make_service({"seed": SEED, "max_frames": FRAMES, "min_frames": FRAMES})
    yield svc
    svc.engine.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(service, scenario):
    """Serve `service` on a free port for the duration of scenario(port)."""
    async def main():
        port = free_port()
        server = AsyncTcpServer("127.0.0.1", port)
        await server.start(service.handler)
        try:
            return await asyncio.wait_for(scenario(port), 120)
        finally:
            await server.stop()
    return asyncio.run(main())


async def read_audio(client) -> tuple[np.ndarray, list[str]]:
    """Events up to audio-stop: the int16 samples and the event types seen."""
    samples, types = [], []
    while True:
        event = await client.read_event()
        assert event is not None, "connection closed"
        types.append(event.type)
        if AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            assert (start.rate, start.width, start.channels) == (24000, 2, 1)
        elif AudioChunk.is_type(event.type):
            samples.append(np.frombuffer(AudioChunk.from_event(event).audio, "<i2"))
        elif AudioStop.is_type(event.type):
            return (np.concatenate(samples) if samples else np.zeros(0, np.int16)), types
        elif Error.is_type(event.type):
            raise AssertionError(f"error event: {event.data}")


def test_cli_server_describe_and_synthesize(tmp_path, tts):
    srv = Server("wyoming", ["-m", str(TINY), "--uri", "tcp://127.0.0.1:0", "--language", LANG,
                             "--seed", str(SEED), "--max-frames", str(FRAMES), "--min-frames", str(FRAMES)],
                 tmp_path / "wyoming.log")

    async def scenario():
        async with AsyncTcpClient(srv.host, srv.port) as c:
            await c.write_event(Describe().event())
            info = Info.from_event(await c.read_event())
            (program,) = info.tts
            assert program.supports_synthesize_streaming
            assert [v.name for v in program.voices] == tts.speakers
            assert all(v.languages == [LANGUAGE_CODES[lang] for lang in LANGUAGES] for v in program.voices)
            await c.write_event(Synthesize(text="Hello there, how are you?",
                                           voice=SynthesizeVoice(name=VOICE)).event())
            audio, types = await read_audio(c)
            assert types[0] == "audio-start" and types[-1] == "audio-stop"
            return audio
    try:
        audio = asyncio.run(asyncio.wait_for(scenario(), 120))
    finally:
        srv.stop()
    assert_same_samples(audio, ref(tts, "Hello there, how are you?"))


def test_synthesize_uses_the_server_language_and_maps_codes(service, tts):
    async def scenario(port):
        async with AsyncTcpClient("127.0.0.1", port) as c:
            await c.write_event(Synthesize(text="Good morning.").event())   # as Home Assistant: no voice
            default, _ = await read_audio(c)
            await c.write_event(Synthesize(text="Good morning.",
                                           voice=SynthesizeVoice(name=OTHER_VOICE, speaker=None)).event())
            other_voice, _ = await read_audio(c)
            code = LANGUAGE_CODES[OTHER_LANG]
            await c.write_event(Synthesize(text="Good morning.",
                                           voice=SynthesizeVoice(language=f"{code}-{code.upper()}")).event())
            other_lang, _ = await read_audio(c)
            return default, other_voice, other_lang
    default, other_voice, other_lang = run(service, scenario)
    assert_same_samples(default, ref(tts, "Good morning."))     # --language LANG, first speaker
    assert_same_samples(other_voice, ref(tts, "Good morning.", speaker=OTHER_VOICE))
    assert_same_samples(other_lang, ref(tts, "Good morning.", language=OTHER_LANG))


def test_streaming_text_is_spoken_sentence_by_sentence(service, tts):
    gap = int(round(SILENCE * 24000))

    async def scenario(port):
        async with AsyncTcpClient("127.0.0.1", port) as c:
            await c.write_event(SynthesizeStart(voice=SynthesizeVoice(name=VOICE)).event())
            await c.write_event(SynthesizeChunk(text="Hello there. Gen").event())
            first, _ = await read_audio(c)      # spoken before the rest of the text exists
            await c.write_event(SynthesizeChunk(text="eral Kenobi! You are").event())
            second, _ = await read_audio(c)
            await c.write_event(SynthesizeChunk(text=" a bold one").event())
            await c.write_event(Synthesize(text="Hello there. General Kenobi! You are a bold one").event())
            await c.write_event(SynthesizeStop().event())
            third, types = await read_audio(c)
            stopped = await c.read_event()
            return first, second, third, stopped
    first, second, third, stopped = run(service, scenario)
    assert_same_samples(first[:-gap], ref(tts, "Hello there."))
    assert not first[-gap:].any()
    assert_same_samples(second[:-gap], ref(tts, "General Kenobi!"))
    assert_same_samples(third, ref(tts, "You are a bold one"))   # the compat `synthesize` was ignored
    assert SynthesizeStopped.is_type(stopped.type)


@pytest.mark.parametrize("text,done,rest", [
    ("Hello there. Gen", ["Hello there."], "Gen"),
    ("Hello there.", [], "Hello there."),
    ("Hello there. ", ["Hello there."], ""),
    ("Pi is 3.", [], "Pi is 3."),
    ("Ask Dr. ", [], "Ask Dr. "),
    ("你好。世界", ["你好。"], "世界"),
])
def test_complete_sentences(text, done, rest):
    assert complete_sentences(text) == (done, rest)


def test_four_clients_at_once(service, tts):
    texts = ["One fish.", "Two fish.", "Red fish.", "Blue fish."]

    async def one(port, text):
        async with AsyncTcpClient("127.0.0.1", port) as c:
            await c.write_event(Synthesize(text=text).event())
            return (await read_audio(c))[0]

    async def scenario(port):
        return await asyncio.gather(*(one(port, t) for t in texts))
    for text, audio in zip(texts, run(service, scenario)):
        assert_same_samples(audio, ref(tts, text))


def test_bad_requests_get_error_events_and_garbage_closes(service, tts):
    async def raw_exchange(port, data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(data)
            await writer.drain()
            return await asyncio.wait_for(reader.read(), 30)   # until the server closes
        except ConnectionResetError:     # closed with our bytes unread: a reset, also a close
            return b""
        finally:
            writer.close()

    async def scenario(port):
        errors = []
        async with AsyncTcpClient("127.0.0.1", port) as c:
            for event in [Synthesize(text="Hi.", voice=SynthesizeVoice(name="nobody")).event(),
                          Synthesize(text="   ").event(),
                          SynthesizeChunk(text="no start").event(),
                          Synthesize(text="x" * 20_000).event()]:
                await c.write_event(event)
                reply = await c.read_event()
                assert Error.is_type(reply.type), reply
                errors.append(reply.data["text"])
            await c.write_event(Synthesize(text="Still here.").event())   # same connection still works
            audio, _ = await read_audio(c)
        closed = [await raw_exchange(port, data) for data in [
            b"\x00\xff\xfe garbage that is not json\n",
            b"[1, 2, 3]\n",
            json.dumps({"type": "synthesize", "data_length": 1 << 40}).encode() + b"\n",
            json.dumps({"type": "synthesize", "data_length": 5}).encode() + b"\n[1,2]",
            b"x" * 200_000,
        ]]
        async with AsyncTcpClient("127.0.0.1", port) as c:   # the server still serves
            await c.write_event(Synthesize(text="Still here.").event())
            after, _ = await read_audio(c)
        return errors, audio, closed, after
    errors, audio, closed, after = run(service, scenario)
    assert "nobody" in errors[0] and "empty" in errors[1] and "synthesize-start" in errors[2]
    assert "limit" in errors[3]
    assert closed == [b""] * 5          # closed without a reply
    assert_same_samples(audio, ref(tts, "Still here."))
    assert_same_samples(after, ref(tts, "Still here."))


def test_disconnect_mid_stream_frees_the_model():
    service = make_service({"seed": SEED})      # no frame cap: a long text runs for seconds
    engine = service.engine
    text = " ".join(["This sentence keeps the tiny model busy for a good while."] * 12)

    async def scenario(port):
        c = AsyncTcpClient("127.0.0.1", port)
        await c.connect()
        await c.write_event(Synthesize(text=text).event())
        while not AudioChunk.is_type((await c.read_event()).type):
            pass
        assert engine.state()["busy"]
        await c.disconnect()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while engine.state()["busy"] and loop.time() - t0 < 5 * SLOWDOWN:
            await asyncio.sleep(0.01)
        return loop.time() - t0
    try:
        took = run(service, scenario)
        state = engine.state()
    finally:
        engine.close()
    assert not state["busy"] and state["cancelled"] == 1 and state["served"] == 0
    assert took < 1.0 * SLOWDOWN, f"model still busy {took:.2f} s after the client left"
