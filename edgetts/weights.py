"""Weight files: decide the format from the bytes, expose tensors memory-mapped.

    ckpt = edgetts.weights.open(path)     # -> Checkpoint
    ckpt.main["talker.blk.0.attn_q.weight"]  # -> Tensor (stored type, shape, raw mmap data)

`path` may be
  * a GGUF file (magic b"GGUF"); a `qwen3-tts` talker GGUF also picks up its
    `qwen3-tts-tokenizer` sibling in the same directory (the pair `edgetts quantize` writes),
  * a safetensors file (8-byte little-endian header length, then a JSON header),
  * a directory in Hugging Face layout (config.json, model.safetensors or shards with
    model.safetensors.index.json, speech_tokenizer/),
  * a directory holding the GGUF pair.

Nothing here knows the model: tensors keep the names they are stored under. Mapping between the
Hugging Face names and the GGUF names lives in `edgetts.gguf.names`.
"""
from __future__ import annotations

import builtins
import json
import math
import os
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import gguf
import numpy as np

from .errors import WeightsError
from .gguf import constants as K

# Block-quantized GGML types this reader accepts (sizes from gguf-py via constants); the engine's
# kernels read Q8_0 / Q4_0 directly, the others are dequantized at load.
BLOCK_TYPES = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
BLOCK_SIZES = {t: K.GGML_QUANT_SIZES[t] for t in BLOCK_TYPES}   # (elements, bytes) per block
# Types the engine's kernels read directly; the rest are dequantized at load.
KERNEL_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0")

_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64,
                       "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
                       "U8": np.uint8, "BOOL": np.bool_}


