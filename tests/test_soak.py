"""A short soak (bench/soak.py at suite scale): `say -o` over many stdin lines writes every sentence
and its resident memory stays flat after warm-up (the bench runs the same check for 30 minutes)."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import soak  # noqa: E402


def test_short_soak_writes_every_sentence_and_keeps_memory_flat(tmp_path):
    res = soak.soak(minutes=0.5, frames=10, interval=0.2, warmup=5, workdir=tmp_path)
    assert res["returncode"] == 0, res["stderr_other"]
    assert res["sentences_in"] >= 30
    assert res["sentences_written"] == res["sentences_in"]
    assert res["file_length_ok"], (res["audio_s"], res["expected_audio_s"])
    assert res["rss_growth_after_warmup_mb"] is not None
    assert res["rss_growth_after_warmup_mb"] < 50, res["rss_mb"]
