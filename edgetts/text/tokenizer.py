"""Text -> token ids with the checkpoint's Qwen2 byte-level BPE (HF `tokenizers` library).

Sources, in order: tokenizer.json; vocab.json + merges.txt (+ tokenizer_config.json for the
added/special tokens); GGUF `tokenizer.ggml.{tokens, merges, token_type}`.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import EdgeTTSError
from ..gguf import constants as K

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


class TextTokenizer:
    def __init__(self, tok):
        self.tok = tok

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def from_files(cls, files: dict[str, Path]) -> "TextTokenizer":
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
        if not tokens or merges is None:
            raise EdgeTTSError(f"GGUF file has no text tokenizer ({K.TOKENIZER_TOKENS}, {K.TOKENIZER_MERGES})")
        types = meta.get(K.TOKENIZER_TOKEN_TYPE) or [K.TOKEN_TYPE_NORMAL] * len(tokens)
        vocab = {str(t): i for i, t in enumerate(tokens)}
        pairs = [tuple(str(m).split(" ", 1)) for m in merges]
        tok = _bpe_tokenizer(vocab, pairs)
        special = [AddedToken(str(t), special=True, normalized=False)
                   for t, ty in zip(tokens, types) if int(ty) in (K.TOKEN_TYPE_CONTROL, K.TOKEN_TYPE_USER_DEFINED)]
        if special:
            tok.add_special_tokens(special)
        # Byte-level BPE vocabularies list 256 byte tokens, then one token per merge, in order;
        # a normal token past that range (e.g. an added "assistant") no merge can produce: match it whole.
        first_added = 256 + len(pairs)
        extra = [AddedToken(str(t), special=False, normalized=False)
                 for i, (t, ty) in enumerate(zip(tokens, types))
                 if i >= first_added and int(ty) not in (K.TOKEN_TYPE_CONTROL, K.TOKEN_TYPE_USER_DEFINED)]
        if extra:
            tok.add_tokens(extra)
        return cls(tok)

    @classmethod
    def from_checkpoint(cls, ck) -> "TextTokenizer | None":
        try:
            if ck.main is not None and ck.main.format == "gguf":
                return cls.from_gguf(ck.main.metadata)
            if ck.files:
                return cls.from_files(ck.files)
        except EdgeTTSError:
            return None
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
