"""Batch input and manifest: JSONL lines -> Items (or failed records), and the append-only manifest.

Input: one JSON object per line with `id` and `text`, optionally `speaker`, `voice` (a voice file;
relative paths are relative to the input file's folder), `language`, `instruct`, `seed`. Blank
lines are skipped; any other line that is not a usable item becomes a `failed` manifest record
naming the problem (invalid JSON, no id, empty text, duplicate id, unknown field, ...).

The manifest (OUTDIR/manifest.jsonl) is only ever appended to, one complete JSON line per record
in a single write() on an O_APPEND descriptor, after the audio file it names was renamed into
place. A job killed at any moment therefore leaves, at worst, one torn last line (power loss):
the reader skips lines that do not parse, and the writer starts a fresh line before its first
record if the file does not end with a newline.
"""
from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgeTTSError

MANIFEST = "manifest.jsonl"
FIELDS = ("id", "text", "speaker", "voice", "language", "instruct", "seed")
MAX_ID_BYTES = 200          # ids become file names (<id>.<ext>); most file systems allow 255 bytes
SEED_BITS = 63


@dataclass(frozen=True)
class Item:
    """One utterance to synthesize (what a worker gets)."""
    id: str
    text: str
    seed: int
    line: int
    speaker: str | None = None
    voice: str | None = None        # absolute path of a voice file
    language: str | None = None
    instruct: str | None = None


def derive_seed(item_id: str) -> int:
    """The seed of a line without one: the first 8 bytes of SHA-256(UTF-8 id), big-endian, top bit cleared.

    Depends on the id alone, so output is the same on every run, worker count and backend.
    """
    digest = hashlib.sha256(item_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << SEED_BITS) - 1)


def check_id(value) -> str:
    """The id as a string, or EdgeTTSError if it cannot name a file `<id>.<ext>` in OUTDIR."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise EdgeTTSError(f"id must be a string or an integer, got {type(value).__name__}")
    s = str(value)
    if not s.strip():
        raise EdgeTTSError("empty id")
    if s != s.strip():
        raise EdgeTTSError(f"id {s!r} has leading or trailing white space")
    if "/" in s or "\\" in s:
        raise EdgeTTSError(f"id {s!r} contains a path separator")
    if s.startswith("."):
        raise EdgeTTSError(f"id {s!r} starts with '.' (hidden or temporary file names)")
    if any(unicodedata.category(c).startswith("C") for c in s):
        raise EdgeTTSError(f"id {s!r} contains a control character")
    if len(s.encode("utf-8")) > MAX_ID_BYTES:
        raise EdgeTTSError(f"id is longer than {MAX_ID_BYTES} bytes")
    return s


def _optional_str(obj: dict, key: str) -> str | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise EdgeTTSError(f"{key} must be a string, got {type(v).__name__}")
    return v if v.strip() else None


def parse_item(obj, line: int, base: Path) -> Item:
    """One decoded input line -> Item; EdgeTTSError names what is wrong with it."""
    if not isinstance(obj, dict):
        raise EdgeTTSError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise EdgeTTSError(f"unknown field {unknown[0]!r}; the fields are: {', '.join(FIELDS)}")
    if "id" not in obj or obj["id"] is None:
        raise EdgeTTSError("no id")
    item_id = check_id(obj["id"])
    text = obj.get("text")
    if not isinstance(text, str):
        raise EdgeTTSError("no text" if text is None else f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise EdgeTTSError("empty text: nothing to say")
    seed = obj.get("seed")
    if seed is None:
        seed = derive_seed(item_id)
    elif isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise EdgeTTSError(f"seed must be a non-negative integer, got {seed!r}")
    voice = _optional_str(obj, "voice")
    if voice is not None:
        voice = str((base / Path(voice).expanduser()).resolve())
    return Item(id=item_id, text=text, seed=int(seed), line=line, speaker=_optional_str(obj, "speaker"),
                voice=voice, language=_optional_str(obj, "language"),
                instruct=_optional_str(obj, "instruct"))


def failed_record(item_id: str | None, error: str, **extra) -> dict:
    """A manifest record with status "failed" (extra: line, seed, attempts, worker, compute_s...)."""
    return {"id": item_id, "file": None, "audio_s": None, "frames": None, "compute_s": None,
            "worker": None, "status": "failed", "error": error, **extra}


def read_input(source) -> tuple[list[Item], list[dict]]:
    """(items in input order, failed records for the bad lines).

    `source` is a path to a JSONL file, or an iterable of dicts (Python pipelines; a relative
    voice path is then relative to the current folder)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise EdgeTTSError(f"{path}: no such input file")
        base = path.resolve().parent
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except UnicodeDecodeError as e:
            raise EdgeTTSError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except OSError as e:
            raise EdgeTTSError(f"{path}: cannot read ({e.strerror})") from None
        rows = enumerate(lines, 1)
    else:
        base = Path.cwd()
        rows = enumerate(source, 1)
    items: list[Item] = []
    bad: list[dict] = []
    first_line: dict[str, int] = {}
    for n, row in rows:
        item_id = None
        try:
            if isinstance(row, str):
                if not row.strip():
                    continue
                try:
                    row = json.loads(row)
                except json.JSONDecodeError as e:
                    raise EdgeTTSError(f"invalid JSON ({e.msg} at column {e.colno})") from None
            if isinstance(row, dict) and isinstance(row.get("id"), (str, int)):
                item_id = str(row["id"])   # for the record, even if the line is bad for another reason
            item = parse_item(row, n, base)
            if item.id in first_line:
                raise EdgeTTSError(f"duplicate id (first on line {first_line[item.id]})")
            first_line[item.id] = n
            items.append(item)
        except EdgeTTSError as e:
            bad.append(failed_record(item_id, str(e), line=n))
    return items, bad


class Manifest:
    """OUTDIR/manifest.jsonl: read what is done, append one record per outcome."""

    def __init__(self, outdir: Path):
        self.path = Path(outdir) / MANIFEST
        self.torn = 0   # lines that did not parse (a torn last line after a crash)
        self._fd: int | None = None

    def done(self) -> dict[str, dict]:
        """id -> its `ok` record, for ids whose file is still there (those are skipped)."""
        out: dict[str, dict] = {}
        self.torn = 0
        if not self.path.exists():
            return out
        with open(self.path, "rb") as f:
            for raw in f:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    self.torn += 1
                    continue
                if not isinstance(rec, dict) or rec.get("status") != "ok" or not rec.get("file"):
                    continue
                if (self.path.parent / rec["file"]).is_file():
                    out[str(rec.get("id"))] = rec
        return out

    def open(self) -> None:
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            size = os.fstat(self._fd).st_size
            if size:
                with open(self.path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        self._write(b"\n")   # a torn last line stays alone on its line
        except OSError as e:
            raise EdgeTTSError(f"{self.path}: cannot write ({e.strerror})") from None

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def append(self, rec: dict) -> None:
        self._write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
