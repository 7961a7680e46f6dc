"""Batch throughput: seconds of audio per wall second, local vs Ray, 1 worker x 2 threads vs 2 x 1.

    python bench/batch.py --model /tmp/bench-models/cv06-q4_0 [--items 8]
                          [--configs local:1x2,local:2x1,ray:1x2,ray:2x1]

Baseline, measured in the same run: the same items through TTS.generate in one process with 2
threads (model load not timed). Then each config runs edgetts.batch into a fresh OUTDIR (a
private local Ray instance for ray:, started and stopped inside the job).

Per config: wall_s (whole job), startup_s (Ray start + worker processes + model load),
audio_s_per_s over the whole job and after startup, mean compute per item (TTS.generate inside the
workers), and overhead_per_item_s = (wall - startup) * workers / items - mean compute: the time
per item that is not synthesis (dispatch, transfer, file and manifest writing, idle workers at the
tail). same_samples: every config wrote the baseline's samples. Load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402

TEXTS = ["Hi.", "Yes.", "Thanks.", "Okay.", "Hello.", "Sure.", "Good.", "Bye."]


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def baseline(model: str, items: list[dict]) -> tuple[dict, dict]:
    import soundfile as sf

    import edgetts
    from edgetts.audio import write_audio
    from edgetts.text.normalize import normalize

    tts = edgetts.load(model, threads=2)
    tts.generate(items[0]["text"], seed=0, max_frames=2)   # warm the numba cache
    t0 = time.perf_counter()
    audio, total = {}, 0.0
    for it in items:
        res = tts.generate(normalize(it["text"], "auto"), seed=it["seed"])   # as batch does
        audio[it["id"]] = res.audio
        total += res.duration
    wall = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:      # int16 exactly as batch writes .wav files
        for k, a in audio.items():
            audio[k] = sf.read(str(write_audio(Path(d) / "ref.wav", a, tts.sample_rate)), dtype="int16")[0]
    return {"audio_s": round(total, 2), "wall_s": round(wall, 2), "audio_s_per_s": round(total / wall, 3),
            "compute_per_item_s": round(wall / len(items), 3), "loadavg_after": loadavg()}, audio


def run_config(model: str, src: Path, name: str, ref: dict) -> dict:
    import soundfile as sf

    import edgetts

    backend, shape = name.split(":")
    workers, threads = (int(x) for x in shape.split("x"))
    before = loadavg()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as out:
        opts = edgetts.BatchOptions(model=model, workers=workers, threads_per_worker=threads,
                                    ray=backend == "ray", progress=False)
        s = edgetts.batch(src, out, opts)
        recs = [json.loads(l) for l in (Path(out) / "manifest.jsonl").read_text().splitlines()]
        same = all(np.array_equal(sf.read(str(Path(out) / r["file"]), dtype="int16")[0], ref[r["id"]])
                   for r in recs if r["status"] == "ok")
    n = s.done
    busy = s.wall_s - s.startup_s
    mean_compute = s.compute_s / max(n, 1)
    return {"backend": s.backend, "items": n, "failed": s.failed, "audio_s": round(s.audio_s, 2),
            "wall_s": round(s.wall_s, 2), "startup_s": round(s.startup_s, 2),
            "audio_s_per_s": round(s.audio_s / s.wall_s, 3),
            "audio_s_per_s_after_startup": round(s.audio_s / busy, 3) if busy > 0 else None,
            "compute_per_item_s": round(mean_compute, 3),
            "overhead_per_item_s": round(busy * workers / max(n, 1) - mean_compute, 3),
            "same_samples": same, "loadavg_before": before, "loadavg_after": loadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="GGUF folder (e.g. the random 0.6B at Q4_0)")
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--configs", default="local:1x2,local:2x1,ray:1x2,ray:2x1")
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    items = [{"id": f"b{i:02d}", "text": TEXTS[i % len(TEXTS)], "seed": i} for i in range(args.items)]
    result = {"model": args.model, "items": args.items, "cpus": os.cpu_count(), "loadavg_start": loadavg()}
    result["baseline_generate_1x2"], ref = baseline(args.model, items)
    with tempfile.TemporaryDirectory(prefix="bench-batch-in-") as d:
        src = Path(d) / "in.jsonl"
        src.write_text("".join(json.dumps(it) + "\n" for it in items))
        for name in args.configs.split(","):
            result[name] = run_config(args.model, src, name, ref)
            print(json.dumps({name: result[name]}), file=sys.stderr, flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
