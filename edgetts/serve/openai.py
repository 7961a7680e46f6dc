"""OpenAI-compatible HTTP API (Starlette): POST /v1/audio/speech, GET /v1/models, /v1/audio/voices, /health.

    client = openai.OpenAI(base_url="http://127.0.0.1:8880/v1", api_key="unused")
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="ryan", input="Hello.", response_format="pcm") as r:
        for data in r.iter_bytes(): ...

Body: `model` (any name: one model serves them all), `input`, `voice` (a speaker of the model
or a saved voice in --voices; {"id": NAME} too), `response_format` (pcm = s16le mono at the
model rate, wav, flac, mp3, opus), `instructions`, `speed` (1.0 only), `stream_format`
(`audio`: the bytes as they are made; `sse`: `speech.audio.delta` events with base64 audio,
then `speech.audio.done`), and the edgetts extras `language` and `seed`.

The response starts once the first audio chunk exists (an error before it is a JSON error with
its status); a client that goes away cancels its request, waiting or running. Errors have
OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import time

from ..errors import EdgeTTSError
from .encode import FORMATS, Encoder
from .engine import Busy, Engine, InternalError, Request, TimeLimit
from .voices import Catalog

log = logging.getLogger("edgetts.serve")

MAX_BODY = 64 * 1024        # bytes of a request body
MAX_INPUT = 4096            # characters of `input` (OpenAI's own limit) and of `instructions`
MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
STREAM_FORMATS = ("audio", "sse")


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind, self.headers = kind, headers or {}

    def response(self):
        from starlette.responses import JSONResponse

        body = {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _field(body: dict, name: str, types, default=None, required: bool = False):
    if name not in body or body[name] is None:
        if required:
            raise ApiError(400, f"missing required parameter '{name}'", name, "missing_required_parameter")
        return default
    v = body[name]
    types = types if isinstance(types, tuple) else (types,)
    if not isinstance(v, types) or isinstance(v, bool):   # JSON true is not a number here
        want = " or ".join(t.__name__ for t in types)
        raise ApiError(400, f"'{name}' must be {want}, got {type(v).__name__}", name, "invalid_type")
    return v


class SpeechAPI:
    """The app's state: engine, voices, limits, key."""

    def __init__(self, engine: Engine, catalog: Catalog, *, model_id: str, api_key: str | None = None,
                 base_options: dict | None = None, max_input: int = MAX_INPUT, max_body: int = MAX_BODY):
        self.engine, self.catalog, self.model_id = engine, catalog, model_id
        self.api_key = api_key or None
        self.base_options = dict(base_options or {})
        self.max_input, self.max_body = int(max_input), int(max_body)
        self.sample_rate = engine.tts.sample_rate

    # -- request parsing -----------------------------------------------------------------------
    async def _body(self, request) -> dict:
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > self.max_body):
            raise ApiError(413, f"request body larger than {self.max_body} bytes", code="body_too_large")
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > self.max_body:
                raise ApiError(413, f"request body larger than {self.max_body} bytes", code="body_too_large")
        try:
            body = json.loads(bytes(data))
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"the body is not valid JSON ({e})", code="invalid_json") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object", code="invalid_json")
        return body

    def _speech_request(self, body: dict) -> tuple[Request, str, str]:
        _field(body, "model", str, required=True)
        text = _field(body, "input", str, required=True)
        if not text.strip():
            raise ApiError(400, "'input' is empty: nothing to say", "input", "empty_input")
        if len(text) > self.max_input:
            raise ApiError(400, f"'input' is {len(text)} characters; the limit is {self.max_input}",
                           "input", "input_too_long")
        voice = _field(body, "voice", (str, dict), required=True)
        if isinstance(voice, dict):
            voice = _field(voice, "id", str, required=True)
        fmt = _field(body, "response_format", str, "mp3")
        if fmt not in FORMATS:
            raise ApiError(400, f"unsupported response_format {fmt!r}; choose one of: {', '.join(FORMATS)}",
                           "response_format", "unsupported_format")
        stream_format = _field(body, "stream_format", str, "audio")
        if stream_format not in STREAM_FORMATS:
            raise ApiError(400, f"unsupported stream_format {stream_format!r}; choose one of: "
                                f"{', '.join(STREAM_FORMATS)}", "stream_format", "unsupported_format")
        speed = _field(body, "speed", (int, float), 1.0)
        if speed != 1.0:
            raise ApiError(400, f"speed {speed} is not supported; only 1.0", "speed", "unsupported_value")
        instructions = _field(body, "instructions", str)
        if instructions is not None and len(instructions) > self.max_input:
            raise ApiError(400, f"'instructions' is longer than {self.max_input} characters",
                           "instructions", "input_too_long")
        seed = _field(body, "seed", int)
        language = _field(body, "language", str)
        opts = dict(self.base_options)
        try:
            opts["language"] = (self.catalog.language(language) if language is not None
                                else self.catalog.default_language)
        except EdgeTTSError as e:
            raise ApiError(400, str(e), "language", "unknown_language") from None
        try:
            opts.update(self.catalog.voice_options(voice))
        except EdgeTTSError as e:
            raise ApiError(400, str(e), "voice", "unknown_voice") from None
        if instructions and instructions.strip():
            opts["instruct"] = instructions
        if seed is not None:
            opts["seed"] = seed
        return Request(text, opts), fmt, stream_format

    # -- endpoints -----------------------------------------------------------------------------
    async def speech(self, request):
        from starlette.responses import Response, StreamingResponse

        req, fmt, stream_format = self._speech_request(await self._body(request))
        try:
            enc = Encoder(fmt, self.sample_rate)
        except Exception as e:  # noqa: BLE001 - e.g. a libsndfile built without mp3
            raise ApiError(400, f"response_format {fmt!r} is not available here ({e})", "response_format",
                           "unsupported_format") from None
        try:
            job = self.engine.submit(req)
        except Busy as e:
            enc.close()
            raise _api_error(e) from None
        t0 = time.perf_counter()
        try:
            first = await _until_disconnect(request, job.__anext__())
        except StopAsyncIteration:
            first = None
        except BaseException as e:
            job.cancel()
            enc.close()
            raise _api_error(e) from None
        if first is _GONE:                    # the client left while its request waited or started
            job.cancel()
            enc.close()
            return Response(status_code=499)
        log.info("%s: first audio after %.0f ms", request.url.path, 1000 * (time.perf_counter() - t0))
        body = self._chunks(job, first, enc) if stream_format == "audio" else self._sse(job, first, enc)
        media = enc.media_type if stream_format == "audio" else "text/event-stream"
        return StreamingResponse(body, media_type=media, headers={"Cache-Control": "no-store"})

    async def _chunks(self, job, first, enc):
        """Encoded bytes of the job's audio; the job is cancelled if this stops early.

        An error after the response has started (time limit, model failure) aborts the
        connection: the client sees a cut response, never a short file that looks whole."""
        try:
            if first is not None:
                data = enc.push(first)
                if data:
                    yield data
            async for chunk in job:
                data = enc.push(chunk)
                if data:
                    yield data
            data = enc.finish()
            if data:
                yield data
        finally:
            job.cancel()  # no-op once finished; frees the model if the client went away
            enc.close()

    async def _sse(self, job, first, enc):
        try:
            async for data in self._chunks(job, first, enc):
                yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")})
        except EdgeTTSError as e:        # after the start: an error event ends the stream
            err = _api_error(e)
            yield _event({"type": "error", "error": {"message": err.message, "type": err.kind,
                                                     "param": None, "code": err.code}})
            return
        # usage as OpenAI reports it; here: input characters and audio frames (80 ms each)
        n_in, n_out = len(job.request.text), int(job.timings.get("frames") or 0)
        yield _event({"type": "speech.audio.done",
                      "usage": {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out}})

    async def models(self, request):
        ids = [self.model_id, *MODEL_ALIASES]
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "edgetts"} for i in ids]
        return _json({"object": "list", "data": data})

    async def voices(self, request):
        return _json({"object": "list", "voices": self.catalog.voices()})

    async def health(self, request):
        return _json({"status": "ok", "model": self.model_id, "model_type": self.engine.tts.model_type,
                      "sample_rate": self.sample_rate, **self.engine.state()})

    # -- app -----------------------------------------------------------------------------------
    def app(self):
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.middleware import Middleware
        from starlette.routing import Route

        async def on_api_error(request, exc: ApiError):
            return exc.response()

        async def on_http_error(request, exc: HTTPException):
            return ApiError(exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404
                            else None).response()

        async def on_error(request, exc: Exception):
            log.exception("internal error")
            return ApiError(500, f"internal error: {type(exc).__name__}", kind="server_error").response()

        routes = [Route("/v1/audio/speech", self.speech, methods=["POST"]),
                  Route("/v1/models", self.models, methods=["GET"]),
                  Route("/v1/audio/voices", self.voices, methods=["GET"]),
                  Route("/health", self.health, methods=["GET"])]
        return Starlette(routes=routes, middleware=[Middleware(_Auth, api_key=self.api_key)],
                         exception_handlers={ApiError: on_api_error, HTTPException: on_http_error,
                                             Exception: on_error})


