"""`edgetts serve`: OpenAI-compatible speech server (POST /v1/audio/speech) on one resident model.

    edgetts serve -m ./model --port 8880
    curl -s localhost:8880/v1/audio/speech -H 'Content-Type: application/json' \\
         -d '{"model": "tts-1", "input": "Hello.", "voice": "ryan", "response_format": "wav"}' > hello.wav

Any OpenAI client works with base_url http://HOST:PORT/v1. Binds to 127.0.0.1 unless --host says
otherwise; with --api-key (or EDGETTS_API_KEY) every request, /health too, needs
`Authorization: Bearer KEY`.
Requests run one at a time; up to --max-queue wait, more get 503 with Retry-After.
Needs the server extra: pip install 'edgetts[server]'.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

API_KEY_ENV = "EDGETTS_API_KEY"


def add_parser(subparsers) -> argparse.ArgumentParser:
    from . import add_common
    from .openai import MAX_INPUT

    p = subparsers.add_parser("serve", help="OpenAI-compatible speech server (HTTP)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8880, help="port (default: 8880)")
    p.add_argument("--api-key", help=f"require this bearer key on every request (default: ${API_KEY_ENV})")
    p.add_argument("--max-input", type=int, default=MAX_INPUT, metavar="CHARS",
                   help=f"longest `input` accepted (default: {MAX_INPUT})")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..errors import EdgeTTSError
    from . import base_options, open_model, require_extra

    require_extra("starlette", "uvicorn")
    import uvicorn

    from .openai import SpeechAPI

    if not 0 <= args.port < 65536:
        raise EdgeTTSError(f"--port {args.port}: not a port number")
    if args.max_input < 1:
        raise EdgeTTSError("--max-input must be >= 1")
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV)
    sock = listen(args.host, args.port)    # before the (slow) load: a taken port fails at once
    try:
        tts, engine, catalog = open_model(args)
    except BaseException:
        sock.close()
        raise
    api = SpeechAPI(engine, catalog, model_id=Path(str(args.model)).name or str(args.model),
                    api_key=api_key, base_options=base_options(args), max_input=args.max_input)
    config = uvicorn.Config(api.app(), lifespan="off", log_level="info" if args.verbose else "warning",
                            access_log=args.verbose, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    if not api_key and not _is_loopback(host):
        print(f"edgetts: warning: {host} is reachable from other machines and no --api-key is set",
              file=sys.stderr)
    print(f"edgetts: serving {tts.model_type} on http://{host}:{port}/v1"
          f"{' (API key required)' if api_key else ''}", file=sys.stderr, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        engine.close()
        sock.close()
    return 0


def _is_loopback(host: str) -> bool:
    import ipaddress
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int):
    """A listening TCP socket (port 0: any free port), or a one-line error."""
    import socket

    from ..errors import EdgeTTSError

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as e:
        raise EdgeTTSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
