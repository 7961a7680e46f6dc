"""Config readers: one path for config.json and GGUF metadata; template ids checked at load."""
import io
import json
import shutil
from pathlib import Path

import pytest

import edgetts
from edgetts import weights as W
from edgetts.errors import EdgeTTSError
from edgetts.gguf import constants as K
from edgetts.gguf import metadata as M
from edgetts.models import config as C

from conftest import FIXTURES as FIX


def _copy(tmp_path, name="tiny") -> Path:
    d = tmp_path / name
    shutil.copytree(FIX / name, d, symlinks=False)
    return d


def _quantize(src: Path, out: Path, qtype="f32") -> Path:
    from quantize.convert import convert as quantize

    tp, _ = quantize(str(src), qtype, str(out), progress=False, out=io.StringIO())
    return tp


def test_gguf_metadata_reads_back_the_config(tmp_path):
    src = _copy(tmp_path)
    gen = json.loads((src / "generation_config.json").read_text())
    gen.update(top_k=7, temperature=0.7, subtalker_dosample=False)   # not the defaults
    (src / "generation_config.json").write_text(json.dumps(gen))
    tp = _quantize(src, tmp_path / "gguf")
    ck = W.open(tp)
    cfg = json.loads((src / "config.json").read_text())
    assert ck.main.metadata["edgetts.text.assistant_id"] == cfg["assistant_token_id"]
    a = C.from_checkpoint(W.open(src))
    b = C.from_checkpoint(ck)
    assert b.generation == a.generation
    assert (b.generation.top_k, b.generation.temperature, b.generation.subtalker_dosample) == (7, 0.7, False)
    assert b == a
    # and the codec config likewise
    assert C.CodecConfig.from_checkpoint(ck) == C.CodecConfig.from_checkpoint(W.open(src))


def test_float32_metadata_reads_as_written_decimal():
    meta = {k: v for k, v in [(K.GENERATION_KV[3][0], 0.8999999761581421)]}
    assert M.unflatten(meta, K.GENERATION_KV) == {"temperature": 0.9}


@pytest.mark.parametrize("field,key", [("im_start_id", "im_start_token_id"),
                                       ("tts_eos_id", "tts_eos_token_id"),
                                       ("assistant_id", "assistant_token_id")])
def test_template_id_outside_text_vocab_is_a_load_error(tmp_path, field, key):
    src = _copy(tmp_path)
    cfg = json.loads((src / "config.json").read_text())
    cfg[key] = 10 ** 6
    (src / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EdgeTTSError, match=f"{field} = 1000000 is outside the text vocabulary"):
        edgetts.load(src)


def test_missing_codec_id_names_the_field(tmp_path):
    src = _copy(tmp_path)
    cfg = json.loads((src / "config.json").read_text())
    del cfg["talker_config"]["codec_bos_id"]
    (src / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EdgeTTSError, match="talker_config: missing codec_bos_id"):
        edgetts.load(src)
