"""Saved voices (edgetts.Voice files in --voices DIR) through both servers, on a Base model:
the audio equals TTS.generate(voice=...) with the same seed, and the catalogs list the voice."""
import asyncio

import numpy as np
import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("wyoming")
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.tts import Synthesize, SynthesizeVoice  # noqa: E402

from conftest import FIXTURES  # noqa: E402
from serve_util import Server, assert_same_samples, s16  # noqa: E402
from test_serve_wyoming import read_audio  # noqa: E402

BASE = FIXTURES / "tiny_clone"
FRAMES, SEED = 10, 5
TEXT = "Hello there, how are you?"


@pytest.fixture(scope="module")
def tts():
    import edgetts
    return edgetts.load(BASE)


@pytest.fixture(scope="module")
def voices(tts, tmp_path_factory):
    """Two saved voices: x-vector only, and in-context (x-vector + codes + transcript)."""
    d = tmp_path_factory.mktemp("voices")
    tts.clone_voice(BASE / "ref.wav").save(d / "plain.safetensors")
    tts.clone_voice(BASE / "ref.wav", ref_text="Good morning, how are you today?").save(d / "icl.safetensors")
    return d


def reference(tts, voices, name):
    from edgetts import Voice

    v = Voice.load(voices / f"{name}.safetensors")
    return s16(tts.generate(TEXT, voice=v, seed=SEED, max_frames=FRAMES, min_frames=FRAMES).audio)


def limits():
    return ["--seed", str(SEED), "--max-frames", str(FRAMES), "--min-frames", str(FRAMES)]


def test_openai_server_speaks_saved_voices(tts, voices, tmp_path):
    srv = Server("serve", ["-m", str(BASE), "--port", "0", "--voices", str(voices), *limits()], tmp_path / "s.log")
    try:
        c = openai.OpenAI(base_url=f"http://{srv.host}:{srv.port}/v1", api_key="unused", max_retries=0)
        listed = {v["name"]: v for v in c.get("/audio/voices", cast_to=object)["voices"]}
        assert {"plain", "icl"} <= set(listed)
        for name in ("plain", "icl"):
            with c.audio.speech.with_streaming_response.create(model="tts-1", voice=name, input=TEXT,
                                                               response_format="pcm",
                                                               extra_body={"seed": SEED}) as r:
                assert r.status_code == 200
                got = b"".join(r.iter_bytes())
            assert_same_samples(np.frombuffer(got, "<i2"), reference(tts, voices, name))
        with pytest.raises(openai.BadRequestError):   # a Base model has no named speakers
            c.audio.speech.create(model="tts-1", voice="nobody", input=TEXT, response_format="pcm")
    finally:
        srv.stop()


def test_wyoming_server_speaks_saved_voices(tts, voices, tmp_path):
    srv = Server("wyoming", ["-m", str(BASE), "--uri", "tcp://127.0.0.1:0", "--voices", str(voices), *limits()],
                 tmp_path / "w.log")

    async def scenario():
        async with AsyncTcpClient(srv.host, srv.port) as c:
            await c.write_event(Describe().event())
            info = Info.from_event(await c.read_event())
            assert {"plain", "icl"} <= {v.name for v in info.tts[0].voices}
            out = {}
            for name in ("plain", "icl"):
                await c.write_event(Synthesize(text=TEXT, voice=SynthesizeVoice(name=name)).event())
                out[name], _ = await read_audio(c)
            return out
    try:
        got = asyncio.run(asyncio.wait_for(scenario(), 120))
    finally:
        srv.stop()
    for name, audio in got.items():
        assert_same_samples(audio, reference(tts, voices, name))
