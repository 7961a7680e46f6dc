"""Servers for apps, on one resident model (pip install 'edgetts[server]').

    edgetts serve   -m MODEL [--port 8880]                 # OpenAI-compatible /v1/audio/speech
    edgetts wyoming -m MODEL [--uri tcp://0.0.0.0:10200]   # Wyoming, for Home Assistant

engine.py   one worker thread + bounded queue + cancellation, shared by both servers
voices.py   the model's speakers and saved voice files (--voices DIR)
openai.py   the Starlette app; wyoming.py the Wyoming event handler
serve_cmd.py / wyoming_cmd.py   the two CLI subcommands (thin)
"""
from __future__ import annotations

import argparse
import logging
import sys

from ..errors import EdgeTTSError

DEFAULT_TIME_LIMIT = 300.0


def require_extra(*modules: str) -> None:
    """Fail with one line when the server extra is not installed."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise EdgeTTSError(f"this command needs the '{name}' package: "
                               "pip install 'edgetts[server]'") from None


def add_common(p: argparse.ArgumentParser) -> None:
    """Options both servers share: the model, voices, queue and limits."""
    from quantize.plan import QTYPES

    from ..hub import DEFAULT_MODEL
    from .engine import Limits

    p.add_argument("-m", "--model", default=DEFAULT_MODEL,
                   help=f"checkpoint folder, GGUF file/folder, or hub id (default: {DEFAULT_MODEL})")
    p.add_argument("--qtype", default="q8_0", type=str.lower, choices=QTYPES,
                   help="weight type when a hub model is converted on first use (default: q8_0)")
    p.add_argument("--threads", type=int, help="worker threads for the kernels")
    p.add_argument("--voices", metavar="DIR", help="folder of saved voices (NAME.safetensors)")
    p.add_argument("--language", default="auto",
                   help="language when a request names none (default: auto)")
    p.add_argument("--max-queue", type=int, default=Limits.max_queue, metavar="N",
                   help=f"requests that may wait behind the running one; more get 'busy' "
                        f"(default: {Limits.max_queue})")
    p.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT, metavar="SECONDS",
                   help=f"generation time allowed per request (default: {DEFAULT_TIME_LIMIT:g})")
    p.add_argument("--seed", type=int,
                   help="random seed of every request that sets none (reproducible output)")
    p.add_argument("--no-normalize", action="store_true",
                   help="speak numbers, currency and dates as written (no spelling out)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    # for tests and power users: force the number of frames (80 ms each) of every request
    p.add_argument("--max-frames", type=int, help=argparse.SUPPRESS)
    p.add_argument("--min-frames", type=int, help=argparse.SUPPRESS)


def base_options(args) -> dict:
    """TTS.stream keyword arguments every request of this server gets."""
    kw = {"normalize": not args.no_normalize}
    for name in ("seed", "max_frames", "min_frames"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    return kw


def open_model(args):
    """(tts, engine, catalog) for the parsed common options; checks them before the model loads."""
    from .. import hub
    from ..tts import load
    from .engine import Engine, Limits
    from .voices import Catalog, VoiceLibrary

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="edgetts: %(message)s", stream=sys.stderr)
    library = VoiceLibrary(args.voices)
    limits = Limits(max_queue=args.max_queue, time_limit=args.time_limit)  # checked before the load
    path = hub.resolve(args.model, qtype=args.qtype, progress=sys.stderr.isatty())
    tts = load(path, threads=args.threads)
    catalog = Catalog(tts, library, args.language)
    return tts, Engine(tts, limits), catalog
