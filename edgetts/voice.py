"""Cloned voices: reference audio in, a reusable `Voice` out (Base models, spec/talker.md §4.4).

    tts = edgetts.load("Qwen/Qwen3-TTS-12Hz-0.6B-Base")
    v = tts.clone_voice("me.wav", ref_text="What I say in me.wav.")   # x-vector + codes + transcript
    v.save("me.voice.safetensors")
    v = edgetts.Voice.load("me.voice.safetensors")
    tts.generate("Hello.", voice=v)

A Voice without a transcript holds only the x-vector (x-vector-only cloning); with one it also
holds the reference codes and the transcript's token ids (in-context cloning, closer to the
reference). The file is one small safetensors file; its metadata names the model it belongs to
(type, size, enc_dim, groups and a fingerprint of weights that every format of that model
stores bit-identically), so a voice cannot be used with another model by mistake.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EdgeTTSError

FORMAT = "edgetts-voice"
VERSION = "1"
MAX_REF_SECONDS = 30.0     # longer references are trimmed (upstream advises short clips)
SILENCE_DBFS = -60.0       # a reference whose peak is below this is treated as silence
RESAMPLE_QUALITY = "soxr_hq"   # librosa.resample's default (res_type="soxr_hq"), as upstream
# 1-D float tensors the quantizer always stores as F32 (bit-identical to the checkpoint's values
# in every format), hashed into the model fingerprint.
FINGERPRINT_TENSORS = ("talker.output_norm.weight", "code_pred.output_norm.weight", "spk_enc.fc.bias")


# ------------------------------------------------------------------------------ reference audio
def read_audio(path) -> tuple[np.ndarray, int]:
    """(float32 samples [, channels], sample rate) of an audio file soundfile can read."""
    import soundfile as sf

    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise EdgeTTSError(f"{p}: no such audio file")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=False)
    except Exception as e:  # noqa: BLE001 - soundfile raises several types for bad files
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgeTTSError(f"{p}: cannot read audio ({msg})") from None
    return data, int(sr)


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """soxr high-quality resampling, length ceil(n * sr_out / sr_in) as librosa.resample gives."""
    if sr_in == sr_out:
        return y
    import soxr

    out = soxr.resample(y, sr_in, sr_out, quality=RESAMPLE_QUALITY)
    # librosa's length, float rounding included: 220500 samples 22050 -> 24000 Hz give 240001
    ratio = float(sr_out) / sr_in
    n = int(np.ceil(y.shape[0] * ratio))
    if out.shape[0] >= n:
        return np.ascontiguousarray(out[:n], np.float32)
    return np.pad(out, (0, n - out.shape[0])).astype(np.float32)


def reference_audio(audio, sample_rate: int | None, min_seconds: float = 0.0) -> tuple[np.ndarray, int]:
    """Checked mono float32 reference and its rate: a path (read with soundfile) or an array
    (mono [samples] or [samples, channels], averaged over channels as upstream does)."""
    if isinstance(audio, (str, os.PathLike)):
        data, sr = read_audio(audio)
        if sample_rate is not None and int(sample_rate) != sr:
            raise EdgeTTSError(f"{audio}: the file is {sr} Hz but sample_rate={sample_rate} was given")
        where = f"{audio}: "
    else:
        if sample_rate is None:
            raise EdgeTTSError("reference audio given as samples needs sample_rate=")
        data, sr, where = audio, int(sample_rate), ""
        if np.issubdtype(np.asarray(data).dtype, np.integer):
            raise EdgeTTSError(f"reference audio must be float samples in [-1, 1], got {np.asarray(data).dtype} "
                               "(divide 16-bit PCM by 32768)")
        try:
            data = np.asarray(data, dtype=np.float32)
        except (TypeError, ValueError):
            raise EdgeTTSError("reference audio must be an array of float samples") from None
    if sr <= 0:
        raise EdgeTTSError(f"{where}sample rate must be positive, got {sr}")
    if data.ndim == 2:
        data = data.mean(axis=-1, dtype=np.float32)
    elif data.ndim != 1:
        raise EdgeTTSError(f"{where}reference audio must be [samples] or [samples, channels], got shape {data.shape}")
    if data.size == 0:
        raise EdgeTTSError(f"{where}reference audio is empty")
    if not np.isfinite(data).all():
        raise EdgeTTSError(f"{where}reference audio contains NaN or infinite samples")
    max_n = int(MAX_REF_SECONDS * sr)
    if data.shape[0] > max_n:
        warnings.warn(f"reference audio is {data.shape[0] / sr:.1f} s long; using its first "
                      f"{MAX_REF_SECONDS:.0f} s (short clips of 3-20 s clone best)", stacklevel=3)
        data = data[:max_n]
    if data.shape[0] < min_seconds * sr:
        raise EdgeTTSError(f"{where}reference audio is too short ({data.shape[0] / sr:.3f} s); "
                           f"the encoders need at least {min_seconds:.3f} s")
    peak = float(np.abs(data).max())
    if peak <= 10 ** (SILENCE_DBFS / 20):
        db = "-inf" if peak == 0 else f"{20 * np.log10(peak):.0f}"
        raise EdgeTTSError(f"{where}reference audio is silent (peak {db} dBFS)")
    return np.ascontiguousarray(data, np.float32), sr


# ------------------------------------------------------------------------------ model identity
def model_fingerprint(tts) -> str:
    """Hex digest identifying the talker (+ speaker encoder) weights, the same for the Hugging
    Face checkpoint and every GGUF quantization of it."""
    from .gguf.names import GGUFView

    cfg = tts.cfg
    h = hashlib.sha256()
    h.update(json.dumps([cfg.model_type, cfg.talker.hidden, cfg.num_code_groups, cfg.predictor.vocab,
                         cfg.talker.n_layers, cfg.predictor.n_layers]).encode())
    view = GGUFView(tts.checkpoint.main)
    for name in FINGERPRINT_TENSORS:
        if name in view:
            h.update(name.encode())
            h.update(np.ascontiguousarray(view[name].numpy(), np.float32).tobytes())
    return h.hexdigest()[:32]


# ------------------------------------------------------------------------------ Voice
@dataclass(eq=False)
class Voice:
    """A cloned voice: x-vector, and for in-context cloning the reference codes + transcript ids."""
    speaker_embedding: np.ndarray               # float32 [enc_dim]
    ref_codes: np.ndarray | None = None         # int64 [frames, groups]
    ref_text_ids: np.ndarray | None = None      # int64 [n]
    ref_text: str | None = None                 # the transcript, when given as text
    model: dict | None = None                   # model_type, model_size, enc_dim, groups, fingerprint

    @property
    def icl(self) -> bool:
        return self.ref_codes is not None

    def check_model(self, tts) -> None:
        """EdgeTTSError unless this voice was made with `tts`'s model."""
        if tts.model_type != "base":
            raise EdgeTTSError(f"voices need a Base model; this one is {tts.model_type}")
        want = voice_model_info(tts)
        have = self.model or {}
        if have.get("fingerprint") and have["fingerprint"] != want["fingerprint"]:
            raise EdgeTTSError(
                f"this voice was made with another model ({_describe(have)}); this model is "
                f"{_describe(want)}: clone the voice again with this model")
        if self.speaker_embedding.shape != (want["enc_dim"],):
            raise EdgeTTSError(f"voice x-vector has {self.speaker_embedding.shape[0]} values; this model "
                               f"needs {want['enc_dim']}")
        if self.ref_codes is not None and self.ref_codes.shape[1] != want["groups"]:
            raise EdgeTTSError(f"voice reference codes have {self.ref_codes.shape[1]} groups; this model "
                               f"needs {want['groups']}")

    def generate_kwargs(self) -> dict:
        """speaker_embedding / ref_codes / ref_text for TTS.generate (spec §4.4)."""
        kw = {"speaker_embedding": self.speaker_embedding}
        if self.ref_codes is not None:
            kw["ref_codes"] = self.ref_codes
            kw["ref_text"] = [int(i) for i in self.ref_text_ids]
        return kw

    # -- file ------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write one safetensors file (atomically: a reader never sees half a file)."""
        p = Path(str(path)).expanduser()
        arrays = {"speaker_embedding": np.ascontiguousarray(self.speaker_embedding, np.float32)}
        if self.ref_codes is not None:
            arrays["ref_codes"] = np.ascontiguousarray(self.ref_codes, np.int64)
            arrays["ref_text_ids"] = np.ascontiguousarray(self.ref_text_ids, np.int64)
        meta = {"format": FORMAT, "version": VERSION}
        meta.update({k: str(v) for k, v in (self.model or {}).items()})
        if self.ref_text is not None:
            meta["ref_text"] = self.ref_text
        from . import __version__
        meta["edgetts"] = __version__
        data = _safetensors_bytes(arrays, meta)
        if p.is_dir():
            raise EdgeTTSError(f"{p}: is a directory; give a file name like voice.safetensors")
        if not p.parent.is_dir():
            raise EdgeTTSError(f"{p.parent}: no such directory")
        fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return p

    @classmethod
    def load(cls, path) -> "Voice":
        """Read a voice file; a missing, foreign or corrupt file is an EdgeTTSError."""
        from .weights import WeightsError, read_safetensors, sniff

        p = Path(str(path)).expanduser()
        if not p.is_file():
            raise EdgeTTSError(f"{p}: no such voice file")
        try:
            if sniff(p) != "safetensors":
                raise WeightsError("not a safetensors file")
            w = read_safetensors(p)
        except WeightsError as e:
            raise EdgeTTSError(f"{p}: not a voice file ({str(e).replace(str(p) + ': ', '')})") from None
        meta = w.metadata
        if meta.get("format") != FORMAT:
            raise EdgeTTSError(f"{p}: not an edgetts voice file (no '{FORMAT}' metadata)")
        if meta.get("version") != VERSION:
            raise EdgeTTSError(f"{p}: voice file version {meta.get('version')!r} is not supported "
                               f"(this edgetts reads version {VERSION})")

        def arr(name, dtype, ndim):
            t = w.get(name)
            if t is None:
                return None
            if t.dtype != dtype or len(t.shape) != ndim:
                raise EdgeTTSError(f"{p}: corrupt voice file ({name} is {t.dtype} {list(t.shape)})")
            return np.array(t.data)

        x = arr("speaker_embedding", "F32", 1)
        codes = arr("ref_codes", "I64", 2)
        ids = arr("ref_text_ids", "I64", 1)
        if x is None:
            raise EdgeTTSError(f"{p}: corrupt voice file (no speaker_embedding)")
        if (codes is None) != (ids is None):
            raise EdgeTTSError(f"{p}: corrupt voice file (ref_codes and ref_text_ids come together)")
        if not np.isfinite(x).all():
            raise EdgeTTSError(f"{p}: corrupt voice file (speaker_embedding has NaN/inf)")
        if codes is not None and (codes.shape[0] == 0 or ids.shape[0] == 0 or codes.min() < 0):
            raise EdgeTTSError(f"{p}: corrupt voice file (empty or negative reference codes / ids)")
        model = {k: meta[k] for k in ("model_type", "model_size", "fingerprint") if k in meta}
        try:
            for k in ("enc_dim", "groups"):
                if k in meta:
                    model[k] = int(meta[k])
        except ValueError:
            raise EdgeTTSError(f"{p}: corrupt voice file (metadata {k}={meta[k]!r})") from None
        if model.get("enc_dim") not in (None, x.shape[0]):
            raise EdgeTTSError(f"{p}: corrupt voice file (enc_dim {model['enc_dim']} but {x.shape[0]} values)")
        return cls(speaker_embedding=x, ref_codes=codes, ref_text_ids=ids,
                   ref_text=meta.get("ref_text"), model=model)


_ST_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}


def _safetensors_bytes(arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """A safetensors file with a deterministic header (sorted keys; the safetensors package
    writes its metadata map in hash order, so two saves of one voice could differ)."""
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, off = [], 0
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _ST_DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return len(h).to_bytes(8, "little") + h + b"".join(blobs)


def voice_model_info(tts) -> dict:
    cfg = tts.cfg
    return {"model_type": cfg.model_type, "model_size": cfg.model_size, "enc_dim": int(cfg.speaker_dim or cfg.talker.hidden),
            "groups": int(cfg.num_code_groups), "fingerprint": tts.fingerprint}


def _describe(m: dict) -> str:
    return (f"{m.get('model_type', '?')} {m.get('model_size') or '?'}, enc_dim {m.get('enc_dim', '?')}, "
            f"fingerprint {str(m.get('fingerprint', '?'))[:12]}")
