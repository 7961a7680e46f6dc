"""Property tests (hypothesis): structured mutations of the tiny fixture's files -- GGUF header
fields, tensor infos and metadata values; safetensors header entries; config values of the wrong
type or range; truncation -- end in a successful load or an EdgeTTSError, nothing else.

The loads are the fuzz targets of fuzz/targets.py (the same ones atheris drives in fuzz/run.py).
"""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgetts import schema
from edgetts import weights as W
from edgetts.errors import EdgeTTSError
from edgetts.models import config as C

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fuzz"))
import seeds as fuzz_seeds  # noqa: E402
import targets as fuzz_targets  # noqa: E402

TINY = ROOT / "tests" / "fixtures" / "tiny"
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

INTERESTING = [0, 1, 2, 3, 7, 31, 32, 33, 255, 2 ** 15, 2 ** 16, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1,
               2 ** 32, 2 ** 62, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1]
ints = st.one_of(st.sampled_from(INTERESTING), st.integers(0, 2 ** 64 - 1))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("seeds")
    fuzz_seeds.micro_talker_gguf(d / "micro-talker.gguf")
    fuzz_seeds.micro_codec_gguf(d / "micro-codec.gguf")
    fuzz_seeds.micro_talker_safetensors(d / "micro-talker.safetensors")
    return d


@pytest.fixture(scope="module")
def load(tmp_path_factory):
    work = tmp_path_factory.mktemp("targets")
    made = {}

    def run(target: str, data: bytes) -> str:
        if target not in made:
            made[target] = fuzz_targets.make(target, work / target)
        return made[target](data)     # raises anything but EdgeTTSError
    return run


# ------------------------------------------------------------------------------ GGUF
def _part_offsets(path: Path):
    """Byte offsets and sizes of the header fields gguf-py found: [(offset, nbytes, what)]."""
    r = gguf.GGUFReader(str(path))
    base = r.data.ctypes.data
    out = [(4, 4, "version"), (8, 8, "n_tensors"), (16, 8, "n_kv")]
    for t in r.tensors:
        _, _, ndims, dims, typ, off = t.field.parts
        for p, what in ((ndims, "n_dims"), (dims, "dims"), (typ, "type"), (off, "offset")):
            out.append((p.ctypes.data - base, p.nbytes, f"{t.name}.{what}"))
    for f in r.fields.values():
        for p in f.parts[2:]:          # value type and value parts (not the key)
            out.append((p.ctypes.data - base, p.nbytes, f"{f.name}"))
    return out, r.tensors[0].data_offset if r.tensors else len(r.data)


@pytest.mark.parametrize("name", ["micro-talker.gguf", "micro-codec.gguf"])
def test_seed_loads(files, load, name):
    assert load("gguf", (files / name).read_bytes()) == "load"


@SETTINGS
@given(data=st.data())
def test_gguf_header_field_mutations(files, load, data):
    name = data.draw(st.sampled_from(["micro-talker.gguf", "micro-codec.gguf"]))
    raw = bytearray((files / name).read_bytes())
    fields, _ = _part_offsets(files / name)
    for _ in range(data.draw(st.integers(1, 3))):
        off, n, _what = data.draw(st.sampled_from(fields))
        pos = off + data.draw(st.integers(0, max(0, n // 8 - 1))) * 8 if n >= 8 else off
        width = min(n, 8) if n in (1, 2, 4) or n >= 8 else n
        v = data.draw(ints) % (1 << (8 * width))
        raw[pos:pos + width] = v.to_bytes(width, "little")
    assert load("gguf", bytes(raw)) in ("load", "error")


@SETTINGS
@given(data=st.data())
def test_gguf_truncation_and_header_bit_flips(files, load, data):
    name = data.draw(st.sampled_from(["micro-talker.gguf", "micro-codec.gguf"]))
    raw = bytearray((files / name).read_bytes())
    _, data_start = _part_offsets(files / name)
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, data_start - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.one_of(st.just(len(raw)), st.integers(0, len(raw))))
    assert load("gguf", bytes(raw[:cut])) in ("load", "error")


# ------------------------------------------------------------------------------ safetensors
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats()
                           | st.text(max_size=8), lambda c: st.lists(c, max_size=4)
                           | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=8)


def _split_safetensors(raw: bytes):
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _join_safetensors(header: dict, body: bytes, n_override=None) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h) if n_override is None else n_override) + h + body


