"""Coverage-guided fuzzing (atheris / libFuzzer) of the weight readers and config loading.

    pip install -e '.[fuzz]'
    python fuzz/run.py --target gguf --runs 100000            # gguf | safetensors | config | model
    python fuzz/run.py --target model --runs 2000 --max-len 0   # the whole load; slow per input

Every input must end in a successful load or an EdgeTTSError (targets.py says what each target
loads); any other exception, a hang (--timeout) or a memory blow-up (--rss-limit-mb) is a
failure: libFuzzer stops, prints the traceback and writes the input to WORKDIR/crash-*. Exit
status 0 when all runs passed. Seeds come from the tiny fixture (seeds.py, made once per
workdir); the corpus libFuzzer grows is kept in WORKDIR/corpus-TARGET for the next run.
Every 10,000 inputs (and at the end) a line `runs N: L loads, E EdgeTTSErrors` goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True, choices=("gguf", "safetensors", "config", "model"))
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "edgetts-fuzz")
    ap.add_argument("--max-len", type=int, default=None,
                    help="largest input in bytes (longer seeds are cut; 0: the largest seed); default: "
                         "256 KB for the readers (the micro seeds fit whole), 64 KB for config, 0 for model")
    ap.add_argument("--seed", type=int, default=1, help="libFuzzer random seed")
    ap.add_argument("--timeout", type=int, default=30, help="seconds one input may take")
    ap.add_argument("--rss-limit-mb", type=int, default=2048)
    args, extra = ap.parse_known_args()

    seeds = args.workdir / "seeds"
    if not (seeds / "codec.gguf").is_file():    # made in a separate process: nothing imported here
        subprocess.run([sys.executable, str(HERE / "seeds.py"), str(seeds)], check=True)
    corpus = args.workdir / f"corpus-{args.target}"
    corpus.mkdir(parents=True, exist_ok=True)
    scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else args.workdir
    scratch = scratch / f"edgetts-fuzz-{os.getpid()}-{args.target}"

    import atheris

    sys.path.insert(0, str(HERE))
    # numba compiles edgetts.kernels from bytecode: instrumented bytecode does not compile
    # (atheris excludes modules by exact name)
    kernels = [f"edgetts.kernels.{f.stem}" for f in (HERE.parent / "edgetts" / "kernels").glob("*.py")]
    with atheris.instrument_imports(include=["edgetts", "quantize", "targets"], exclude=kernels):
        import targets
        one = targets.make(args.target, scratch, codec_gguf=seeds / "codec.gguf")

    # garbage tensor bytes dequantize to inf/nan with numpy's RuntimeWarnings: not a failure
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    counts = {"load": 0, "error": 0}

    def test_one_input(data: bytes) -> None:
        counts[one(data)] += 1
        n = counts["load"] + counts["error"]
        if n % 10_000 == 0 or n == args.runs:
            print(f"runs {n}: {counts['load']} loads, {counts['error']} EdgeTTSErrors", file=sys.stderr,
                  flush=True)

    lf = [sys.argv[0], f"-runs={args.runs}", f"-seed={args.seed}", f"-timeout={args.timeout}",
          f"-rss_limit_mb={args.rss_limit_mb}", f"-artifact_prefix={args.workdir}/crash-{args.target}-",
          "-print_final_stats=1", *extra, str(corpus), str(seeds / args.target)]
    max_len = args.max_len if args.max_len is not None else \
        {"gguf": 1 << 18, "safetensors": 1 << 18, "model": 0}.get(args.target, 1 << 16)
    if max_len:
        lf.insert(1, f"-max_len={max_len}")
    atheris.Setup(lf, test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
