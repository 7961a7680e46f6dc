"""`edgetts wyoming`: Wyoming protocol TTS server for Home Assistant, on one resident model.

    edgetts wyoming -m ./model --uri tcp://0.0.0.0:10200 --language english

In Home Assistant: Settings > Devices & services > Add integration > Wyoming Protocol, host and
port of this machine (or --zeroconf to be found on the network). Home Assistant sends no
language: set the server's with --language. Needs the server extra: pip install 'edgetts[server]'.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

DEFAULT_URI = "tcp://0.0.0.0:10200"


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..streaming import JOIN_SILENCE
    from . import add_common

    p = subparsers.add_parser("wyoming", help="Wyoming protocol TTS server (Home Assistant)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    p.add_argument("--uri", default=DEFAULT_URI,
                   help=f"tcp://HOST:PORT or unix://PATH (default: {DEFAULT_URI})")
    p.add_argument("--voice", help="voice when a request names none (default: the model's first speaker)")
    p.add_argument("--sentence-silence", type=float, default=JOIN_SILENCE, metavar="SECONDS",
                   help=f"silence after each streamed sentence (default: {JOIN_SILENCE})")
    p.add_argument("--zeroconf", nargs="?", const="edgetts", metavar="NAME",
                   help="announce the server over mDNS for Home Assistant discovery (default name: edgetts)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..errors import EdgeTTSError
    from . import base_options, open_model, require_extra

    require_extra("wyoming")
    if args.zeroconf:
        require_extra("zeroconf")
    if args.sentence_silence < 0:
        raise EdgeTTSError("--sentence-silence must be >= 0")
    from wyoming.server import AsyncServer, AsyncTcpServer

    try:
        server = AsyncServer.from_uri(args.uri)
    except ValueError as e:
        raise EdgeTTSError(f"--uri {args.uri}: {e}") from None
    if args.zeroconf and not isinstance(server, AsyncTcpServer):
        raise EdgeTTSError("--zeroconf needs a tcp:// --uri")

    from .wyoming import WyomingTTS

    tts, engine, catalog = open_model(args)
    service = WyomingTTS(engine, catalog, default_voice=args.voice, base_options=base_options(args),
                         sentence_silence=args.sentence_silence)
    try:
        asyncio.run(_serve(server, service, args))
    except KeyboardInterrupt:     # Ctrl-C: the normal way to stop a server
        pass
    except OSError as e:
        raise EdgeTTSError(f"cannot listen on {args.uri}: {e.strerror or e}") from None
    finally:
        engine.close()
    return 0


async def _serve(server, service, args) -> None:
    from wyoming.server import AsyncTcpServer

    await server.start(service.handler)   # binds now: errors surface before "serving"
    where = args.uri
    if isinstance(server, AsyncTcpServer):
        host, port = server.host, server.port
        listening = getattr(server, "_server", None)   # the bound port, when --uri asked for port 0
        if listening is not None and listening.sockets:
            host, port = listening.sockets[0].getsockname()[:2]
        where = f"tcp://{host}:{port}"
        if args.zeroconf:
            from wyoming.zeroconf import HomeAssistantZeroconf

            zc = HomeAssistantZeroconf(name=args.zeroconf, port=port,
                                       host=None if host in ("0.0.0.0", "::") else host)
            await zc.register_server()
            where += f" (announced over mDNS as {args.zeroconf!r})"
    print(f"edgetts: serving Wyoming on {where}", file=sys.stderr, flush=True)
    done = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):   # not on every platform
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    try:
        await done.wait()   # until SIGTERM (or Ctrl-C)
    finally:
        await server.stop()
