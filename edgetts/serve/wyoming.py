"""Wyoming protocol TTS service (Home Assistant), on the `wyoming` package's AsyncServer.

As wyoming-piper does it:
  describe                      -> info: the TTS program and its voices (speakers and saved
                                   voices), with language codes; streaming supported
  synthesize                    -> audio-start, audio-chunk... (16-bit mono at the model rate),
                                   audio-stop; chunks leave as the model makes them
  synthesize-start / -chunk / -stop
                                -> each sentence is spoken as soon as it is complete (its own
                                   audio-start ... audio-stop, then `sentence_silence` seconds),
                                   the rest at synthesize-stop, then synthesize-stopped
A `synthesize` inside a started stream is ignored (clients send it for old servers).

Home Assistant sends no language: the server's default (--language) applies; a language code it
sends ("en", "de-DE") maps to the model's language name. Bad requests get an `error` event and
the connection stays; bytes that are not Wyoming events close the connection. A client that
goes away cancels its request.
"""
from __future__ import annotations

import asyncio
import json
import logging

import numpy as np

from .. import __version__
from ..audio import to_s16le
from ..errors import EdgeTTSError
from ..text.chunk import split_sentences
from .engine import Busy, Engine, Request
from .voices import Catalog

log = logging.getLogger("edgetts.serve")

# ISO 639-1 codes of Qwen3-TTS's language names (Wyoming and Home Assistant speak codes)
LANGUAGE_CODES = {"english": "en", "chinese": "zh", "japanese": "ja", "korean": "ko", "german": "de",
                  "french": "fr", "russian": "ru", "portuguese": "pt", "spanish": "es", "italian": "it"}
MAX_EVENT_BYTES = 1 << 20   # data + payload of one incoming event
MAX_TEXT = 10_000           # characters of text per synthesize / per unfinished sentence
PROGRAM_URL = "https://github.com/QwenLM/Qwen3-TTS"


class WyomingTTS:
    """Shared by every connection: engine, voices, defaults and the `info` answer."""

    def __init__(self, engine: Engine, catalog: Catalog, *, default_voice: str | None = None,
                 base_options: dict | None = None, sentence_silence: float = 0.0, max_text: int = MAX_TEXT):
        self.engine, self.catalog = engine, catalog
        self.sample_rate = engine.tts.sample_rate
        self.base_options = dict(base_options or {})
        self.sentence_silence = float(sentence_silence)
        self.max_text = int(max_text)
        if default_voice is not None:
            catalog.voice_options(default_voice)  # unknown: fail at start
        self.default_voice = default_voice
        self._handler_class = None

    def info(self):
        from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

        attribution = Attribution(name="Qwen3-TTS (Alibaba Qwen), edgetts", url=PROGRAM_URL)
        voices = [TtsVoice(name=v["id"], description=f"{v['id']} ({v['kind']})", attribution=attribution,
                           installed=True, version=None,
                           languages=[LANGUAGE_CODES.get(lang, lang) for lang in v["languages"]])
                  for v in self.catalog.voices()]
        if not voices:  # VoiceDesign: one voice, described by nothing here
            langs = [LANGUAGE_CODES.get(lang, lang) for lang in self.catalog.tts.languages if lang != "auto"]
            voices = [TtsVoice(name="default", description="the model's voice", attribution=attribution,
                               installed=True, version=None, languages=langs)]
        program = TtsProgram(name="edgetts", description="Qwen3-TTS on CPU (edgetts)",
                             attribution=attribution, installed=True, version=__version__,
                             voices=voices, supports_synthesize_streaming=True)
        return Info(tts=[program])

    def language(self, requested) -> str:
        """The model's language for a Wyoming language (code or name); the default when unknown."""
        if not requested:
            return self.catalog.default_language
        want = str(requested).strip().lower()
        names = {code: name for name, code in LANGUAGE_CODES.items()}
        for cand in (want, want.replace("_", "-").split("-")[0]):
            lang = names.get(cand, cand)
            if lang in self.catalog.tts.languages:
                return lang
        log.info("language %r is not the model's; using %s", requested, self.catalog.default_language)
        return self.catalog.default_language

    def request(self, text: str, voice) -> Request:
        name = getattr(voice, "name", None) or self.default_voice
        if name == "default" and not self.catalog.voices():
            name = None
        opts = dict(self.base_options)
        opts["language"] = self.language(getattr(voice, "language", None))
        opts.update(self.catalog.voice_options(name))
        return Request(text, opts)

    def handler(self, reader, writer):
        """The handler factory for wyoming's AsyncServer.run."""
        if self._handler_class is None:
            self._handler_class = make_handler_class()
        return self._handler_class(self, reader, writer)


def complete_sentences(text: str) -> tuple[list[str], str]:
    """(sentences known to be complete, the unfinished rest) of streamed text.

    A sentence is complete once a capitalized word after it would start a new one
    (split_sentences decides: "Dr." or "3." then more text is not an end)."""
    parts = split_sentences(text)
    if not parts:
        return [], text
    if len(split_sentences(text + "A")) > len(parts):
        return parts, ""
    rest = parts[-1]
    return parts[:-1], rest if not text[-1:].isspace() else rest + " "


