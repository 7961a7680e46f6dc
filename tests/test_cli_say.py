"""`edgetts say`: files, raw PCM, stdin, real PortAudio playback into ALSA's null device, errors.

End-to-end cases run the CLI in a subprocess on the tiny fixture model with a forced frame count;
the in-process cases use a fake TTS for the plumbing (stdin lines, speakers, error lines).
"""
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from edgetts import cli, say
from fake_tts import FakeTTS

from conftest import ROOT, TINY, TOL_AUDIO_ORDER, requires_portaudio
SPF = 1920
FRAMES = 5
TEXT = "Hello there, how are you?"
LSB = TOL_AUDIO_ORDER + 0.5 / 32767   # summation-order noise (conftest) + PCM16 rounding


def run_cli(args, tmp_path, stdin=None, alsa="null", timeout=300, **popen):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["HOME"] = str(tmp_path)
    conf = tmp_path / "asound.conf"
    # replaces the system ALSA config: the default is a null sink, or a sound card that is not there
    conf.write_text("pcm.!default { type null }\n" if alsa == "null" else "pcm.!default { type hw card 29 }\n")
    env["ALSA_CONFIG_PATH"] = str(conf)
    env.update(popen.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "edgetts.cli", "say", *args], input=stdin, env=env,
                          cwd=tmp_path, capture_output=True, timeout=timeout, **popen)


def common(frames=FRAMES):
    return ["-m", str(TINY), "--seed", "7", "--max-frames", str(frames), "--min-frames", str(frames),
            "--codec-precision", "f32"]


@pytest.fixture(scope="module")
def reference():
    """One-shot audio of TEXT with the same settings, in this process."""
    import edgetts
    tts = edgetts.load(TINY, codec_precision="f32")
    res = tts.generate(TEXT, seed=7, max_frames=FRAMES, min_frames=FRAMES, language="auto")
    assert res.audio.shape == (FRAMES * SPF,)
    return res.audio


def assert_one_line_error(r, *words):
    err = r.stderr.decode()
    assert r.returncode != 0, err
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgetts: error:"), err
    for w in words:
        assert w in lines[0], err


# -- end to end on the tiny model --------------------------------------------------------------------