class _Auth:
    """ASGI middleware: with an API key, every request needs `Authorization: Bearer KEY`."""

    def __init__(self, app, api_key: str | None):
        self.app, self.api_key = app, api_key

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.api_key:
            got = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = got.partition(" ")
            key_ok = hmac.compare_digest(token.strip().encode(), self.api_key.encode())
            if scheme.lower() != "bearer" or not key_ok:
                msg = ("missing API key: send 'Authorization: Bearer KEY'" if not got
                       else "incorrect API key")
                resp = ApiError(401, msg, code="invalid_api_key",
                                headers={"WWW-Authenticate": "Bearer"}).response()
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _api_error(e: BaseException) -> ApiError:
    if isinstance(e, Busy):
        return ApiError(503, str(e), code="server_busy", kind="server_error",
                        headers={"Retry-After": str(e.retry_after)})
    if isinstance(e, TimeLimit):
        return ApiError(504, str(e), code="time_limit", kind="server_error")
    if isinstance(e, InternalError):
        return ApiError(500, str(e), kind="server_error")
    if isinstance(e, EdgeTTSError):
        return ApiError(400, str(e), code="invalid_request")
    if isinstance(e, asyncio.CancelledError):
        raise e
    return ApiError(500, f"internal error: {type(e).__name__}", kind="server_error")


_GONE = object()


async def _until_disconnect(request, awaitable):
    """Await `awaitable`, unless the client disconnects first (then _GONE)."""
    work = asyncio.ensure_future(awaitable)

    async def gone():
        while True:
            msg = await request.receive()
            if msg["type"] == "http.disconnect":
                return

    watch = asyncio.ensure_future(gone())
    try:
        done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if work in done:
        return work.result()
    work.cancel()
    return _GONE


def _event(obj) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _json(obj):
    from starlette.responses import JSONResponse

    return JSONResponse(obj)
