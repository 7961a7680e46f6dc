"""Command line: `edgetts say | clone | batch | quantize | info | serve | wyoming | bench`.

Every subcommand module exposes `add_parser(subparsers)` and the parser's `func(args) -> int`.
Errors the user can fix (EdgeTTSError) print one line and exit non-zero, never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from .errors import EdgeTTSError


def build_parser() -> argparse.ArgumentParser:
    from quantize import cli as quantize_cli

    p = argparse.ArgumentParser(prog="edgetts", description="Qwen3-TTS on CPU, no PyTorch.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    quantize_cli.add_parser(sub)
    from . import info; info.add_parser(sub)
    from . import say; say.add_parser(sub)
    from . import clone; clone.add_parser(sub)
    from .serve import serve_cmd; serve_cmd.add_parser(sub)
    from .serve import wyoming_cmd; wyoming_cmd.add_parser(sub)
    from .batching import cli as batch_cli; batch_cli.add_parser(sub)
    from . import bench; bench.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .atomic import exit_code, signals_unwind

    try:
        with signals_unwind():   # SIGTERM/SIGHUP unwind like Ctrl-C: no partial output files
            return int(args.func(args) or 0)
    except EdgeTTSError as e:
        print(f"edgetts: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print("edgetts: interrupted", file=sys.stderr)
        return exit_code(e)


if __name__ == "__main__":
    sys.exit(main())