def make_handler_class():
    """The AsyncEventHandler subclass (built lazily: `wyoming` is an optional dependency)."""
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.error import Error
    from wyoming.event import Event
    from wyoming.info import Describe
    from wyoming.server import AsyncEventHandler
    from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

    class _Handler(AsyncEventHandler):
        def __init__(self, service: WyomingTTS, reader, writer):
            super().__init__(reader, writer)
            self.service = service
            self.stream_voice = None
            self.streaming = False
            self.pending = ""
            self.job = None

        # -- connection ------------------------------------------------------------------------
        async def run(self) -> None:
            """As AsyncEventHandler.run, with size limits; bad bytes close the connection."""
            try:
                while True:
                    event = await read_event(self.reader)
                    if event is None or not await self.handle_event(event):
                        break
            except (ValueError, ConnectionError, asyncio.IncompleteReadError) as e:
                log.info("wyoming: closing connection: %s", e)
            finally:
                await self.disconnect()
                self.writer.close()

        async def disconnect(self) -> None:
            if self.job is not None:
                self.job.cancel()

        # -- events ----------------------------------------------------------------------------
        async def handle_event(self, event: Event) -> bool:
            try:
                if Describe.is_type(event.type):
                    await self.write_event(self.service.info().event())
                elif Synthesize.is_type(event.type):
                    if not self.streaming:   # inside a stream it only repeats the text for old servers
                        syn = Synthesize.from_event(event)
                        await self.speak(self._text(syn.text), syn.voice)
                elif SynthesizeStart.is_type(event.type):
                    self.stream_voice = SynthesizeStart.from_event(event).voice
                    self.streaming, self.pending = True, ""
                elif SynthesizeChunk.is_type(event.type):
                    if not self.streaming:
                        raise EdgeTTSError("synthesize-chunk without synthesize-start")
                    self.pending += _str(event.data.get("text"), "text")
                    done, self.pending = complete_sentences(self.pending)
                    if len(self.pending) > self.service.max_text:
                        raise EdgeTTSError(f"a sentence longer than {self.service.max_text} characters")
                    for sentence in done:
                        await self.speak(sentence, self.stream_voice, silence=True)
                elif SynthesizeStop.is_type(event.type):
                    if not self.streaming:
                        raise EdgeTTSError("synthesize-stop without synthesize-start")
                    rest, self.pending, self.streaming = self.pending.strip(), "", False
                    if rest:
                        await self.speak(rest, self.stream_voice)
                    await self.write_event(SynthesizeStopped().event())
                return True
            except EdgeTTSError as e:
                code = "busy" if isinstance(e, Busy) else type(e).__name__
                await self.write_event(Error(text=str(e), code=code).event())
                return True
            except (ConnectionError, asyncio.CancelledError):
                raise
            except Exception as e:  # noqa: BLE001 - a malformed event (missing or wrong fields)
                log.info("wyoming: bad %s event: %r", event.type, e)
                await self.write_event(Error(text=f"bad {event.type} event: {type(e).__name__}: {e}",
                                             code="bad_event").event())
                return True

        def _text(self, text) -> str:
            text = _str(text, "text")
            if len(text) > self.service.max_text:
                raise EdgeTTSError(f"text is {len(text)} characters; the limit is {self.service.max_text}")
            if not text.strip():
                raise EdgeTTSError("empty text: nothing to say")
            return text

        async def speak(self, text: str, voice, *, silence: bool = False) -> None:
            """audio-start, audio-chunk as the model makes them, (silence,) audio-stop."""
            svc = self.service
            request = svc.request(text, voice)       # EdgeTTSError: unknown voice
            self.job = job = svc.engine.submit(request)
            fmt = dict(rate=svc.sample_rate, width=2, channels=1)
            try:
                await self.write_event(AudioStart(**fmt).event())
                async for chunk in job:
                    await self.write_event(AudioChunk(audio=to_s16le(chunk), **fmt).event())
                    if self.reader.at_eof():            # the client hung up
                        raise ConnectionResetError("client went away")
                if silence and svc.sentence_silence > 0:
                    gap = np.zeros(int(round(svc.sentence_silence * svc.sample_rate)), np.float32)
                    await self.write_event(AudioChunk(audio=to_s16le(gap), **fmt).event())
                await self.write_event(AudioStop().event())
            finally:
                job.cancel()    # no-op once finished
                self.job = None

    return _Handler


async def read_event(reader):
    """One Wyoming event (wyoming.event.async_read_event with size limits), None at the end.

    Raises ValueError on anything that is not a well-formed event."""
    from wyoming.event import Event

    line = await reader.readline()          # the reader's limit caps the header line
    if not line:
        return None
    header = json.loads(line)
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ValueError("not a Wyoming event header")
    data = header.get("data") or {}
    sizes = [header.get("data_length") or 0, header.get("payload_length") or 0]
    if not isinstance(data, dict) or any(not isinstance(n, int) or n < 0 for n in sizes):
        raise ValueError("malformed Wyoming event header")
    if sum(sizes) > MAX_EVENT_BYTES:
        raise ValueError(f"event larger than {MAX_EVENT_BYTES} bytes")
    if sizes[0]:
        extra = json.loads(await reader.readexactly(sizes[0]))
        if not isinstance(extra, dict):
            raise ValueError("event data is not a JSON object")
        data.update(extra)
    payload = await reader.readexactly(sizes[1]) if sizes[1] else None
    return Event(type=header["type"], data=data, payload=payload)


def _str(v, name: str) -> str:
    if not isinstance(v, str):
        raise EdgeTTSError(f"'{name}' must be a string")
    return v
