"""Prompt layouts (spec/talker.md §4) with marker embeddings, and user-input errors."""
import warnings

import numpy as np
import pytest

import edgetts
from edgetts.errors import EdgeTTSError
from edgetts.pipeline import build_prompt, codec_prefix

from conftest import FIXTURES as FIX


class MarkerTalker:
    """text_rows(t) -> [t, 0, ...]; codec_rows(c) -> [0, c, 0, ...]: rows decode to (text, codec)."""

    def __init__(self, H):
        self.H = H

    def text_rows(self, ids):
        out = np.zeros((len(ids), self.H), np.float32)
        out[:, 0] = ids
        return out

    def codec_rows(self, ids):
        ids = np.asarray(ids).reshape(-1)
        out = np.zeros((len(ids), self.H), np.float32)
        out[:, 1] = ids
        return out


def layout(p):
    return [(int(r[0]), int(r[1])) for r in p.rows]


@pytest.fixture(scope="module")
def tts():
    return edgetts.load(FIX / "tiny")


def test_worked_example_custom_voice(tts):
    """§4.5: speaker row, language row, tts_bos with codec_pad, non-streaming body."""
    c = tts.cfg
    T = [39, 13]
    role = [c.im_start_id, c.assistant_id, 198]
    pad, bos, eos = c.tts_pad_id, c.tts_bos_id, c.tts_eos_id
    en, spk = c.language_ids["english"], c.speaker_ids["tiny"]
    p = build_prompt(MarkerTalker(c.talker.hidden), c, T, role, language="english", speaker="tiny", non_streaming=True)
    assert layout(p) == [(role[0], 0), (role[1], 0), (role[2], 0),
                         (pad, c.codec_think_id), (pad, c.codec_think_bos_id), (pad, en),
                         (pad, c.codec_think_eos_id), (pad, spk), (bos, c.codec_pad_id),
                         (39, c.codec_pad_id), (13, c.codec_pad_id), (eos, c.codec_pad_id),
                         (pad, c.codec_bos_id)]
    assert [int(r[0]) for r in p.trailing] == [pad] and int(p.pad_row[0]) == pad
    s = build_prompt(MarkerTalker(c.talker.hidden), c, T, role, language="english", speaker="tiny", non_streaming=False)
    assert layout(s)[:9] == layout(p)[:9]
    assert layout(s)[9:] == [(39, c.codec_bos_id)]
    assert [int(r[0]) for r in s.trailing] == [13, eos]


def test_auto_dialect_voice_design_base(tts):
    c = tts.cfg
    role = [c.im_start_id, c.assistant_id, 198]
    auto = codec_prefix(c, "auto", "tiny")
    assert auto == [c.codec_nothink_id, c.codec_think_bos_id, c.codec_think_eos_id]
    # dialect speaker: chinese or auto -> the dialect's language id; english stays english
    dia = c.language_ids[c.speaker_dialect["tiny_sc"]]
    assert codec_prefix(c, "chinese", "tiny_sc")[2] == dia
    assert codec_prefix(c, "auto", "tiny_sc")[2] == dia
    assert codec_prefix(c, "english", "tiny_sc")[2] == c.language_ids["english"]
    # voice design: instruct block first, no speaker row
    H = c.talker.hidden
    ins = [c.im_start_id, 506, 198, 40, 41, c.im_end_id, 198]
    p = build_prompt(MarkerTalker(H), c, [7], role, language="auto", instruct_ids=ins, non_streaming=True)
    pad, bos, eos = c.tts_pad_id, c.tts_bos_id, c.tts_eos_id
    assert layout(p) == ([(i, 0) for i in ins] + [(r, 0) for r in role]
                         + [(pad, auto[0]), (pad, auto[1]), (pad, auto[2]), (bos, c.codec_pad_id)]
                         + [(7, c.codec_pad_id), (eos, c.codec_pad_id), (pad, c.codec_bos_id)])
    # base: the x-vector itself fills the speaker slot (as-is)
    xv = np.arange(H, dtype=np.float32) + 100
    p = build_prompt(MarkerTalker(H), c, [7, 8], role, language="english", xvector=xv, non_streaming=False)
    np.testing.assert_array_equal(p.rows[3 + 4, 2:], xv[2:])
    assert p.rows[3 + 4, 0] == pad + xv[0] and p.rows[3 + 4, 1] == xv[1]
    assert layout(p)[-2:] == [(bos, c.codec_pad_id), (7, c.codec_bos_id)]
    with pytest.raises(EdgeTTSError, match="speaker embedding"):
        build_prompt(MarkerTalker(H), c, [7], role, xvector=np.zeros(5, np.float32))


def test_bad_input(tts):
    with pytest.raises(EdgeTTSError, match="tiny, tiny_sc"):
        tts.generate("Hi.", speaker="nobody", max_frames=1)
    with pytest.raises(EdgeTTSError, match="unknown language 'klingon'.*auto, chinese, english"):
        tts.generate("Hi.", speaker="tiny", language="klingon", max_frames=1)
    with pytest.raises(EdgeTTSError, match="sichuan_dialect"):  # dialects are not user languages
        tts.generate("Hi.", speaker="tiny", language="sichuan_dialect", max_frames=1)
    for empty in ("", "   ", []):
        with pytest.raises(EdgeTTSError, match="empty text"):
            tts.generate(empty, speaker="tiny", max_frames=1)
    with pytest.raises(EdgeTTSError, match="outside the text vocabulary"):
        tts.generate([10 ** 6], speaker="tiny", max_frames=1)
    with pytest.raises(EdgeTTSError, match="Base model"):
        tts.generate("Hi.", speaker_embedding=np.zeros(64, np.float32), max_frames=1)
    assert tts.generate("Hi.", speaker="TINY", language="English", max_frames=1, greedy=True).codes.shape[0] == 1


def test_instruct_dropped_by_06b_custom_voice():
    t = edgetts.load(FIX / "tiny")
    base = t._resolve("Hi.", "tiny", "auto", None, None, None).rows
    with_ins = t._resolve("Hi.", "tiny", "auto", "Speak slowly.", None, None).rows
    assert with_ins.shape[0] > base.shape[0]            # tiny (not 0b6) uses instruct, like 1.7B
    t.cfg.model_size = "0b6"
    with pytest.warns(UserWarning, match="ignores instruct"):
        dropped = t._resolve("Hi.", "tiny", "auto", "Speak slowly.", None, None).rows
    np.testing.assert_array_equal(dropped, base)


def test_voice_design_and_base_inputs():
    vd = edgetts.load(FIX / "tiny_vd")
    assert vd.model_type == "voice_design" and vd.speakers == []
    with pytest.raises(EdgeTTSError, match="no speaker"):
        vd.generate("Hi.", speaker="tiny", max_frames=1)
    base = edgetts.load(FIX / "tiny_base")
    assert base.model_type == "base"
    with pytest.raises(EdgeTTSError, match="speaker_embedding"):
        base.generate("Hi.", max_frames=1)
    with pytest.raises(EdgeTTSError, match="64"):
        base.generate("Hi.", speaker_embedding=np.zeros(3, np.float32), max_frames=1)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = base.generate("Hi.", speaker_embedding=np.ones(64, np.float32), instruct="calm", max_frames=2, seed=1)
    assert r.codes.shape == (2, base.cfg.num_code_groups)
    assert any("ignore instruct" in str(x.message) for x in w)