@dataclass
class Tensor:
    """One stored tensor.

    shape: logical shape, outermost first (PyTorch order; a Linear weight is (out, in)).
    dtype: stored type name: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, I64, ...
    data:  the stored bytes, memory-mapped, not copied:
             F32 -> float32[shape], F16 -> float16[shape], BF16 -> uint16[shape] (raw bits),
             block types -> uint8[rows, row_bytes] with rows = prod(shape[:-1]).
    """
    name: str
    dtype: str
    shape: tuple[int, ...]
    data: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def numpy(self) -> np.ndarray:
        """The values as a new float32 array of `shape` (dequantized / widened)."""
        return dequantize(self.data, self.dtype, self.shape)

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, {self.dtype}, {self.shape})"


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def dequantize(data: np.ndarray, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "F32":
        return np.array(data, dtype=np.float32).reshape(shape)
    if dtype in ("F16", "F64"):
        return data.astype(np.float32).reshape(shape)
    if dtype == "BF16":
        return bf16_to_f32(np.ascontiguousarray(data)).reshape(shape)
    if dtype in BLOCK_SIZES:
        qtype = gguf.GGMLQuantizationType[dtype]
        out = gguf.quants.dequantize(np.ascontiguousarray(data), qtype)
        return out.astype(np.float32, copy=False).reshape(shape)
    if dtype.startswith(("I", "U")) or dtype == "BOOL":
        return data.astype(np.float32).reshape(shape)
    raise WeightsError(f"cannot read tensor type {dtype}")


class Weights:
    """The tensors of one container (a GGUF file, or one or more safetensors shards)."""

    def __init__(self, path: Path, fmt: str, tensors: dict[str, Tensor],
                 metadata: dict[str, Any] | None = None):
        self.path = Path(path)
        self.format = fmt  # "gguf" | "safetensors"
        self.tensors = tensors
        self.metadata = metadata or {}

    @property
    def architecture(self) -> str | None:
        return self.metadata.get(K.GENERAL_ARCHITECTURE)

    def __getitem__(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise WeightsError(f"{self.path}: tensor {name!r} not found") from None

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def names(self) -> list[str]:
        return list(self.tensors)

    def get(self, name: str, default=None):
        return self.tensors.get(name, default)

    def __repr__(self) -> str:
        return f"Weights({str(self.path)!r}, {self.format}, {len(self.tensors)} tensors)"


@dataclass
class Checkpoint:
    """What `open()` found: the talker-side weights, the codec weights, and their configs.

    kind: "hf" (Hugging Face directory), "gguf" (one or two GGUF files), "safetensors" (a file).
    main:  talker + code predictor (+ speaker encoder): model.safetensors / `qwen3-tts` GGUF.
    codec: speech tokenizer: speech_tokenizer/model.safetensors / `qwen3-tts-tokenizer` GGUF.
    config, codec_config, generation_config: the JSON files of an HF directory (None for GGUF,
    whose settings are in `main.metadata` / `codec.metadata`).
    files: other files of an HF directory by name (vocab.json, merges.txt, tokenizer.json, ...).
    """
    kind: str
    root: Path
    main: Weights | None = None
    codec: Weights | None = None
    config: dict | None = None
    codec_config: dict | None = None
    generation_config: dict | None = None
    files: dict[str, Path] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- sniffing

def sniff(path: str | os.PathLike) -> str:
    """'gguf', 'safetensors', 'hf' (directory with config.json), 'gguf-dir' or raise."""
    p = Path(path)
    if not p.exists():
        raise WeightsError(f"{p}: no such file or directory")
    if p.is_dir():
        if (p / "config.json").is_file():
            return "hf"
        if any(_is_gguf(f) for f in sorted(p.iterdir()) if f.is_file()):
            return "gguf-dir"
        raise WeightsError(f"{p}: not a model directory (no config.json and no GGUF file)")
    head = _head(p, 16)
    if head[:4] == K.GGUF_MAGIC:
        return "gguf"
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    raise WeightsError(f"{p}: not a GGUF or safetensors file")


def _head(p: Path, n: int) -> bytes:
    try:
        with builtins.open(p, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise WeightsError(f"{p}: cannot read ({e.strerror})") from None


def _is_gguf(p: Path) -> bool:
    try:
        return _head(p, 4) == K.GGUF_MAGIC
    except WeightsError:
        return False


# ------------------------------------------------------------------------------------ readers

SAFETENSORS_MAX_HEADER = 100_000_000   # bytes; the format's own limit
MAX_DIMS = 8                           # GGUF allows 4 (GGML_MAX_DIMS); safetensors has no limit


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _check_extent(p: Path, fmt: str, name: str, shape: tuple, start: int, nbytes: int,
                  data_size: int, extents: list) -> None:
    """A tensor's bytes [start, start + nbytes) must lie in the data section; overlaps are
    checked once all are known (_check_overlaps)."""
    if start < 0 or start + nbytes > data_size:
        raise WeightsError(f"{p}: truncated or corrupt {fmt} file (tensor {name!r}, shape "
                           f"{list(shape)}, {nbytes} bytes at offset {start}, lies outside the "
                           f"{data_size} bytes of data)")
    if nbytes:
        extents.append((start, start + nbytes, name))


def _check_overlaps(p: Path, fmt: str, extents: list) -> None:
    extents.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(extents, extents[1:]):
        if b0 < a1:
            raise WeightsError(f"{p}: corrupt {fmt} file (tensors {an!r} and {bn!r} overlap)")


def _json_error(p: Path, what: str, e: Exception) -> WeightsError:
    reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
    return WeightsError(f"{p}: {what} ({reason})")


def read_safetensors(path: str | os.PathLike) -> Weights:
    """A safetensors file; every header entry is checked against the file before a view is made."""
    p = Path(path)
    size = p.stat().st_size
    try:
        with builtins.open(p, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError("file too short")
            (n,) = struct.unpack("<Q", raw)
            if n > size - 8 or n > SAFETENSORS_MAX_HEADER:
                raise ValueError("header runs past the end of the file")
            header = json.loads(f.read(n))
            if not isinstance(header, dict):
                raise ValueError("header is not a JSON object")
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _json_error(p, "corrupt safetensors header", e) from None
    base = 8 + n
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise WeightsError(f"{p}: corrupt safetensors header (__metadata__ is not a string map)")
    infos, extents = [], []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise WeightsError(f"{p}: corrupt safetensors header entry {name!r} (not an object)")
        dt, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dt, str) or dt not in _SAFETENSORS_DTYPES:
            raise WeightsError(f"{p}: tensor {name!r} has unsupported dtype {dt!r}")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_count(d) for d in shape):
            raise WeightsError(f"{p}: corrupt safetensors header entry {name!r} (shape {shape!r})")
        if not isinstance(offs, list) or len(offs) != 2 or not all(_is_count(o) for o in offs) \
                or offs[0] > offs[1]:
            raise WeightsError(f"{p}: corrupt safetensors header entry {name!r} (data_offsets {offs!r})")
        shape = tuple(shape)
        npdt = np.dtype(_SAFETENSORS_DTYPES[dt])
        nbytes = math.prod(shape) * npdt.itemsize
        if offs[1] - offs[0] != nbytes:
            raise WeightsError(f"{p}: corrupt safetensors header entry {name!r} (shape {list(shape)} "
                               f"{dt} is {nbytes} bytes, data_offsets span {offs[1] - offs[0]})")
        _check_extent(p, "safetensors", name, shape, offs[0], nbytes, size - base, extents)
        infos.append((name, dt, shape, offs[0], npdt))
    _check_overlaps(p, "safetensors", extents)
    mm = np.memmap(p, dtype=np.uint8, mode="r") if size > base else np.zeros(0, np.uint8)
    tensors: dict[str, Tensor] = {}
    for name, dt, shape, start, npdt in infos:
        nbytes = math.prod(shape) * npdt.itemsize
        arr = mm[base + start: base + start + nbytes].view(npdt).reshape(shape)
        tensors[name] = Tensor(name, dt, shape, arr)
    return Weights(p, "safetensors", tensors, meta)


_V = gguf.GGUFValueType
_GGUF_SCALARS = {_V.UINT8: np.uint8, _V.INT8: np.int8, _V.UINT16: np.uint16, _V.INT16: np.int16,
                 _V.UINT32: np.uint32, _V.INT32: np.int32, _V.FLOAT32: np.float32, _V.BOOL: np.bool_,
                 _V.UINT64: np.uint64, _V.INT64: np.int64, _V.FLOAT64: np.float64}
# numpy views of the non-block GGML tensor types (their sizes: K.GGML_QUANT_SIZES, block 1)
_SCALAR_TYPE_NP = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64,
                   "I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64}


def _ggml_type_name(t: int) -> str:
    try:
        return gguf.GGMLQuantizationType(t).name
    except ValueError:
        return f"type{t}"


_MAX_NESTING = 8   # arrays of arrays: deeper than any real file, shallow enough for the stack


def _utf8(buf, start: int, end: int) -> str:
    """The GGUF string whose u64 length sits at buf[start] and which ends at buf[end]."""
    return bytes(buf[start + 8:end]).decode("utf-8", errors="replace")


class StringArray(Sequence):
    """A long GGUF string array, decoded on access from the file's mapping (a talker file's ~150k
    tokenizer tokens and merges as Python strings held ~30 MB for a model's whole life; they are
    read once, to build the tokenizer). Compares equal to a list of the same strings."""

    LAZY_FROM = 4096   # entries; shorter arrays (speaker and language names) are plain lists

    __slots__ = ("_buf", "_starts")

    def __init__(self, buf: memoryview, starts: array):
        self._buf, self._starts = buf, starts   # starts: entry i spans starts[i] .. starts[i + 1]

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError("string array index out of range")
        i %= n
        return _utf8(self._buf, self._starts[i], self._starts[i + 1])

    def __iter__(self):
        buf, st = self._buf, self._starts
        for i in range(len(st) - 1):
            yield _utf8(buf, st[i], st[i + 1])

    def tolist(self) -> list[str]:
        """Every string, decoded in one pass (2-3x faster than iterating: the model load decodes
        ~300k tokenizer strings). Each u64 length prefix becomes one NUL separator, the whole run
        is decoded once and split; a string holding a NUL itself would split wrongly, so the
        count is checked and such an array takes the per-string path."""
        n = len(self)
        if n == 0:
            return []
        st = np.frombuffer(self._starts, np.int64)
        lo, hi = int(st[0]), int(st[-1])
        data = np.frombuffer(self._buf, np.uint8, hi - lo, lo)
        keep = np.ones(hi - lo, bool)
        keep[(st[:-1, None] - lo + np.arange(7)).reshape(-1)] = False  # prefix bytes 0..6 dropped,
        joined = data.copy()
        joined[st[:-1] - lo + 7] = 0                                   # byte 7 becomes the separator
        parts = joined[keep].tobytes().decode("utf-8", errors="replace").split("\0")
        if len(parts) != n + 1:
            return list(self)
        del parts[0]
        return parts

    def __eq__(self, other):
        if isinstance(other, (StringArray, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"StringArray({len(self)} strings)"


class _HeaderReader:
    """Sequential little-endian reader over the GGUF header bytes.

    gguf-py's GGUFReader builds a numpy view per array element, which takes seconds for the
    ~300k tokenizer strings of a Qwen3-TTS talker file; this reads them with plain slicing.
    """

    def __init__(self, buf: memoryview):
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise ValueError("header runs past the end of the file")
        v = self.buf[self.pos:self.pos + n]
        self.pos += n
        return v

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return bytes(self.take(self.u64())).decode("utf-8", errors="replace")

    def value(self, vtype: int, depth: int = 0):
        if vtype == _V.STRING:
            return self.string()
        if vtype == _V.ARRAY:
            etype, count = self.u32(), self.u64()
            if etype == _V.STRING:
                buf, pos, starts = self.buf, self.pos, array("q")
                try:
                    for _ in range(count):
                        (n,) = struct.unpack_from("<Q", buf, pos)
                        starts.append(pos)
                        pos += 8 + n
                except struct.error:
                    pos = len(buf) + 1
                if pos > len(buf):
                    raise ValueError("header runs past the end of the file")
                starts.append(pos)
                self.pos = pos
                if count >= StringArray.LAZY_FROM:
                    return StringArray(buf, starts)
                return [_utf8(buf, starts[i], starts[i + 1]) for i in range(count)]
            if etype in _GGUF_SCALARS:
                dt = np.dtype(_GGUF_SCALARS[etype]).newbyteorder("<")
                return np.frombuffer(self.take(dt.itemsize * count), dtype=dt).tolist()
            if depth >= _MAX_NESTING:
                raise ValueError("arrays nested too deeply")
            return [self.value(etype, depth + 1) for _ in range(count)]  # nested arrays
        if vtype in _GGUF_SCALARS:
            dt = np.dtype(_GGUF_SCALARS[vtype]).newbyteorder("<")
            return np.frombuffer(self.take(dt.itemsize), dtype=dt)[0].item()
        raise ValueError(f"unknown GGUF value type {vtype}")


def read_gguf(path: str | os.PathLike) -> Weights:
    """A GGUF file: metadata decoded to Python values, tensors as views into one mmap."""
    p = Path(path)
    size = p.stat().st_size
    try:
        mm = np.memmap(p, dtype=np.uint8, mode="r")
        r = _HeaderReader(memoryview(mm))
        if bytes(r.take(4)) != K.GGUF_MAGIC:
            raise ValueError("bad magic")
        version = r.u32()
        if version not in K.GGUF_VERSIONS:
            raise ValueError(f"unsupported GGUF version {version}")
        n_tensors, n_kv = r.u64(), r.u64()
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string()
            if key in meta:
                raise ValueError(f"duplicate metadata key {key!r}")
            meta[key] = r.value(r.u32())
        infos = []
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.u32()
            if n_dims > MAX_DIMS:
                raise ValueError(f"tensor {name!r} has {n_dims} dimensions")
            dims = [r.u64() for _ in range(n_dims)]
            infos.append((name, dims, r.u32(), r.u64()))
        align = meta.get(K.GENERAL_ALIGNMENT, K.GGUF_DEFAULT_ALIGNMENT)
        if not _is_count(align) or align == 0 or align & (align - 1):
            raise ValueError(f"{K.GENERAL_ALIGNMENT} = {align!r} is not a power of two")
        base = (r.pos + align - 1) // align * align
    except (ValueError, struct.error, UnicodeDecodeError, OverflowError) as e:
        raise WeightsError(f"{p}: truncated or corrupt GGUF file ({e})") from None
    views, extents, seen = [], [], set()
    for name, dims, ggml_type, offset in infos:
        if name in seen:
            raise WeightsError(f"{p}: corrupt GGUF file (tensor {name!r} appears twice)")
        seen.add(name)
        dtype = _ggml_type_name(ggml_type)
        shape = tuple(reversed(dims))
        count = math.prod(shape)
        if dtype in BLOCK_SIZES:
            block, block_bytes = BLOCK_SIZES[dtype]
            if not shape or shape[-1] % block:
                raise WeightsError(f"{p}: tensor {name!r} row of {shape[-1] if shape else 0} is not a "
                                   f"whole number of {dtype} blocks")
            nbytes = count // block * block_bytes
        elif dtype in _SCALAR_TYPE_NP:
            nbytes = count * K.GGML_QUANT_SIZES[dtype][1]
        else:
            raise WeightsError(f"{p}: tensor {name!r} has unsupported type {dtype}")
        if offset % align:
            raise WeightsError(f"{p}: corrupt GGUF file (tensor {name!r} offset {offset} is not a "
                               f"multiple of the alignment {align})")
        _check_extent(p, "GGUF", name, shape, offset, nbytes, max(0, size - base), extents)
        views.append((name, dtype, shape, base + offset, nbytes))
    _check_overlaps(p, "GGUF", extents)
    tensors: dict[str, Tensor] = {}
    for name, dtype, shape, start, nbytes in views:
        raw = mm[start:start + nbytes]
        if dtype in BLOCK_SIZES:
            block, block_bytes = BLOCK_SIZES[dtype]
            data = raw.reshape(math.prod(shape[:-1]), shape[-1] // block * block_bytes)
        else:
            data = raw.view(_SCALAR_TYPE_NP[dtype]).reshape(shape)
        tensors[name] = Tensor(name, dtype, shape, data)
    return Weights(p, "gguf", tensors, meta)


def read_safetensors_dir(d: Path, stem: str = "model") -> Weights:
    """model.safetensors, or the shards listed in model.safetensors.index.json."""
    single = d / f"{stem}.safetensors"
    index = d / f"{stem}.safetensors.index.json"
    if single.is_file():
        return read_safetensors(single)
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as e:
            raise _json_error(index, "corrupt shard index", e) from None
        if not isinstance(weight_map, dict) or not all(
                isinstance(v, str) and v and Path(v).name == v for v in weight_map.values()):
            raise WeightsError(f"{index}: corrupt shard index (weight_map must map tensor names "
                               "to shard file names in this folder)")
        tensors: dict[str, Tensor] = {}
        meta: dict[str, Any] = {}
        for shard in sorted(set(weight_map.values())):
            if not (d / shard).is_file():
                raise WeightsError(f"{d / shard}: shard listed in {index.name} is missing")
            w = read_safetensors(d / shard)
            tensors.update(w.tensors)
            meta.update(w.metadata)
        missing = set(weight_map) - set(tensors)
        if missing:
            raise WeightsError(f"{index}: tensor {sorted(missing)[0]!r} not found in its shard")
        return Weights(index, "safetensors", tensors, meta)
    raise WeightsError(f"{d}: no {stem}.safetensors or {stem}.safetensors.index.json")


def _read_json(p: Path) -> dict | None:
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _json_error(p, "not valid JSON", e) from None
    except OSError as e:
        raise WeightsError(f"{p}: cannot read ({e.strerror})") from None
    if not isinstance(d, dict):
        raise WeightsError(f"{p}: not a JSON object")
    return d


TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json")


def open(path: str | os.PathLike) -> Checkpoint:  # noqa: A001 - the natural name for this API
    """Open a model: GGUF file(s), a safetensors file, or a Hugging Face directory."""
    p = Path(path).expanduser()
    kind = sniff(p)
    if kind == "hf":
        ck = Checkpoint("hf", p, config=_read_json(p / "config.json"),
                        generation_config=_read_json(p / "generation_config.json"))
        if (p / "model.safetensors").is_file() or (p / "model.safetensors.index.json").is_file():
            ck.main = read_safetensors_dir(p)
        st = p / "speech_tokenizer"
        if st.is_dir():
            ck.codec_config = _read_json(st / "config.json")
            ck.codec = read_safetensors_dir(st)
        if ck.main is None and ck.codec is None:
            raise WeightsError(f"{p}: no model.safetensors and no speech_tokenizer/ in this directory")
        ck.files = {n: p / n for n in TOKENIZER_FILES if (p / n).is_file()}
        return ck
    if kind == "safetensors":
        return Checkpoint("safetensors", p.parent, main=read_safetensors(p))
    if kind == "gguf":
        return _gguf_checkpoint(p.parent, [read_gguf(p)], p)
    # a directory of GGUF files
    ggufs = [read_gguf(f) for f in sorted(p.iterdir()) if f.is_file() and _is_gguf(f)]
    return _gguf_checkpoint(p, ggufs, p)


def _gguf_checkpoint(root: Path, given: list[Weights], where: Path) -> Checkpoint:
    ck = Checkpoint("gguf", root)
    for w in given:
        _place(ck, w, where)
    if len(given) == 1 and where.is_file():
        # one file given: look for its partner in the same directory
        want = K.ARCH_CODEC if ck.main is not None else K.ARCH_MAIN
        for f in sorted(root.iterdir()):
            if f == where or not f.is_file() or f.suffix.lower() != ".gguf" or not _is_gguf(f):
                continue
            try:
                w = read_gguf(f)
            except WeightsError:
                continue
            if w.architecture == want:
                _place(ck, w, where)
                break
    if ck.main is None and ck.codec is None:
        raise WeightsError(f"{where}: no {K.ARCH_MAIN} or {K.ARCH_CODEC} GGUF found")
    return ck


def _place(ck: Checkpoint, w: Weights, where: Path) -> None:
    arch = w.architecture
    if arch == K.ARCH_MAIN:
        slot = "main"
    elif arch == K.ARCH_CODEC:
        slot = "codec"
    else:
        raise WeightsError(f"{w.path}: GGUF architecture {arch!r} is not a Qwen3-TTS model "
                           f"(expected {K.ARCH_MAIN!r} or {K.ARCH_CODEC!r})")
    if getattr(ck, slot) is not None:
        raise WeightsError(f"{where}: more than one {arch!r} GGUF file; pass the file you mean")
    setattr(ck, slot, w)
