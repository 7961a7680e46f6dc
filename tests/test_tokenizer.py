"""Text tokenizer: tokenizer.json, vocab.json + merges.txt, and GGUF metadata give the same ids."""
import json

import numpy as np
import pytest

import edgetts
from edgetts import weights
from edgetts.text.tokenizer import TextTokenizer

from conftest import FIXTURES as FIX
TEMPLATE = "<|im_start|>assistant\n{}<|im_end|>\n<|im_start|>assistant\n"
TEXTS = ["Hello, this is a tiny test.", "Hello.", "  two  spaces\nand a newline", "It's 12:30 — ok?", "ünïcödé"]


def sources():
    d = FIX / "tiny"
    files = weights.open(d).files
    tj = TextTokenizer.from_files({"tokenizer.json": files["tokenizer.json"]})
    vm = TextTokenizer.from_files({k: files[k] for k in ("vocab.json", "merges.txt", "tokenizer_config.json")})
    vocab = json.loads(files["vocab.json"].read_text())
    conf = json.loads(files["tokenizer_config.json"].read_text())
    added = {int(i): t for i, t in conf["added_tokens_decoder"].items()}
    n = max(max(vocab.values()), max(added)) + 1
    tokens = [""] * n
    types = [1] * n
    for t, i in vocab.items():
        tokens[i] = t
    for i, t in added.items():
        tokens[i] = t["content"]
        types[i] = 3 if t["special"] else 1
    merges = [m for m in files["merges.txt"].read_text().splitlines() if m and not m.startswith("#")]
    gg = TextTokenizer.from_gguf({"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
                                  "tokenizer.ggml.merges": merges})
    return tj, vm, gg


def test_golden_ids():
    g = np.load(FIX / "tiny" / "golden.npz")
    meta = json.loads((FIX / "tiny" / "golden_meta.json").read_text())
    for tok in sources():
        assert tok.encode(TEMPLATE.format(meta["text"])) == g["c_input_ids"].tolist()


@pytest.mark.parametrize("text", TEXTS)
def test_sources_agree(text):
    a, b, c = sources()
    ids = a.encode(TEMPLATE.format(text))
    assert b.encode(TEMPLATE.format(text)) == ids == c.encode(TEMPLATE.format(text))
    assert ids[:3] == [500, 505, 198] and ids[-5:] == [501, 198, 500, 505, 198]
    assert a.decode(ids[3:-5]) == text


def test_tts_text_ids():
    tts = edgetts.load(FIX / "tiny")
    role, body = tts.text_ids("Hello.")
    assert role == [500, 505, 198] and body == [39, 301, 385, 13]
    assert tts.text_ids([39, 13]) == ([500, 505, 198], [39, 13])
    ins = tts.instruct_ids("A calm, deep voice.")
    g = np.load(FIX / "tiny" / "golden.npz")
    if "c_instruct_ids" in g:
        assert ins == g["c_instruct_ids"].tolist()
    assert ins[:3] == [500, 506, 198] and ins[-2:] == [501, 198]
    assert tts.instruct_ids(ins[3:-2]) == ins == tts.instruct_ids(ins)
