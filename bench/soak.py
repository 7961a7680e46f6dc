"""Soak: a long text streamed with `edgetts say -o`; memory stays flat and every sentence is written.

    python bench/soak.py --minutes 30 [--model DIR] [--frames 25] [--interval 0.5]

Runs the real command line in a subprocess on `--minutes` of audio (one sentence per input line,
each forced to `--frames` frames so the expected file length is exact), samples its resident
set (VmRSS) every `--interval` seconds, and counts the sentences `say -v` reports. Baseline: the
RSS after warm-up (the first `--warmup` sentences); the figure is the growth over that baseline
until the end. Prints one JSON object (bench/_common.json_out); exit status 1 when a sentence is
missing, the file length is off, or the growth exceeds `--max-growth-mb` (default 50).

Default model: the tiny test fixture (minutes of audio in seconds of wall time); point --model at
a full-size checkpoint (bench/make_random_model.py) for the real thing.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common  # noqa: F401  (puts the checkout on sys.path)
from _common import json_out, run_info

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny"
_REPORT = re.compile(r"^edgetts: ([0-9.]+) s of audio \((\d+) frames, (\d+) chunk")
WORDS = ("quiet river morning garden lantern window meadow harbor pebble thunder orchard candle "
         "feather valley silver forest breeze shadow marble castle").split()


def sentences(n: int) -> list[str]:
    """n distinct short sentences (one chunk each), deterministic."""
    out = []
    for i in range(n):
        w = [WORDS[(i * k + k) % len(WORDS)] for k in (1, 3, 7)]
        out.append(f"Sentence {i + 1}: the {w[0]} and the {w[1]} near the {w[2]}.")
    return out


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def soak(minutes: float, model: Path = TINY, frames: int = 25, interval: float = 0.5,
         warmup: int = 5, silence: float = 0.12, workdir: Path | None = None) -> dict:
    from edgetts import weights
    from edgetts.models.config import CodecConfig

    ck = weights.open(model)
    codec = CodecConfig.from_checkpoint(ck)
    spf, sr = codec.samples_per_frame, codec.sample_rate
    per_sentence = frames * spf / sr + silence
    n = max(warmup + 2, int(round(minutes * 60 / per_sentence)))
    text = "\n".join(sentences(n)) + "\n"
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        out = Path(tmp) / "soak.wav"
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, "-m", "edgetts.cli", "say", "-m", str(model), "-o", str(out), "-v",
               "--seed", "1", "--max-frames", str(frames), "--min-frames", str(frames),
               "--sentence-silence", str(silence), "--stuck-stop", "0"]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        reports: list[tuple[float, float]] = []      # (time, RSS) when each sentence was done
        other: list[str] = []
        samples: list[tuple[float, float]] = []

        def read_stderr():
            for line in p.stderr:
                m = _REPORT.match(line)
                if m:
                    reports.append((time.perf_counter() - t0, rss_mb(p.pid) or 0.0))
                elif "loaded" not in line:
                    other.append(line.rstrip())
        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        feeder = threading.Thread(target=lambda: (p.stdin.write(text), p.stdin.close()), daemon=True)
        feeder.start()
        while p.poll() is None:
            r = rss_mb(p.pid)
            if r is not None:
                samples.append((time.perf_counter() - t0, r))
            time.sleep(interval)
        reader.join()
        wall = time.perf_counter() - t0
        import soundfile as sf
        file_frames = sf.info(str(out)).frames if out.exists() else 0
    expected = n * frames * spf + (n - 1) * int(round(silence * sr))
    t_warm = reports[warmup - 1][0] if len(reports) >= warmup else wall
    after = [r for t, r in samples if t >= t_warm] + [r for t, r in reports[warmup:]]
    base = reports[warmup - 1][1] if len(reports) >= warmup else None
    growth = (max(after) - base) if after and base else None
    return {
        "model": str(model), "sentences_in": n, "sentences_written": len(reports),
        "frames_per_sentence": frames, "audio_s": file_frames / sr, "expected_audio_s": expected / sr,
        "file_length_ok": file_frames == expected, "returncode": p.returncode,
        "wall_s": round(wall, 2), "rtf": round(wall / (file_frames / sr), 3) if file_frames else None,
        "rss_mb": {"baseline_after_warmup": base, "max_after_warmup": max(after) if after else None,
                   "first": samples[0][1] if samples else None, "end": reports[-1][1] if reports else None,
                   "samples": len(samples)},
        "rss_growth_after_warmup_mb": round(growth, 2) if growth is not None else None,
        "stderr_other": other[:5],
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="minutes of audio (default 30)")
    ap.add_argument("--model", type=Path, default=TINY)
    ap.add_argument("--frames", type=int, default=25, help="frames per sentence (80 ms each)")
    ap.add_argument("--interval", type=float, default=0.5, help="RSS sampling interval, seconds")
    ap.add_argument("--warmup", type=int, default=5, help="sentences before the RSS baseline")
    ap.add_argument("--max-growth-mb", type=float, default=50.0)
    args = ap.parse_args()
    res = soak(args.minutes, args.model, args.frames, args.interval, args.warmup)
    res["run_info"] = run_info()
    json_out(res)
    ok = (res["returncode"] == 0 and res["sentences_written"] == res["sentences_in"]
          and res["file_length_ok"] and res["rss_growth_after_warmup_mb"] is not None
          and res["rss_growth_after_warmup_mb"] <= args.max_growth_mb)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
