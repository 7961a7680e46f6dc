"""Text -> token ids with the checkpoint's Qwen2 byte-level BPE (HF `tokenizers` library).

Sources, in order: tokenizer.json; vocab.json + merges.txt (+ tokenizer_config.json for the
added/special tokens); GGUF `tokenizer.ggml.{tokens, merges, token_type}`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import EdgeTTSError
from ..gguf import constants as K
from ..weights import StringArray

# Qwen2 pre-tokenizer split pattern (as in Qwen's tokenizer.json)
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _bpe_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]]):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    return tok


TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json")


def _one_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class TextTokenizer:
    def __init__(self, tok):
        self.tok = tok

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def from_files(cls, files: dict[str, Path]) -> "TextTokenizer":
        try:
            return cls._from_files(files)
        except EdgeTTSError:
            raise
        except Exception as e:  # bad JSON, a malformed merges line, the tokenizers library's own errors
            names = ", ".join(sorted(str(files[k]) for k in files if k in TOKENIZER_FILES))
            raise EdgeTTSError(f"{names}: unusable text tokenizer ({_one_line(e)})") from None

    @classmethod
    def _from_files(cls, files: dict[str, Path]) -> "TextTokenizer":
        from tokenizers import AddedToken, Tokenizer

        if "tokenizer.json" in files:
            return cls(Tokenizer.from_file(str(files["tokenizer.json"])))
        if "vocab.json" not in files or "merges.txt" not in files:
            raise EdgeTTSError("no text tokenizer in the checkpoint (need tokenizer.json or vocab.json + merges.txt)")
        vocab = json.loads(Path(files["vocab.json"]).read_text(encoding="utf-8"))
        merges = []
        for line in Path(files["merges.txt"]).read_text(encoding="utf-8").splitlines():
            if line.startswith("#version") or not line.strip():
                continue
            a, b = line.split(" ")
            merges.append((a, b))
        tok = _bpe_tokenizer(vocab, merges)
        if "tokenizer_config.json" in files:
            conf = json.loads(Path(files["tokenizer_config.json"]).read_text(encoding="utf-8"))
            added = sorted(((int(i), d) for i, d in (conf.get("added_tokens_decoder") or {}).items()),
                           key=lambda x: x[0])
            for i, d in added:
                t = AddedToken(d["content"], special=bool(d.get("special", False)), normalized=False)
                if d.get("special", False):
                    tok.add_special_tokens([t])
                else:
                    tok.add_tokens([t])
        return cls(tok)

    @classmethod
    def from_gguf(cls, meta: dict) -> "TextTokenizer":
        from tokenizers import AddedToken

        tokens = meta.get(K.TOKENIZER_TOKENS)
        merges = meta.get(K.TOKENIZER_MERGES)
        # (long arrays come as weights.StringArray, decoded from the file on access: once here)
        decoded = set()  # keys whose strings the reader decoded itself (strings by construction)
        if isinstance(tokens, StringArray):
            tokens = tokens.tolist()
            decoded.add(K.TOKENIZER_TOKENS)
        if isinstance(merges, StringArray):
            merges = merges.tolist()
            decoded.add(K.TOKENIZER_MERGES)
        if not tokens or merges is None:
            raise EdgeTTSError(f"GGUF file has no text tokenizer ({K.TOKENIZER_TOKENS}, {K.TOKENIZER_MERGES})")
        types = meta.get(K.TOKENIZER_TOKEN_TYPE) or [K.TOKEN_TYPE_NORMAL] * len(tokens)
        for key, v, kind in ((K.TOKENIZER_TOKENS, tokens, str), (K.TOKENIZER_MERGES, merges, str),
                             (K.TOKENIZER_TOKEN_TYPE, types, int)):
            if not isinstance(v, list) or (key not in decoded and not all(
                    isinstance(x, kind) and not isinstance(x, bool) for x in v)):
                raise EdgeTTSError(f"GGUF {key} must be an array of {'strings' if kind is str else 'integers'}")
        if len(types) != len(tokens):
            raise EdgeTTSError(f"GGUF {K.TOKENIZER_TOKEN_TYPE} has {len(types)} entries, "
                               f"{K.TOKENIZER_TOKENS} {len(tokens)}")
        vocab = dict(zip(tokens, range(len(tokens))))
        pairs = [tuple(m.split(" ", 1)) for m in merges]
        if len(vocab) != len(tokens) or any(len(m) != 2 for m in pairs):
            raise EdgeTTSError("GGUF text tokenizer: duplicate tokens or a merge that is not 'a b'")
        try:
            tok = _bpe_tokenizer(vocab, pairs)
        except Exception as e:  # the tokenizers library rejects it (a merge of unknown tokens, ...)
            raise EdgeTTSError(f"GGUF text tokenizer is unusable ({_one_line(e)})") from None
        is_special = np.isin(np.asarray(types, np.int64), (K.TOKEN_TYPE_CONTROL, K.TOKEN_TYPE_USER_DEFINED))
        special = [AddedToken(tokens[i], special=True, normalized=False) for i in np.flatnonzero(is_special)]
        if special:
            tok.add_special_tokens(special)
        # Byte-level BPE vocabularies list 256 byte tokens, then one token per merge, in order;
        # a normal token past that range (e.g. an added "assistant") no merge can produce: match it whole.
        first_added = 256 + len(pairs)
        extra = [AddedToken(tokens[i], special=False, normalized=False)
                 for i in range(first_added, len(tokens)) if not is_special[i]]
        if extra:
            tok.add_tokens(extra)
        return cls(tok)

    @classmethod
    def from_checkpoint(cls, ck) -> "TextTokenizer | None":
        """The checkpoint's text tokenizer; None when it has none; EdgeTTSError when it is broken."""
        if ck.main is not None and ck.main.format == "gguf":
            if ck.main.metadata.get(K.TOKENIZER_TOKENS) is None:
                return None
            return cls.from_gguf(ck.main.metadata)
        files = ck.files or {}
        if "tokenizer.json" in files or ("vocab.json" in files and "merges.txt" in files):
            return cls.from_files(files)
        return None

    # -- use -----------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def token_to_id(self, token: str) -> int | None:
        return self.tok.token_to_id(token)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)
