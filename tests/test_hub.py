"""edgetts.hub against a local directory laid out like the Hugging Face cache; never the network."""
import shutil
from pathlib import Path

import pytest

from edgetts import hub
from edgetts import weights as W
from edgetts.errors import EdgeTTSError

from conftest import TINY as FIXTURE
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("EDGETTS_CACHE", str(tmp_path / "edgetts"))
    return tmp_path


def make_cached_repo(cache: Path, repo: str, src: Path = FIXTURE, files=None) -> Path:
    org, name = repo.split("/")
    root = cache / f"models--{org}--{name}"
    snap = root / "snapshots" / SHA
    snap.mkdir(parents=True)
    for f in files or ["config.json", "generation_config.json", "model.safetensors", "vocab.json",
                       "merges.txt", "tokenizer_config.json", "speech_tokenizer"]:
        s = src / f
        if s.is_dir():
            shutil.copytree(s, snap / f)
        elif s.exists():
            shutil.copy(s, snap / f)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(SHA)
    return snap


def test_local_path_is_returned_as_is(env):
    assert hub.resolve(str(FIXTURE)) == FIXTURE


def test_not_a_path_nor_an_id(env):
    with pytest.raises(EdgeTTSError, match="no such file"):
        hub.resolve("./nope/missing-model")


def test_offline_missing_model_names_it(env):
    with pytest.raises(EdgeTTSError) as e:
        hub.resolve("Org/Missing")
    msg = str(e.value)
    assert "Org/Missing" in msg and "HF_HUB_OFFLINE" in msg and "-m PATH" in msg and "\n" not in msg


def test_hub_id_converts_once_then_loads_gguf(env, monkeypatch):
    make_cached_repo(env / "hub", "Org/Tiny")
    out = hub.resolve("Org/Tiny", qtype="q8_0", progress=False)
    assert out == env / "edgetts" / "Org--Tiny-q8_0"
    ggufs = sorted(p.name for p in out.glob("*.gguf"))
    assert len(ggufs) == 2
    ck = W.open(out)
    assert ck.kind == "gguf" and ck.main is not None and ck.codec is not None
    assert not list((env / "edgetts").glob("*.tmp*"))

    def no_download(model):
        raise AssertionError("second resolve must not touch the hub cache")
    monkeypatch.setattr(hub, "download", no_download)
    assert hub.resolve("Org/Tiny", qtype="q8_0") == out


def test_failed_conversion_leaves_nothing(env, monkeypatch):
    make_cached_repo(env / "hub", "Org/Broken", files=["config.json"])  # no weights
    with pytest.raises(EdgeTTSError):
        hub.resolve("Org/Broken", progress=False)
    assert not (env / "edgetts").exists() or not list((env / "edgetts").iterdir())


def test_gguf_repo_is_used_directly(env, tmp_path):
    snap = make_cached_repo(env / "hub", "Org/Gguf", files=["config.json"])
    (snap / "config.json").unlink()
    (snap / "model.gguf").write_bytes(b"GGUF")
    assert hub.resolve("Org/Gguf") == snap


def test_bad_qtype(env):
    with pytest.raises(EdgeTTSError, match="qtype"):
        hub.resolve("Org/Tiny", qtype="q2")
