"""Servers: time to first byte over HTTP (`edgetts serve`) and Wyoming vs in-process TTFA; RTF
with 1 and 4 concurrent HTTP clients; server RSS over many sequential requests.

    python bench/serve.py [--model /tmp/bench-models/cv06-q4_0] [--threads 2] [--frames 50]
                          [--runs 3] [--rss-requests 500] [--rss-model tests/fixtures/tiny]

Model: a GGUF folder of the full-size 0.6B (random weights, real shapes: bench/make_random_model.py
then `edgetts quantize SRC --qtype q4_0 -o DIR`). Every request is forced to --frames frames
(80 ms each) so all paths do the same work.

Same run, one after the other (never two models at once on the shared cores):
  1. baseline, in this process: TTS.stream first chunk (TTFA) and streaming RTF, best of --runs;
  2. `edgetts serve` subprocess: TTFB = request sent -> first body byte (pcm), RTF = request
     wall / audio seconds, best of --runs; then 4 clients at once: per-request wall and the
     aggregate RTF (wall of the batch / total audio);
  3. `edgetts wyoming` subprocess: TTFB = synthesize sent -> first audio-chunk event;
  4. RSS: a server on --rss-model (default: the tiny fixture, so 500 requests take a minute, not
     an hour) answers --rss-requests sequential wav requests (12 frames each); its RSS after 20
     warm-up requests and at the end (the issue asks for flat within 30 MB).
Prints one JSON object with the load average before and after.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

TEXT = ("The quick brown fox jumps over the lazy dog, and then it runs back into the forest "
        "where the trees are tall and the air is cool and quiet.")


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def start(command: str, args: list[str], log: Path):
    env = dict(os.environ, PYTHONPATH=str(_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "edgetts.cli", command, *args], stdout=out,
                            stderr=subprocess.STDOUT, env=env)
    pat = re.compile(rb"serving .* on (?:http|tcp)://([\d.]+):(\d+)")
    while True:
        m = pat.search(log.read_bytes())
        if m:
            return proc, out, m.group(1).decode(), int(m.group(2))
        if proc.poll() is not None:
            raise SystemExit(f"{command} did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


def stop(proc, out) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def baseline(model: str, threads: int, frames: int, runs: int) -> dict:
    import edgetts

    tts = edgetts.load(model, threads=threads)
    voice = tts.speakers[0]                            # from the checkpoint
    kw = dict(speaker=voice, seed=0, max_frames=frames, min_frames=frames)
    list(tts.stream(TEXT, **kw))                       # warm-up (numba cache, pages)
    ttfa, rtf = [], []
    for _ in range(runs):
        s = tts.stream(TEXT, **kw)
        list(s)
        ttfa.append(s.timings["ttfa_s"])
        rtf.append(s.timings["rtf"])
    return {"voice": voice, "ttfa_s": min(ttfa), "ttfa_all_s": ttfa, "rtf": min(rtf), "rtf_all": rtf}


def http_request(host: str, port: int, voice: str, seed: int, text: str = TEXT) -> dict:
    body = json.dumps({"model": "tts-1", "input": text, "voice": voice, "response_format": "pcm",
                       "seed": seed})
    conn = http.client.HTTPConnection(host, port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/audio/speech", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        raise SystemExit(f"HTTP {r.status}: {r.read()[:300]!r}")
    first = r.read1(65536)
    ttfb = time.perf_counter() - t0
    n = len(first) + len(r.read())
    wall = time.perf_counter() - t0
    conn.close()
    return {"ttfb_s": ttfb, "wall_s": wall, "audio_s": n / 2 / 24000}


def bench_http(model, threads, frames, runs, voice, tmp: Path) -> dict:
    proc, out, host, port = start("serve", ["-m", model, "--threads", str(threads), "--port", "0",
                                            "--max-frames", str(frames), "--min-frames", str(frames),
                                            "--max-queue", "8"], tmp / "serve.log")
    try:
        http_request(host, port, voice, 0)              # warm-up
        one = [http_request(host, port, voice, 0) for _ in range(runs)]
        results: list = [None] * 4

        def client(i):
            results[i] = http_request(host, port, voice, i)
        t0 = time.perf_counter()
        ts = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        batch_wall = time.perf_counter() - t0
        return {
            "ttfb_s": min(r["ttfb_s"] for r in one), "ttfb_all_s": [r["ttfb_s"] for r in one],
            "rtf_1_client": min(r["wall_s"] / r["audio_s"] for r in one),
            "rtf_4_clients_aggregate": batch_wall / sum(r["audio_s"] for r in results),
            "rtf_4_clients_per_request": sorted(r["wall_s"] / r["audio_s"] for r in results),
            "ttfb_4_clients_s": sorted(r["ttfb_s"] for r in results),
        }
    finally:
        stop(proc, out)


def bench_rss(model, requests, tmp: Path) -> dict:
    proc, out, host, port = start("serve", ["-m", model, "--port", "0", "--max-frames", "12",
                                            "--min-frames", "12"], tmp / "rss.log")
    try:
        conn = http.client.HTTPConnection(host, port, timeout=600)
        conn.request("GET", "/v1/audio/voices")
        voice = json.loads(conn.getresponse().read())["voices"][0]["id"]
        body = json.dumps({"model": "tts-1", "input": "Hello there.", "voice": voice, "response_format": "wav"})
        samples = []
        for i in range(20 + requests):
            if i == 20:
                samples.append(rss_mb(proc.pid))
            conn.request("POST", "/v1/audio/speech", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            if r.status != 200:
                raise SystemExit(f"HTTP {r.status}: {r.read()[:300]!r}")
            r.read()
            if i >= 20 and (i - 20) % 100 == 99:
                samples.append(rss_mb(proc.pid))
        conn.close()
        return {"model": model, "requests": requests, "rss_mb_after_warmup_then_every_100": samples,
                "growth_mb": samples[-1] - samples[0]}
    finally:
        stop(proc, out)


def bench_wyoming(model, threads, frames, runs, voice, tmp: Path) -> dict:
    from wyoming.audio import AudioChunk, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize, SynthesizeVoice

    proc, out, host, port = start("wyoming", ["-m", model, "--threads", str(threads),
                                              "--uri", "tcp://127.0.0.1:0", "--seed", "0",
                                              "--max-frames", str(frames), "--min-frames", str(frames)],
                                  tmp / "wyoming.log")

    async def one():
        async with AsyncTcpClient(host, port) as c:
            t0 = time.perf_counter()
            await c.write_event(Synthesize(text=TEXT, voice=SynthesizeVoice(name=voice)).event())
            ttfb, n = None, 0
            while True:
                ev = await c.read_event()
                if AudioChunk.is_type(ev.type):
                    ttfb = ttfb or time.perf_counter() - t0
                    n += len(AudioChunk.from_event(ev).audio)
                elif AudioStop.is_type(ev.type):
                    return {"ttfb_s": ttfb, "wall_s": time.perf_counter() - t0, "audio_s": n / 2 / 24000}

    try:
        asyncio.run(one())                                # warm-up
        rs = [asyncio.run(one()) for _ in range(runs)]
        return {"ttfb_s": min(r["ttfb_s"] for r in rs), "ttfb_all_s": [r["ttfb_s"] for r in rs],
                "rtf_1_client": min(r["wall_s"] / r["audio_s"] for r in rs)}
    finally:
        stop(proc, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="/tmp/bench-models/cv06-q4_0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rss-requests", type=int, default=500)
    ap.add_argument("--rss-model", default=str(_ROOT / "tests" / "fixtures" / "tiny"))
    ap.add_argument("--tmp", default="/tmp/edgetts-bench-serve")
    a = ap.parse_args()
    tmp = Path(a.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    out = {"model": a.model, "threads": a.threads, "frames": a.frames, "audio_s": a.frames * 0.08,
           "runs": a.runs, "loadavg_before": loadavg()}
    out["in_process"] = baseline(a.model, a.threads, a.frames, a.runs)
    voice = out["in_process"]["voice"]
    out["http"] = bench_http(a.model, a.threads, a.frames, a.runs, voice, tmp)
    out["wyoming"] = bench_wyoming(a.model, a.threads, a.frames, a.runs, voice, tmp)
    base = out["in_process"]["ttfa_s"]
    out["ttfb_over_ttfa"] = {"http": out["http"]["ttfb_s"] / base, "wyoming": out["wyoming"]["ttfb_s"] / base}
    if a.rss_requests:
        out["rss"] = bench_rss(a.rss_model, a.rss_requests, tmp)
    out["loadavg_after"] = loadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
