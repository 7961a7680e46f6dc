"""`edgetts clone REF_AUDIO -o VOICE.safetensors`: make a reusable voice from a recording.

    edgetts clone me.wav -o me.safetensors                          # x-vector only
    edgetts clone me.wav --ref-text "What I say in me.wav." -o me.safetensors   # in-context (closer)
    edgetts say --voice me.safetensors "Hello in my voice."
    edgetts say --ref-audio me.wav --ref-text-file me.txt "One-shot, nothing saved."

Needs a Base model (default: Qwen/Qwen3-TTS-12Hz-0.6B-Base). A clean 3-20 s clip of one speaker
works best; the transcript must be what is said in the clip. Any rate / channel count soundfile
reads is accepted (mixed to mono, resampled to 24 kHz); longer than 30 s is trimmed.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from .errors import EdgeTTSError

BASE_MODEL = "Qwen/Qwen3-TTS-12Hz-0.6B-Base"


def add_ref_text_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ref-text", metavar="TEXT",
                   help="transcript of the reference audio (enables in-context cloning)")
    g.add_argument("--ref-text-file", metavar="FILE", help="read the transcript from FILE (UTF-8)")


def ref_text(args) -> str | None:
    """The transcript from --ref-text / --ref-text-file, or None."""
    if getattr(args, "ref_text_file", None):
        p = Path(args.ref_text_file).expanduser()
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise EdgeTTSError(f"{p}: no such transcript file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise EdgeTTSError(f"{p}: cannot read transcript ({getattr(e, 'strerror', None) or e})") from None
        if not text.strip():
            raise EdgeTTSError(f"{p}: transcript file is empty")
        return " ".join(text.split())
    t = getattr(args, "ref_text", None)
    if t is not None and not t.strip():
        raise EdgeTTSError("--ref-text is empty")
    return t


def check_voice_path(path) -> Path:
    p = Path(str(path)).expanduser()
    if p.is_dir():
        raise EdgeTTSError(f"{p}: is a directory; give a file name like voice.safetensors")
    if not p.parent.is_dir():
        raise EdgeTTSError(f"{p.parent}: no such directory")
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    from quantize.plan import QTYPES

    p = subparsers.add_parser("clone", help="make a voice file from a reference recording (Base models)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ref_audio", metavar="REF_AUDIO", help="reference recording (wav, flac, ogg, ...)")
    add_ref_text_args(p)
    p.add_argument("-o", "--output", required=True, metavar="VOICE.safetensors", help="voice file to write")
    p.add_argument("-m", "--model", default=BASE_MODEL,
                   help=f"Base checkpoint folder, GGUF file/folder, or hub id (default: {BASE_MODEL})")
    p.add_argument("--qtype", default="q8_0", type=str.lower, choices=QTYPES,
                   help="weight type when a hub model is converted on first use (default: q8_0)")
    p.add_argument("--threads", type=int, help="worker threads for the kernels")
    p.add_argument("-v", "--verbose", action="store_true", help="print timings to stderr")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from . import hub
    from .say import _one_line_warnings
    from .tts import load
    from .voice import read_audio, reference_audio

    _one_line_warnings()
    out = check_voice_path(args.output)
    text = ref_text(args)
    data, sr = read_audio(args.ref_audio)          # unreadable / empty / NaN: fail before the model load
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # the trim warning comes once, from clone_voice
        reference_audio(data, sr)
    t0 = time.perf_counter()
    tts = load(hub.resolve(args.model, qtype=args.qtype, progress=sys.stderr.isatty()), threads=args.threads)
    t1 = time.perf_counter()
    voice = tts.clone_voice(data, sr, ref_text=text)
    t2 = time.perf_counter()
    voice.save(out)
    what = (f"x-vector + {voice.ref_codes.shape[0]} reference frames + transcript" if voice.icl
            else "x-vector only (add --ref-text for in-context cloning)")
    print(f"edgetts: wrote {out} ({what})", file=sys.stderr)
    if args.verbose:
        print(f"edgetts: model load {t1 - t0:.2f} s, clone {t2 - t1:.2f} s", file=sys.stderr)
    return 0
