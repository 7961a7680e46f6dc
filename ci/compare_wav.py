"""Compare two 16-bit audio files sample for sample (x86 vs emulated aarch64 `say -o` output).

    python ci/compare_wav.py A.wav B.wav [--max-lsb N]

Prints the largest difference in 16-bit steps (LSB) and exits 1 when the files differ in length,
rate or by more than --max-lsb (default: README "ARM boards", the documented float difference).
"""
import argparse
import sys

import numpy as np
import soundfile as sf


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--max-lsb", type=int, default=1)
    args = ap.parse_args()
    a, ra = sf.read(args.a, dtype="int16")
    b, rb = sf.read(args.b, dtype="int16")
    if ra != rb or a.shape != b.shape:
        print(f"compare_wav: {args.a} {a.shape} @ {ra} Hz vs {args.b} {b.shape} @ {rb} Hz")
        return 1
    d = np.abs(a.astype(np.int32) - b.astype(np.int32))
    print(f"compare_wav: {a.shape[0]} samples, max difference {d.max()} LSB, "
          f"{np.count_nonzero(d)} samples differ ({args.a} vs {args.b})")
    return 0 if d.max() <= args.max_lsb else 1


if __name__ == "__main__":
    sys.exit(main())
