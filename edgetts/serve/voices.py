"""Voice names a server accepts: the model's speakers, plus saved voice files in --voices DIR.

A saved voice is one `NAME.safetensors` file (edgetts.voice.Voice, made from reference audio);
its name is the file stem. The folder is listed afresh on each lookup, so voices added while the
server runs are found; a loaded voice is kept (by file and modification time) for the next use.
"""
from __future__ import annotations

import threading
from pathlib import Path

from ..errors import EdgeTTSError

SUFFIX = ".safetensors"


class VoiceLibrary:
    """Saved voice files in one folder (none when `folder` is None)."""

    def __init__(self, folder=None, keep: int = 16):
        self.folder = Path(folder).expanduser() if folder else None
        if self.folder is not None and not self.folder.is_dir():
            raise EdgeTTSError(f"--voices {self.folder}: not a folder")
        self.keep = keep
        self._loaded: dict[tuple[str, float], object] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        if self.folder is None:
            return []
        return sorted(p.stem for p in self.folder.glob("*" + SUFFIX) if p.is_file())

    def path(self, name: str) -> Path | None:
        """The file of voice `name`, only if the folder lists it (no path tricks)."""
        if self.folder is None or name not in self.names():
            return None
        return self.folder / (name + SUFFIX)

    def load(self, name: str):
        path = self.path(name)
        if path is None:
            raise EdgeTTSError(f"unknown voice {name!r}")
        from ..voice import Voice  # lazy: only servers with saved voices need it

        key = (str(path), path.stat().st_mtime)
        with self._lock:
            voice = self._loaded.get(key)
            if voice is None:
                try:
                    voice = Voice.load(path)
                except EdgeTTSError:
                    raise
                except Exception as e:  # noqa: BLE001 - a damaged file: one line, the server stays up
                    raise EdgeTTSError(f"voice {name!r}: cannot read {path.name} ({e})") from None
                if len(self._loaded) >= self.keep:
                    self._loaded.pop(next(iter(self._loaded)))
                self._loaded[key] = voice
        return voice


class Catalog:
    """What a server offers: the model's speakers, saved voices and languages."""

    def __init__(self, tts, library: VoiceLibrary, default_language: str = "auto"):
        self.tts = tts
        self.library = library
        self.default_language = self.language(default_language)

    @property
    def speakers(self) -> list[str]:
        return list(self.tts.speakers or [])

    def voices(self) -> list[dict]:
        """Every voice name with its kind and languages."""
        langs = [lang for lang in self.tts.languages if lang != "auto"]
        out = [{"id": s, "name": s, "kind": "speaker", "languages": langs} for s in self.speakers]
        taken = {s.lower() for s in self.speakers}
        out += [{"id": n, "name": n, "kind": "saved", "languages": langs}
                for n in self.library.names() if n.lower() not in taken]
        return out

    def language(self, name) -> str:
        lang = "auto" if name is None else str(name).strip().lower()
        if lang not in self.tts.languages:
            raise EdgeTTSError(f"unknown language {name!r}; choose one of: {', '.join(self.tts.languages)}")
        return lang

    def voice_options(self, name) -> dict:
        """TTS keyword arguments for voice `name` (None: the model's default voice)."""
        if self.tts.model_type == "voice_design" and (name is None or self.library.path(str(name)) is None):
            return {}  # VoiceDesign: the voice comes from the instructions
        if name is None:
            return {}
        key = str(name).strip()
        for s in self.speakers:
            if s.lower() == key.lower():
                return {"speaker": s}
        if self.library.path(key) is not None:
            return {"voice": self.library.load(key)}
        choices = [v["id"] for v in self.voices()]
        raise EdgeTTSError(f"unknown voice {name!r}; choose one of: {', '.join(choices) or '(none)'}")