@SETTINGS
@given(data=st.data())
def test_safetensors_header_entry_mutations(files, load, data):
    header, body = _split_safetensors((files / "micro-talker.safetensors").read_bytes())
    names = sorted(k for k in header if k != "__metadata__")
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(names + ["__metadata__"]))
        what = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "delete", "entry", "dim", "offset"]))
        entry = header.get(name)
        if what == "delete":
            header.pop(name, None)
        elif what == "entry" or not isinstance(entry, dict):
            header[name] = data.draw(json_values)
        elif what == "dim" and isinstance(entry.get("shape"), list) and entry["shape"]:
            i = data.draw(st.integers(0, len(entry["shape"]) - 1))
            entry["shape"][i] = data.draw(st.sampled_from([0, -1, 2 ** 63, 2 ** 64 + 5]) | st.integers(0, 99))
        elif what == "offset" and isinstance(entry.get("data_offsets"), list) and entry["data_offsets"]:
            i = data.draw(st.integers(0, len(entry["data_offsets"]) - 1))
            entry["data_offsets"][i] = data.draw(st.sampled_from([0, -8, 2 ** 63]) | st.integers(0, len(body) + 64))
        elif what == "dtype":
            entry["dtype"] = data.draw(st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "F8_E4M3", ""])
                                       | json_values)
        else:
            entry[what] = data.draw(json_values)
    n_override = data.draw(st.none() | st.sampled_from([0, 1, 2 ** 63, 2 ** 64 - 1]))
    raw = _join_safetensors(header, body, n_override)
    cut = data.draw(st.one_of(st.just(len(raw)), st.integers(0, len(raw))))
    assert load("safetensors", raw[:cut]) in ("load", "error")


def test_safetensors_seed_loads(files, load):
    assert load("safetensors", (files / "micro-talker.safetensors").read_bytes()) == "load"


# ------------------------------------------------------------------------------ configs
CONFIG_FILES = [("config.json", 0, schema.MAIN), ("generation_config.json", 1, schema.GENERATION),
                ("speech_tokenizer/config.json", 2, schema.CODEC)]


def _set(d: dict, path: str, value) -> None:
    *parents, leaf = path.split(".")
    for p in parents:
        if not isinstance(d.get(p), dict):
            d[p] = {}
        d = d[p]
    d[leaf] = value


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, prefix + k + ".")
        else:
            yield prefix + k


@SETTINGS
@given(data=st.data())
def test_config_values_of_any_type(load, data):
    name, sel, rules = data.draw(st.sampled_from(CONFIG_FILES))
    cfg = json.loads((TINY / name).read_text())
    paths = sorted(set(_leaves(cfg)) | {r.path for r in rules})
    for _ in range(data.draw(st.integers(1, 3))):
        _set(cfg, data.draw(st.sampled_from(paths)), data.draw(json_values))
    assert load("config", bytes([sel]) + json.dumps(cfg).encode()) in ("load", "error")


WRONG = {"int": ["12", 1.5, True, [], None], "float": ["0.5", True, [1.0], {}],
         "bool": [1, "true", 0.0], "str": [3, ["a"], True], "int[]": [[1, "2"], 5, [True]],
         "ids": [["a"], {"a": "1"}, 3], "dialects": [[1], {"a": 2}]}


@SETTINGS
@given(data=st.data())
def test_config_wrong_type_or_range_names_file_and_field(tmp_path_factory, data):
    name, _, rules = data.draw(st.sampled_from(CONFIG_FILES))
    rule = data.draw(st.sampled_from(rules))
    bad = [v for v in WRONG[rule.kind] if v is not None]
    if rule.kind in ("int", "float") and rule.lo is not None:
        bad.append(rule.lo - 1)
    if rule.kind in ("int", "float") and rule.above is not None:
        bad.append(rule.above)
    if rule.hi is not None and rule.kind in ("int", "float"):
        bad.append(rule.hi * 2 + 1)
    if rule.choices:
        bad.append("not-a-" + rule.choices[0])
    value = data.draw(st.sampled_from(bad))
    cfg = json.loads((TINY / name).read_text())
    _set(cfg, rule.path, value)
    with pytest.raises(EdgeTTSError) as e:
        schema.check(cfg, rules, f"/m/{name}")
    msg = str(e.value)
    assert msg.startswith(f"/m/{name}: {rule.path} ") and "\n" not in msg


def test_gguf_errors_name_the_key(tmp_path):
    """The same rules on GGUF metadata name the GGUF key and the file."""
    src = tmp_path / "t.gguf"
    fuzz_seeds.micro_talker_gguf(src)
    r = gguf.GGUFReader(str(src))
    f = r.fields["qwen3-tts.talker.attention.layer_norm_rms_epsilon"]
    raw = bytearray(src.read_bytes())
    pos = f.parts[-1].ctypes.data - r.data.ctypes.data
    raw[pos:pos + 4] = np.float32(-1.0).tobytes()
    del r, f
    src.write_bytes(bytes(raw))
    with pytest.raises(EdgeTTSError, match=r"t\.gguf: qwen3-tts\.talker\.attention\.layer_norm_rms_epsilon must be > 0"):
        C.from_checkpoint(W.open(src))


def test_fuzz_seeds_and_targets(tmp_path, load):
    """fuzz/seeds.py makes every target's seeds; each is a load or an EdgeTTSError, and every
    target has seeds that load in full (so the fuzzer starts from working files)."""
    seeds = fuzz_seeds.make(tmp_path / "seeds")
    for target in ("gguf", "safetensors", "config"):
        results = [load(target, f.read_bytes()) for f in sorted((seeds / target).iterdir())]
        assert results and "load" in results and set(results) <= {"load", "error"}, (target, results)
