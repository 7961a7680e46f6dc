"""`edgetts serve` as a real subprocess on the tiny model, driven by the official `openai` client.

Audio must equal TTS.generate with the same seed (pcm / wav / flac to the int16 step; mp3 and
opus, lossy, by length and correlation); the queue, cancellation on disconnect, auth, bad input
and an RSS check run against live servers.
"""
import base64
import http.client
import io
import json
import threading
import time

import numpy as np
import pytest
import soundfile as sf

openai = pytest.importorskip("openai")

from conftest import EMULATED  # noqa: E402
from serve_util import (FIXTURES, LANGUAGES, SPEAKERS, TINY, Server, assert_same_samples,  # noqa: E402
                        best_correlation, s16)

VOICE, OTHER_VOICE = SPEAKERS[:2]

FRAMES = 12
SPF = 1920
TEXT = "Hello there, how are you?"
LONG = " ".join(f"Sentence number {w} is here to keep the model talking for a while." for w in
                ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"])


@pytest.fixture(scope="module")
def tts():
    import edgetts
    return edgetts.load(TINY)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server("serve", ["-m", str(TINY), "--port", "0", "--max-frames", str(FRAMES), "--min-frames",
                         str(FRAMES), "--max-input", "300", "--max-queue", "8"],
               tmp_path_factory.mktemp("serve") / "server.log")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    """No frame cap (long jobs run for seconds) and room for one waiting request."""
    s = Server("serve", ["-m", str(TINY), "--port", "0", "--max-queue", "1"],
               tmp_path_factory.mktemp("serve") / "slow.log")
    yield s
    s.stop()


def client(srv, key="unused", **kw):
    return openai.OpenAI(base_url=f"http://{srv.host}:{srv.port}/v1", api_key=key, max_retries=0, **kw)


def speech(srv, text=TEXT, voice=VOICE, fmt="pcm", seed=7, key="unused", **extra) -> bytes:
    body = {"seed": seed, **extra.pop("extra_body", {})}
    with client(srv, key).audio.speech.with_streaming_response.create(
            model="tts-1", voice=voice, input=text, response_format=fmt, extra_body=body, **extra) as r:
        assert r.status_code == 200
        return b"".join(r.iter_bytes())


def reference(tts, text=TEXT, seed=7, frames=FRAMES, **kw):
    lim = dict(max_frames=frames, min_frames=frames) if frames else {}
    return tts.generate(text, speaker=kw.pop("speaker", VOICE), language="auto", seed=seed, **lim, **kw).audio


def raw(srv, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    r = conn.getresponse()
    out = r.status, dict(r.getheaders()), r.read()
    conn.close()
    return out


def health(srv, **headers):
    status, _, body = raw(srv, "GET", "/health", headers=headers)
    assert status == 200, body
    return json.loads(body)


# -- audio equals TTS.generate ---------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["pcm", "wav", "flac"])
def test_lossless_formats_equal_generate(server, tts, fmt):
    data = speech(server, fmt=fmt)
    want = s16(reference(tts))
    if fmt == "pcm":
        got = np.frombuffer(data, "<i2")
    else:
        got, sr = sf.read(io.BytesIO(data), dtype="int16")
        assert sr == tts.sample_rate
    assert want.size == FRAMES * SPF
    assert_same_samples(got, want)


@pytest.mark.parametrize("fmt", ["mp3", "opus"])
def test_lossy_formats_decode_to_the_same_speech(server, tts, fmt):
    got, sr = sf.read(io.BytesIO(speech(server, fmt=fmt)), dtype="float32")
    want = np.clip(reference(tts), -1, 1)
    assert sr == tts.sample_rate
    assert want.size <= got.size <= want.size + 3000   # mp3 keeps the encoder delay and padding
    corr, _ = best_correlation(got, want)
    assert corr > 0.75, corr   # tiny random-model audio is noise-like: hard for lossy codecs
    other, _ = best_correlation(got, np.clip(reference(tts, seed=8), -1, 1))
    assert other < corr - 0.2   # a different seed is different audio: the check can fail


@pytest.mark.parametrize("fmt", ["pcm", "wav"])
def test_sse_deltas_carry_the_same_audio(server, tts, fmt):
    with client(server).audio.speech.with_streaming_response.create(
            model="tts-1", voice=VOICE, input=TEXT, response_format=fmt, stream_format="sse",
            extra_body={"seed": 7}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = b"".join(r.iter_bytes()).decode()
    events = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: ")]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["output_tokens"] == FRAMES
    data = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    got = np.frombuffer(data, "<i2") if fmt == "pcm" else sf.read(io.BytesIO(data), dtype="int16")[0]
    assert_same_samples(got, s16(reference(tts)))


def test_voice_language_and_seed_reach_the_model(server, tts):
    lang = LANGUAGES[-1]
    got = np.frombuffer(speech(server, voice=OTHER_VOICE, seed=11, extra_body={"language": lang}), "<i2")
    want = tts.generate(TEXT, speaker=OTHER_VOICE, language=lang, seed=11, max_frames=FRAMES,
                        min_frames=FRAMES).audio
    assert_same_samples(got, s16(want))
    assert np.max(np.abs(got.astype(np.int32) - s16(reference(tts)))) > 100  # not the default voice


def test_models_voices_health(server, tts):
    c = client(server)
    ids = [m.id for m in c.models.list()]
    assert "tts-1" in ids and TINY.name in ids
    status, _, body = raw(server, "GET", "/v1/audio/voices")
    voices = json.loads(body)["voices"]
    assert [v["id"] for v in voices] == tts.speakers
    assert all(set(v["languages"]) == set(tts.languages) - {"auto"} for v in voices)
    h = health(server)
    assert h["status"] == "ok" and h["sample_rate"] == tts.sample_rate and h["busy"] in (True, False)


# -- load ------------------------------------------------------------------------------------------

def test_eight_concurrent_clients_get_their_own_audio(server, tts):
    fmts = ["pcm", "wav", "flac", "pcm", "wav", "flac", "pcm", "wav"]
    results: dict = {}

    def one(i):
        try:
            results[i] = speech(server, fmt=fmts[i], seed=100 + i)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i in range(8):
        assert not isinstance(results[i], Exception), results[i]
        data = results[i]
        got = np.frombuffer(data, "<i2") if fmts[i] == "pcm" else sf.read(io.BytesIO(data), dtype="int16")[0]
        assert_same_samples(got, s16(reference(tts, seed=100 + i)))


def _open_stream(srv, text=LONG, seed=1):
    """A streaming request whose response has started (the model is busy with it)."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
    conn.request("POST", "/v1/audio/speech", body=json.dumps(
        {"model": "tts-1", "input": text, "voice": VOICE, "response_format": "pcm", "seed": seed}),
        headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200
    assert len(r.read1(4096)) > 0
    return conn, r


def _wait(srv, cond, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        h = health(srv)
        if cond(h):
            return h, time.monotonic() - t0
        time.sleep(0.01)
    raise AssertionError(f"server state never got there: {health(srv)}")


def test_disconnect_mid_stream_frees_the_model(slow_server):
    before = health(slow_server)
    conn, r = _open_stream(slow_server)
    assert health(slow_server)["busy"]
    r.close()
    conn.close()
    h, took = _wait(slow_server, lambda h: not h["busy"], 5.0)
    assert took < 1.0, f"model still busy {took:.2f} s after the client left"
    assert h["cancelled"] == before["cancelled"] + 1 and h["served"] == before["served"]


def test_a_waiting_client_that_leaves_gives_up_its_place(slow_server):
    import socket
    conn, r = _open_stream(slow_server, seed=3)          # running
    before = health(slow_server)
    body = json.dumps({"model": "tts-1", "input": "Hello there.", "voice": VOICE, "response_format": "pcm"})
    with socket.create_connection((slow_server.host, slow_server.port)) as s:
        s.sendall(f"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        _wait(slow_server, lambda h: h["queued"] == 1, 30)
    h, _ = _wait(slow_server, lambda h: h["queued"] == 0, 5)
    assert h["busy"] and h["cancelled"] == before["cancelled"] + 1   # left the queue, never ran
    r.close()
    conn.close()
    _wait(slow_server, lambda h: not h["busy"], 5)


def test_full_queue_gets_503_and_the_rest_still_work(slow_server, tts):
    conn, r = _open_stream(slow_server, seed=2)          # running
    queued: dict = {}
    t = threading.Thread(target=lambda: queued.setdefault("data", speech(slow_server, "Hello there.", seed=5)))
    t.start()                                            # waiting (--max-queue 1)
    _wait(slow_server, lambda h: h["queued"] == 1, 30)
    with pytest.raises(openai.APIStatusError) as e:
        speech(slow_server, "One too many.")
    assert e.value.status_code == 503
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert e.value.body["code"] == "server_busy" and e.value.body["type"] == "server_error"
    r.close()
    conn.close()                                          # frees the model for the waiting one
    t.join(120)
    got = np.frombuffer(queued["data"], "<i2")
    assert_same_samples(got, s16(reference(tts, "Hello there.", seed=5, frames=None)))
    _wait(slow_server, lambda h: not h["busy"] and h["queued"] == 0, 30)
    assert slow_server.alive()


@pytest.mark.skipif(bool(EMULATED), reason="qemu-user keeps ~0.24 MB per exited guest thread (600 empty "
                    "threads: +145 MB under qemu, +0 natively) and every stream runs its LM on a new thread")
def test_rss_stays_flat_over_sequential_requests(server):
    body = json.dumps({"model": "tts-1", "input": "Hi there.", "voice": VOICE, "response_format": "wav"})
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)

    def run(n):
        for _ in range(n):
            conn.request("POST", "/v1/audio/speech", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            assert r.status == 200 and len(r.read()) > 44
    run(20)                     # warm-up: allocator pools, caches
    start = server.rss_mb
    run(100)
    conn.close()
    assert server.rss_mb - start < 20, (start, server.rss_mb)


# -- auth ------------------------------------------------------------------------------------------

def test_api_key_from_the_environment(tmp_path, tts):
    srv = Server("serve", ["-m", str(TINY), "--port", "0", "--max-frames", "4", "--min-frames", "4"],
                 tmp_path / "auth.log", env={"EDGETTS_API_KEY": "sekret"})
    try:
        with pytest.raises(openai.AuthenticationError) as e:
            speech(srv, key="wrong")
        assert e.value.status_code == 401 and e.value.body["code"] == "invalid_api_key"
        for path, method in [("/v1/audio/speech", "POST"), ("/v1/models", "GET"), ("/health", "GET")]:
            status, headers, body = raw(srv, method, path, {"model": "tts-1", "input": "Hi.", "voice": VOICE})
            assert status == 401 and json.loads(body)["error"]["type"] == "invalid_request_error"
            assert not headers.get("Content-Type", "").startswith("audio")
        got = np.frombuffer(speech(srv, key="sekret"), "<i2")
        assert_same_samples(got, s16(reference(tts, frames=4)))
    finally:
        srv.stop()


# -- bad input -------------------------------------------------------------------------------------

GOOD = {"model": "tts-1", "input": "Hi.", "voice": VOICE, "response_format": "pcm"}
BAD = [
    (b"{not json", 400, "invalid_json"),
    (b"\xff\xfe\x00garbage", 400, "invalid_json"),
    ([1, 2, 3], 400, "invalid_json"),
    ({**GOOD, "input": 123}, 400, "invalid_type"),
    ({**GOOD, "voice": 5}, 400, "invalid_type"),
    ({**GOOD, "seed": "x"}, 400, "invalid_type"),
    ({**GOOD, "speed": "fast"}, 400, "invalid_type"),
    ({k: v for k, v in GOOD.items() if k != "input"}, 400, "missing_required_parameter"),
    ({**GOOD, "voice": "nobody"}, 400, "unknown_voice"),
    ({**GOOD, "response_format": "aac"}, 400, "unsupported_format"),
    ({**GOOD, "stream_format": "websocket"}, 400, "unsupported_format"),
    ({**GOOD, "language": "klingon"}, 400, "unknown_language"),
    ({**GOOD, "input": "   "}, 400, "empty_input"),
    ({**GOOD, "input": "a" * 301}, 400, "input_too_long"),
    ({**GOOD, "speed": 1.5}, 400, "unsupported_value"),
    ({**GOOD, "input": "x" * 70_000}, 413, "body_too_large"),
]


@pytest.mark.parametrize("body,status,code", BAD, ids=[c for _, _, c in BAD])
def test_bad_input_gets_an_openai_error_and_the_server_stays_up(server, body, status, code):
    got, headers, data = raw(server, "POST", "/v1/audio/speech", body)
    assert got == status, data
    err = json.loads(data)["error"]
    assert err["code"] == code and err["type"] == "invalid_request_error"
    assert isinstance(err["message"], str) and "\n" not in err["message"]
    status, _, audio = raw(server, "POST", "/v1/audio/speech", GOOD)
    assert status == 200 and len(audio) == 2 * FRAMES * SPF


def test_client_errors_through_the_openai_client(server):
    with pytest.raises(openai.BadRequestError) as e:
        speech(server, voice="nobody")
    assert "nobody" in e.value.body["message"] and e.value.body["param"] == "voice"
    with pytest.raises(openai.BadRequestError) as e:
        speech(server, speed=2.0)
    assert e.value.body["param"] == "speed"
    status, _, body = raw(server, "GET", "/v1/nothing")
    assert status == 404 and "error" in json.loads(body)


# -- command line ----------------------------------------------------------------------------------

def _cli_error(*args):
    import os
    import subprocess
    import sys

    from serve_util import ROOT
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "edgetts.cli", *args], capture_output=True, timeout=120,
                       env=env, cwd=ROOT)
    err = r.stderr.decode()
    lines = [line for line in err.splitlines() if line.strip()]
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("edgetts: error:"), err
    return lines[0]


def test_command_line_errors_are_one_line(tmp_path):
    import socket
    assert "max-queue" in _cli_error("serve", "-m", str(TINY), "--max-queue", "-1")
    assert "not a folder" in _cli_error("serve", "-m", str(TINY), "--voices", str(tmp_path / "none"))
    assert "--uri" in _cli_error("wyoming", "-m", str(TINY), "--uri", "bogus://x")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert "cannot listen" in _cli_error("serve", "-m", str(TINY), "--port", str(port))


def test_time_limit_cuts_a_stream_and_the_server_goes_on(tmp_path):
    srv = Server("serve", ["-m", str(TINY), "--port", "0", "--time-limit", "0.3"], tmp_path / "limit.log")
    try:
        conn, r = _open_stream(srv)                      # audio: the response is cut, not ended
        with pytest.raises(http.client.IncompleteRead):
            r.read()
        conn.close()
        status, _, body = raw(srv, "POST", "/v1/audio/speech", {"model": "tts-1", "input": LONG, "voice": VOICE,
                                                               "response_format": "pcm", "stream_format": "sse"})
        assert status == 200
        last = json.loads(body.decode().strip().split("\n\n")[-1][6:])
        assert last["type"] == "error" and last["error"]["code"] == "time_limit"
        h = _wait(srv, lambda h: not h["busy"], 30)[0]
        assert h["failed"] == 2 and srv.alive()
    finally:
        srv.stop()


def test_voice_design_takes_the_voice_from_instructions(tmp_path):
    import edgetts
    vd_dir = FIXTURES / "tiny_vd"
    vd = edgetts.load(vd_dir)
    srv = Server("serve", ["-m", str(vd_dir), "--port", "0", "--max-frames", "6", "--min-frames", "6"],
                 tmp_path / "vd.log")
    try:
        calm = np.frombuffer(speech(srv, voice="alloy", instructions="A calm, deep voice."), "<i2")
        bright = np.frombuffer(speech(srv, voice="alloy", instructions="A bright, fast voice."), "<i2")
        status, _, body = raw(srv, "GET", "/v1/audio/voices")
        assert json.loads(body)["voices"] == []
    finally:
        srv.stop()
    kw = dict(language="auto", seed=7, max_frames=6, min_frames=6)
    assert_same_samples(calm, s16(vd.generate(TEXT, instruct="A calm, deep voice.", **kw).audio))
    assert_same_samples(bright, s16(vd.generate(TEXT, instruct="A bright, fast voice.", **kw).audio))
    assert np.max(np.abs(calm.astype(np.int32) - bright)) > 100
