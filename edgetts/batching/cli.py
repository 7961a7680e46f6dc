"""`edgetts batch INPUT.jsonl -o OUTDIR`: the command line of edgetts.batch (see its docstring)."""
from __future__ import annotations

import argparse
import sys

from ..errors import EdgeTTSError


def add_parser(subparsers) -> argparse.ArgumentParser:
    from quantize.plan import QTYPES

    from . import FORMATS, BatchOptions, __doc__ as doc

    d = BatchOptions()
    p = subparsers.add_parser("batch", help="many texts (JSONL) to audio files, all cores or a Ray cluster",
                              description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT.jsonl", help="one JSON object per line: id, text, ...")
    p.add_argument("-o", "--output-dir", required=True, metavar="OUTDIR",
                   help="folder for <id>.<format> files and manifest.jsonl (created if needed)")
    p.add_argument("-m", "--model", default=d.model,
                   help=f"checkpoint folder, GGUF file/folder, or hub id (default: {d.model})")
    p.add_argument("--qtype", default=d.qtype, type=str.lower, choices=QTYPES,
                   help=f"weight type when a hub model is converted on first use (default: {d.qtype})")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes / Ray actors (default: CPUs // threads per worker)")
    p.add_argument("--threads-per-worker", type=int, default=d.threads_per_worker, metavar="T",
                   help=f"kernel threads in each worker (default: {d.threads_per_worker})")
    p.add_argument("--ray", nargs="?", const=True, default=False, metavar="ADDRESS",
                   help="run on Ray: a private local instance, or join the cluster at ADDRESS "
                        "(give INPUT first: `--ray in.jsonl` would read in.jsonl as the address)")
    p.add_argument("--format", default=d.format, choices=FORMATS,
                   help=f"audio file format (default: {d.format})")
    p.add_argument("--retries", type=int, default=d.retries,
                   help=f"retries of an item whose worker died (default: {d.retries})")
    p.add_argument("--no-normalize", action="store_true",
                   help="speak numbers, currency and dates as written (no spelling out)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from . import BatchOptions, batch

    opts = BatchOptions(model=args.model, workers=args.workers, threads_per_worker=args.threads_per_worker,
                        ray=args.ray, format=args.format, retries=args.retries,
                        normalize=not args.no_normalize, qtype=args.qtype,
                        progress=False if args.no_progress else None)
    summary = batch(args.input, args.output_dir, opts)
    print(f"edgetts: batch: {summary}", file=sys.stderr, flush=True)
    if summary.failed:
        raise EdgeTTSError(f"{summary.failed} item(s) failed; their errors are in {summary.manifest}")
    return 0
