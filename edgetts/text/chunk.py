"""Split long text into sentence chunks the model can speak one at a time.

    split_sentences("Dr. Smith paid $3.14. He left!")  -> ["Dr. Smith paid $3.14.", "He left!"]
    chunk_text(text, max_len=200)                       -> sentences grouped up to max_len

A sentence ends at . ! ? … (plus closing quotes/brackets) followed by whitespace, unless the word
before the period is a known abbreviation (Dr. Mr. e.g. i.e. ...) or a single-letter initial;
"3.14" never splits (no whitespace after the period). CJK sentence marks 。！？； end a sentence
with or without a following space.

Length is weighted: a CJK / Kana / Hangul character speaks about as long as three Latin letters,
so max_len means roughly the same amount of speech in every language.
"""
from __future__ import annotations

import re

ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e", "cf",
    "no", "nos", "fig", "figs", "vol", "p", "pp", "ch", "sec", "inc", "ltd", "co", "corp", "dept",
    "approx", "est", "gen", "gov", "rev", "sgt", "capt", "col", "lt", "u.s", "u.k", "a.m", "p.m",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "hr", "fr", "frl", "z.b", "bzw", "usw", "ca", "sra", "sr", "srta", "mme", "mlle",
}

_CLOSERS = "\"'”’」』）)]》"
_SENT_END = re.compile(
    rf"([.!?…]+[{re.escape(_CLOSERS)}]*)(\s+)"          # Latin: mark, closers, whitespace
    rf"|([。！？；]+[{re.escape(_CLOSERS)}]*)\s*"        # CJK: mark, closers, optional space
)
_CLAUSE_END = re.compile(r"([,;:，、；：—–]+)\s*")


def _is_wide(ch: str) -> bool:
    o = ord(ch)
    return (0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF
            or 0xFF00 <= o <= 0xFFEF)


def text_len(text: str) -> int:
    """Weighted length: CJK/Kana/Hangul characters count 3, everything else 1."""
    return sum(3 if _is_wide(c) else 1 for c in text)


def _word_before(text: str, end: int) -> str:
    """The token ending just before text[end] (the period), e.g. 'Dr' or 'e.g'."""
    start = end
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in "(\"'":
        start -= 1
    return text[start:end]


def split_sentences(text: str) -> list[str]:
    """Sentences of text, in order; line breaks always end a sentence."""
    return [s for line in text.splitlines() for s in _split_line(" ".join(line.split()))]


def _split_line(text: str) -> list[str]:
    out, start = [], 0
    for m in _SENT_END.finditer(text):
        if m.group(1):
            mark = m.group(1)
            if mark == "." or (mark.startswith(".") and mark.strip(".") == ""):
                word = _word_before(text, m.start(1)).lower()
                if word in ABBREVIATIONS or (len(word) == 1 and word.isalpha()) \
                        or re.fullmatch(r"(?:[a-z]\.)+[a-z]", word):
                    continue
                nxt = text[m.end():m.end() + 1]
                if nxt and nxt.islower():  # "etc. and so on": not a sentence start
                    continue
        end = m.end(1) if m.group(1) else m.end(3)
        piece = text[start:end].strip()
        if piece:
            out.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def _split_long(sentence: str, max_len: int) -> list[str]:
    """A sentence longer than max_len: split at clause marks, then at spaces, then anywhere."""
    if text_len(sentence) <= max_len:
        return [sentence]
    parts, start = [], 0
    for m in _CLAUSE_END.finditer(sentence):
        parts.append(sentence[start:m.end(1)])
        start = m.end()
    parts.append(sentence[start:])
    pieces: list[str] = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if text_len(part) <= max_len:
            pieces.append(part)
            continue
        words = part.split(" ") if " " in part else list(part)
        sep = " " if " " in part else ""
        cur = ""
        for w in words:
            cand = cur + sep + w if cur else w
            if cur and text_len(cand) > max_len:
                pieces.append(cur)
                cur = w
            else:
                cur = cand
        if cur:
            pieces.append(cur)
    return _group(pieces, max_len)


def _group(pieces: list[str], max_len: int) -> list[str]:
    out: list[str] = []
    for p in pieces:
        if out:
            sep = "" if _is_wide(out[-1][-1]) or _is_wide(p[0]) else " "
            joined = out[-1] + sep + p
            if text_len(joined) <= max_len:
                out[-1] = joined
                continue
        out.append(p)
    return out


def chunk_text(text: str, max_len: int = 250) -> list[str]:
    """Sentences grouped into chunks of weighted length <= max_len (longer sentences are split)."""
    if max_len < 1:
        raise ValueError("max_len must be positive")
    pieces = [p for s in split_sentences(text) for p in _split_long(s, max_len)]
    return _group(pieces, max_len)
