"""Servers: time to first byte over HTTP (`edgetts serve`) and Wyoming vs in-process TTFA; RTF
with 1 and 4 concurrent HTTP clients; server RSS over many sequential requests.

    python bench/serve.py [--model /tmp/bench-models/cv06-q4_0] [--threads 2] [--frames 50]
                          [--runs 5] [--rss-requests 500] [--rss-model tests/fixtures/tiny]

Model: a GGUF folder of the full-size 0.6B (random weights, real shapes: bench/make_random_model.py
then `edgetts quantize SRC --qtype q4_0 -o DIR`). Every request is forced to --frames frames
(80 ms each), speaker = the model's first, seed 0, so all paths do the same work.

The baseline and both servers are loaded side by side (3 copies of the model in memory; only one
works at a time), and the runs are interleaved (in-process, HTTP, Wyoming, in-process, ...) so a
noisy shared machine affects all three alike:
  in_process  TTS.stream: time to the first audio chunk (TTFA); RTF = wall / audio seconds
  http        `edgetts serve`, pcm: TTFB = request sent -> first body byte; RTF = request wall / audio
  wyoming     `edgetts wyoming`: TTFB = synthesize sent -> first audio-chunk event; RTF likewise
  http_4_clients  4 requests at once (served one at a time): aggregate RTF = batch wall / total
              audio, and each request's RTF and TTFB (queueing included)
  rss         a server on --rss-model (default: the tiny fixture, so 500 requests take a minute,
              not an hour) answers --rss-requests sequential wav requests (12 frames each); its
              RSS after 20 warm-up requests, then every 100 (the issue: flat within 30 MB)
Prints one JSON object with the load average before and after.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import statistics
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


def in_process(tts, voice: str, frames: int) -> dict:
    s = tts.stream(TEXT, speaker=voice, seed=0, max_frames=frames, min_frames=frames)
    for _ in s:
        pass
    t = s.timings
    return {"ttfb_s": t["ttfa_s"], "wall_s": t["wall_s"], "audio_s": t["audio_s"]}


def http_request(host: str, port: int, voice: str, seed: int = 0) -> dict:
    body = json.dumps({"model": "tts-1", "input": TEXT, "voice": voice, "response_format": "pcm",
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


def wyoming_request(host: str, port: int, voice: str) -> dict:
    from wyoming.audio import AudioChunk, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize, SynthesizeVoice

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
    return asyncio.run(one())


def summary(rs: list[dict]) -> dict:
    ttfb = [r["ttfb_s"] for r in rs]
    rtf = [r["wall_s"] / r["audio_s"] for r in rs]
    return {"ttfb_median_s": statistics.median(ttfb), "ttfb_best_s": min(ttfb), "ttfb_all_s": ttfb,
            "rtf_median": statistics.median(rtf), "rtf_all": rtf}


def four_clients(host: str, port: int, voice: str) -> dict:
    results: list = [None] * 4

    def client(i):
        results[i] = http_request(host, port, voice, i)
    t0 = time.perf_counter()
    ts = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    return {"rtf_aggregate": wall / sum(r["audio_s"] for r in results),
            "rtf_per_request": sorted(r["wall_s"] / r["audio_s"] for r in results),
            "ttfb_s": sorted(r["ttfb_s"] for r in results)}


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="/tmp/bench-models/cv06-q4_0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rss-requests", type=int, default=500)
    ap.add_argument("--rss-model", default=str(_ROOT / "tests" / "fixtures" / "tiny"))
    ap.add_argument("--tmp", default="/tmp/edgetts-bench-serve")
    a = ap.parse_args()
    tmp = Path(a.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    out = {"model": a.model, "threads": a.threads, "frames": a.frames, "audio_s": a.frames * 0.08,
           "runs": a.runs, "loadavg_before": loadavg()}
    import edgetts

    tts = edgetts.load(a.model, threads=a.threads)
    voice = tts.speakers[0]                               # from the checkpoint
    forced = ["--threads", str(a.threads), "--seed", "0", "--max-frames", str(a.frames),
              "--min-frames", str(a.frames)]
    servers = [start("serve", ["-m", a.model, "--port", "0", "--max-queue", "8", *forced], tmp / "serve.log"),
               start("wyoming", ["-m", a.model, "--uri", "tcp://127.0.0.1:0", *forced], tmp / "wyoming.log")]
    try:
        (_, _, hh, hp), (_, _, wh, wp) = servers
        paths = {"in_process": lambda: in_process(tts, voice, a.frames),
                 "http": lambda: http_request(hh, hp, voice),
                 "wyoming": lambda: wyoming_request(wh, wp, voice)}
        runs: dict = {name: [] for name in paths}
        for fn in paths.values():                         # warm-up: numba cache, pages
            fn()
        for _ in range(a.runs):                           # interleaved: the same noise for all three
            for name, fn in paths.items():
                runs[name].append(fn())
        for name, rs in runs.items():
            out[name] = summary(rs)
        out["http_4_clients"] = four_clients(hh, hp, voice)
    finally:
        for proc, log, _, _ in servers:
            stop(proc, log)
    base = out["in_process"]["ttfb_median_s"]
    out["ttfb_over_in_process_ttfa_median"] = {"http": out["http"]["ttfb_median_s"] / base,
                                               "wyoming": out["wyoming"]["ttfb_median_s"] / base}
    if a.rss_requests:
        out["rss"] = bench_rss(a.rss_model, a.rss_requests, tmp)
    out["loadavg_after"] = loadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