def test_output_wav(tmp_path, reference):
    r = run_cli([*common(), "-o", "out.wav", TEXT], tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    info = sf.info(str(tmp_path / "out.wav"))
    assert (info.samplerate, info.channels, info.frames) == (24000, 1, FRAMES * SPF)
    audio, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    assert np.max(np.abs(audio - np.clip(reference, -1, 1))) <= LSB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asound.conf", "out.wav"]


def test_output_raw_is_the_same_samples(tmp_path, reference):
    r = run_cli([*common(), "--output-raw", "-v", TEXT], tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    pcm = np.frombuffer(r.stdout, "<i2")
    assert pcm.size == FRAMES * SPF
    assert np.max(np.abs(pcm / 32767.0 - np.clip(reference, -1, 1))) <= LSB
    assert "RTF" in r.stderr.decode() and "first audio" in r.stderr.decode()


def test_stdin_lines(tmp_path, reference):
    r = run_cli([*common(), "--sentence-silence", "0.1", "-o", "out.flac"], tmp_path,
                stdin=f"{TEXT}\n\n{TEXT}\n".encode())
    assert r.returncode == 0, r.stderr.decode()
    audio, sr = sf.read(str(tmp_path / "out.flac"), dtype="float32")
    assert sr == 24000 and audio.size == 2 * FRAMES * SPF + 2400
    ref = np.clip(reference, -1, 1)
    assert np.max(np.abs(audio[:FRAMES * SPF] - ref)) <= LSB
    assert np.all(audio[FRAMES * SPF:FRAMES * SPF + 2400] == 0)
    assert np.max(np.abs(audio[-FRAMES * SPF:] - ref)) <= LSB


@requires_portaudio
def test_playback_through_portaudio_null_device(tmp_path, reference):
    dump = tmp_path / "fed.npy"
    r = run_cli([*common(), "-v", TEXT], tmp_path, env={"EDGETTS_PLAYER_DUMP": str(dump)})
    assert r.returncode == 0, r.stderr.decode()
    assert "playback:" in r.stderr.decode()
    fed = np.load(dump)
    assert fed.shape == (FRAMES * SPF,)
    np.testing.assert_allclose(fed, reference, atol=TOL_AUDIO_ORDER)  # streamed pushes vs one decode


@requires_portaudio
def test_ctrl_c_while_playing_stops_cleanly(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(tmp_path),
               ALSA_CONFIG_PATH=str(tmp_path / "asound.conf"))
    (tmp_path / "asound.conf").write_text("pcm.!default { type null }\n")
    p = subprocess.Popen([sys.executable, "-m", "edgetts.cli", "say", "-v", *common(frames=100000), TEXT],
                         env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = []
    while not head or "loaded" not in head[-1]:  # past the imports and the load (slow under emulation)
        line = p.stderr.readline().decode()
        assert line, "".join(head)
        head.append(line)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    err = "".join(head) + err.decode()
    assert p.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err, err


@pytest.mark.parametrize("case", ["empty", "speaker", "language", "device", "not_a_model", "text_file",
                                  "bad_dir", "bad_ext", "empty_stdin", "hub_offline"])
def test_bad_input_one_line(tmp_path, case):
    base = ["-m", str(TINY), "--max-frames", "2"]
    if case == "empty":
        r = run_cli([*base, "  "], tmp_path)
        assert_one_line_error(r, "empty text")
    elif case == "empty_stdin":
        r = run_cli([*base, "-o", "x.wav"], tmp_path, stdin=b"\n  \n")
        assert_one_line_error(r, "empty text")
    elif case == "speaker":
        r = run_cli([*base, "--speaker", "nobody", "-o", "x.wav", "Hi"], tmp_path)
        assert_one_line_error(r, "unknown speaker", "nobody", "tiny")
    elif case == "language":
        r = run_cli([*base, "--language", "klingon", "-o", "x.wav", "Hi"], tmp_path)
        assert_one_line_error(r, "unknown language", "klingon")
    elif case == "device":
        r = run_cli([*base, "Hi"], tmp_path, alsa="none")
        assert_one_line_error(r, "audio output device", "-o")
    elif case == "not_a_model":
        (tmp_path / "empty").mkdir()
        r = run_cli(["-m", str(tmp_path / "empty"), "-o", "x.wav", "Hi"], tmp_path)
        assert_one_line_error(r)
    elif case == "text_file":
        (tmp_path / "notes.txt").write_text("not a model\n")
        r = run_cli(["-m", str(tmp_path / "notes.txt"), "-o", "x.wav", "Hi"], tmp_path)
        assert_one_line_error(r)
    elif case == "bad_dir":
        r = run_cli([*base, "-o", str(tmp_path / "missing" / "x.wav"), "Hi"], tmp_path)
        assert_one_line_error(r, "does not exist")
    elif case == "hub_offline":
        r = run_cli(["-m", "Org/NotCached", "-o", "x.wav", "Hi"], tmp_path,
                    env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"),
                         "EDGETTS_CACHE": str(tmp_path / "edgetts")})
        assert_one_line_error(r, "Org/NotCached", "HF_HUB_OFFLINE", "-m PATH")
    elif case == "bad_ext":
        r = run_cli([*base, "-o", "x.mp3", "Hi"], tmp_path)
        assert_one_line_error(r, "unsupported output format")
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x.*"))


# -- in process, fake model ------------------------------------------------------------------------

@pytest.fixture
def fake(monkeypatch):
    tts = FakeTTS()
    monkeypatch.setattr(say, "_load", lambda args: tts)
    return tts


def test_stdin_each_line_in_turn(fake, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("First line.\n\nSecond 2 line.\n"))
    rc = cli.main(["say", "-o", str(tmp_path / "x.wav"), "--language", "english", "--speaker", "Ryan"])
    assert rc == 0, capsys.readouterr().err
    assert [c[0] for c in fake.calls] == ["First line.", "Second two line."]
    assert all(c[1]["speaker"] == "Ryan" for c in fake.calls)
    want = sum(fake.n_frames(t, {}) for t, _ in fake.calls) * SPF + 2880
    assert sf.info(str(tmp_path / "x.wav")).frames == want


def test_list_speakers(fake, capsys):
    assert cli.main(["say", "--list-speakers"]) == 0
    assert capsys.readouterr().out.split() == ["ryan", "vivian"]


def test_options_reach_the_model(fake, tmp_path):
    rc = cli.main(["say", "-o", str(tmp_path / "x.ogg"), "--seed", "3", "--temperature", "0.7", "--top-k", "20",
                   "--top-p", "0.9", "--repetition-penalty", "1.1", "--greedy", "--max-frames", "4", "Hi"])
    assert rc == 0
    assert fake.calls[0][1] == {"language": "auto", "seed": 3, "temperature": 0.7, "top_k": 20, "top_p": 0.9,
                                "repetition_penalty": 1.1, "max_frames": 4, "greedy": True}
    assert sf.info(str(tmp_path / "x.ogg")).frames == 4 * SPF


def test_model_error_mid_stream_leaves_no_file(monkeypatch, tmp_path, capsys):
    tts = FakeTTS(fail_after=2)
    monkeypatch.setattr(say, "_load", lambda args: tts)
    with pytest.raises(RuntimeError):
        cli.main(["say", "-o", str(tmp_path / "x.wav"), "Hello"])
    assert list(tmp_path.iterdir()) == []


def test_codec_precision_reaches_load(monkeypatch):
    from edgetts import hub, tts as tts_mod
    seen = {}
    monkeypatch.setattr(hub, "resolve", lambda m, **kw: m)
    monkeypatch.setattr(tts_mod, "load", lambda path, **kw: seen.update(kw) or "tts")
    args = say.argparse.Namespace(model="m", qtype="q8_0", threads=None, codec_precision="int8")
    assert say._load(args) == "tts" and seen["codec_precision"] == "int8"
