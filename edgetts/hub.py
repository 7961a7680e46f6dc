"""Model ids -> local files: Hugging Face download, one-time GGUF conversion, offline mode.

    resolve("./my-model")                           -> Path("./my-model")   (local: as is)
    resolve("Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice")  -> ~/.cache/edgetts/Qwen--Qwen3-TTS-12Hz-0.6B-CustomVoice-q8_0/

A hub id is fetched with huggingface_hub.snapshot_download into the Hugging Face cache
($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), then converted ONCE to the GGUF
pair (quantize.convert) in the edgetts cache ($EDGETTS_CACHE, else ~/.cache/edgetts);
later runs find the GGUF folder and touch neither the hub nor the checkpoint. A repository that
already holds GGUF files is used directly.

Offline (HF_HUB_OFFLINE=1, read at every call, not only at import): only the local cache is
consulted (local_files_only=True); a model that is not there is an EdgeTTSError naming it and
the way out (a local path with -m).
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from .errors import EdgeTTSError

DEFAULT_MODEL = "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
# what a checkpoint needs; skips README images, original PyTorch .bin/.pt duplicates, etc.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.gguf", "speech_tokenizer/*"]
_DONE = ".edgetts-complete"   # marker written last into a finished conversion folder


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


def offline() -> bool:
    if _truthy(os.environ.get("HF_HUB_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
        return bool(constants.HF_HUB_OFFLINE)
    except Exception:
        return False


def hf_cache_dir() -> Path:
    """The hub cache, from the environment at call time (huggingface_hub reads it at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants
    return Path(constants.HF_HUB_CACHE)


def cache_dir() -> Path:
    """Where converted GGUF folders live: $EDGETTS_CACHE or ~/.cache/edgetts."""
    if os.environ.get("EDGETTS_CACHE"):
        return Path(os.environ["EDGETTS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "edgetts"


def is_hub_id(model: str) -> bool:
    return bool(HUB_ID.fullmatch(model)) and not model.startswith((".", "/", "~"))


def converted_dir(model: str, qtype: str) -> Path:
    org, name = model.split("/", 1)
    return cache_dir() / f"{org}--{name}-{qtype}"


def download(model: str) -> Path:
    """snapshot_download into the HF cache (local_files_only when offline) -> snapshot folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    off = offline()
    try:
        path = snapshot_download(repo_id=model, cache_dir=str(hf_cache_dir()), local_files_only=off,
                                 allow_patterns=ALLOW_PATTERNS)
    except LocalEntryNotFoundError:
        why = "downloads are off (HF_HUB_OFFLINE=1)" if off else "the hub cannot be reached"
        raise EdgeTTSError(
            f"model {model} is not in the Hugging Face cache ({hf_cache_dir()}) and {why}; "
            f"download it once online, or pass a local checkpoint folder or GGUF file with -m PATH") from None
    except Exception as e:  # missing repo, auth, HTTP errors: one line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgeTTSError(f"{model}: cannot download from the Hugging Face hub ({msg}); "
                           f"pass a local path with -m PATH") from None
    return Path(path)


def _has_gguf(d: Path) -> bool:
    return any(p.suffix.lower() == ".gguf" for p in d.iterdir() if p.is_file())


def resolve(model: str, qtype: str = "q8_0", progress: bool = True) -> Path:
    """Local path for a model path or hub id (downloading and converting on first use)."""
    model = str(model)
    p = Path(model).expanduser()
    if p.exists():
        return p
    if not is_hub_id(model):
        raise EdgeTTSError(f"{model}: no such file or directory (and not a hub id like Org/Name)")
    from quantize.plan import QTYPES

    qtype = qtype.lower()
    if qtype not in QTYPES:
        raise EdgeTTSError(f"unknown qtype {qtype!r}; choose one of: {', '.join(QTYPES)}")
    out = converted_dir(model, qtype)
    if (out / _DONE).is_file():
        return out
    src = download(model)
    if _has_gguf(src):
        return src
    if not (src / "config.json").is_file():
        raise EdgeTTSError(f"{model}: the hub snapshot {src} has no config.json; not a Qwen3-TTS checkpoint")
    convert(src, qtype, out, progress=progress, name=model)
    return out


def convert(src: Path, qtype: str, out: Path, progress: bool = True, name: str | None = None) -> Path:
    """Convert a checkpoint folder into the GGUF folder `out`, atomically (temp folder + rename)."""
    from quantize.convert import convert as quantize_convert

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        print(f"edgetts: converting {name or src} to GGUF {qtype} (once) into {out}", file=sys.stderr)
    try:
        quantize_convert(src, qtype, tmp, name=(name or str(src)).split("/")[-1], progress=progress,
                         out=sys.stderr if progress else _Null())
        (tmp / _DONE).write_text(f"{name or src}\n{qtype}\n")
        if out.exists():  # an unfinished folder from an older run
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


class _Null:
    def write(self, s):
        return len(s)

    def flush(self):
        pass
