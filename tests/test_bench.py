"""`edgetts bench` on the tiny fixture (the report's fields, one screen), its helpers' numpy
twins, and the byte-level tokenizer of the random model."""
import json
import os
import subprocess
import sys

import numpy as np
from conftest import ROOT, TINY

from edgetts import bench
from edgetts.random_model import make_config, write_byte_tokenizer


def test_xor_read_twin():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2 ** 63, 1003, dtype=np.uint64)
    assert bench.xor_reduce_u64(a) == np.bitwise_xor.reduce(a)
    part = np.zeros(7, np.uint64)
    bench.par_xor_read(a, part)
    cs = a.shape[0] // 7
    np.testing.assert_array_equal(part, [np.bitwise_xor.reduce(a[c * cs:(c + 1) * cs]) for c in range(7)])
    assert bench.measure_read_bandwidth(1, gbytes=0.01, repeat=2) > 0


def run_bench(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "edgetts.cli", "bench", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)


def test_bench_tiny_json_and_screen(tmp_path):
    r = run_bench(["-m", str(TINY), "--frames", "3", "--runs", "1", "--threads", "1", "--json",
                   "--bandwidth-gb", "0.02"], tmp_path)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    from edgetts.kernels.quant import KERNEL_ISA
    assert rep["isa"] == KERNEL_ISA and rep["threads"] == 1 and rep["cpu"]
    for k in ("read_bandwidth_gbs", "lm_ms_per_frame", "codec_s_per_audio_s", "streaming_rtf", "ttfa_s",
              "cold_start_s", "peak_rss_mb"):
        assert isinstance(rep[k], float) and rep[k] > 0, (k, rep[k])
    assert rep["audio_s_per_run"] == 3 * 0.08
    assert rep["cold_start_s"] > rep["ttfa_s"]
    screen = bench.render(rep)
    lines = screen.splitlines()
    assert len(lines) <= 15 and max(map(len, lines)) < 120, screen
    for word in ("CPU", "kernel ISA", "read bandwidth", "LM", "codec", "streaming RTF", "first audio",
                 "cold start", "peak RSS"):
        assert any(l.startswith(word + ":") for l in lines), (word, screen)


def test_bench_needs_a_model(tmp_path):
    r = run_bench([], tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == "edgetts: error: bench: give a model (-m MODEL) or --random"
    r = run_bench(["-m", str(tmp_path / "nope"), "--frames", "1", "--runs", "1"], tmp_path)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("edgetts: error:"), r.stderr


def test_random_model_byte_tokenizer(tmp_path):
    from edgetts.text.tokenizer import TextTokenizer

    cfg = make_config("0.6b", "custom_voice", "bf16")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    write_byte_tokenizer(tmp_path)
    tok = TextTokenizer.from_files({n: tmp_path / n for n in ("vocab.json", "merges.txt", "tokenizer_config.json")})
    text = "Héllo, world!\n"
    ids = tok.encode(text)
    assert len(ids) == len(text.encode()) and tok.decode(ids) == text
    assert tok.encode("<|im_start|>")[0] == cfg["im_start_token_id"]
    assert tok.token_to_id("<tts_pad>") == cfg["tts_pad_token_id"]
    assert tok.token_to_id("assistant") == cfg["assistant_token_id"]
