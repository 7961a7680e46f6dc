"""Player (against a fake output stream), file writers, raw s16le."""
import io

import numpy as np
import pytest
import soundfile as sf

from edgetts.audio import AudioFileWriter, Player, RawWriter, check_output_path, to_s16le, write_audio
from edgetts.errors import EdgeTTSError


class FakeStream:
    """Mimics sd.OutputStream: the test pulls blocks by calling pull()."""

    def __init__(self, samplerate, channels, dtype, callback, finished_callback):
        assert channels == 1 and dtype == "float32"
        self.callback, self.finished = callback, finished_callback
        self.started = self.closed = self.aborted = self.stopped = False
        self.out = []

    def start(self):
        self.started = True

    def abort(self):
        self.aborted = True

    def close(self):
        self.closed = True

    def pull(self, frames):
        buf = np.full((frames, 1), 9.0, np.float32)
        try:
            self.callback(buf, frames, None, None)
        except StopIteration:
            self.stopped = True
            self.finished()
        self.out.append(buf[:, 0].copy())
        return buf[:, 0]


def make_player(**kw):
    holder = {}

    def factory(**skw):
        holder["s"] = FakeStream(**skw)
        return holder["s"]

    p = Player(1000, stream_factory=factory, **kw)
    p._stop_exc = StopIteration
    return p, holder["s"]


def test_player_preroll_then_plays_in_order():
    p, s = make_player(preroll=0.1)  # 100 samples
    p.write(np.arange(60, dtype=np.float32))
    assert not s.started
    p.write(np.arange(60, 120, dtype=np.float32))
    assert s.started
    np.testing.assert_array_equal(s.pull(50), np.arange(50))
    np.testing.assert_array_equal(s.pull(50), np.arange(50, 100))
    assert p.underruns == 0


def test_player_underrun_plays_zeros_and_counts():
    p, s = make_player(preroll=0.0)
    p.write(np.ones(30, np.float32))
    out = s.pull(50)
    np.testing.assert_array_equal(out, np.r_[np.ones(30), np.zeros(20)])
    assert p.underruns == 1 and p.underrun_samples == 20
    s.pull(10)
    assert p.underruns == 1 and p.underrun_samples == 30  # still the same gap
    p.write(np.full(10, 2.0, np.float32))
    np.testing.assert_array_equal(s.pull(10), np.full(10, 2.0))
    assert p.played == 40
    s.pull(5)
    assert p.underruns == 2


def test_player_rebuffers_preroll_after_underrun():
    p, s = make_player(preroll=0.02)  # 20 samples
    p.write(np.ones(25, np.float32))
    s.pull(30)                        # 25 played, then dry
    assert p.underruns == 1
    p.write(np.full(10, 2.0, np.float32))
    np.testing.assert_array_equal(s.pull(10), 0)  # 10 < 20 queued: keep waiting
    p.write(np.full(10, 3.0, np.float32))
    np.testing.assert_array_equal(s.pull(20), np.r_[np.full(10, 2.0), np.full(10, 3.0)])
    assert p.underruns == 1 and p.underrun_samples == 15


def test_player_drain_end_is_not_an_underrun(tmp_path):
    dump = tmp_path / "fed.npy"
    p, s = make_player(preroll=1.0, dump=str(dump))
    x = np.linspace(-1, 1, 75, dtype=np.float32)
    p.write(x[:40])
    p.write(x[40:])
    assert not s.started  # 75 < 1000 samples of pre-roll
    import threading
    t = threading.Thread(target=p.drain, kwargs={"timeout": 5})
    t.start()
    while not s.started:
        pass
    got = [s.pull(32) for _ in range(3)]
    t.join(5)
    assert not t.is_alive()
    assert s.stopped and s.closed and not s.aborted
    np.testing.assert_array_equal(np.concatenate(got)[:75], x)
    np.testing.assert_array_equal(np.concatenate(got)[75:], 0)
    assert p.underruns == 0
    np.testing.assert_array_equal(np.load(dump), x)


def test_player_close_aborts_and_rejects_writes():
    p, s = make_player(preroll=0.0)
    p.write(np.ones(10, np.float32))
    p.close()
    assert s.aborted and s.closed
    with pytest.raises(RuntimeError):
        p.write(np.ones(3, np.float32))


def test_player_context_manager_aborts_on_error():
    p, s = make_player(preroll=0.0)
    with pytest.raises(KeyboardInterrupt):
        with p:
            p.write(np.ones(10, np.float32))
            raise KeyboardInterrupt
    assert s.aborted and s.closed


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg"])
def test_write_audio_formats(tmp_path, ext):
    x = (0.5 * np.sin(np.arange(4800) / 10)).astype(np.float32)
    path = write_audio(tmp_path / f"out{ext}", x, 24000)
    info = sf.info(str(path))
    assert info.samplerate == 24000 and info.channels == 1 and info.frames == 4800
    y, _ = sf.read(str(path), dtype="float32")
    tol = 1e-4 if ext != ".ogg" else 0.1
    assert np.max(np.abs(y - x)) < tol
    assert [p.name for p in tmp_path.iterdir()] == [f"out{ext}"]


def test_writer_abort_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with AudioFileWriter(tmp_path / "x.wav", 24000) as w:
            w.write(np.zeros(100, np.float32))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_check_output_path_errors(tmp_path):
    with pytest.raises(EdgeTTSError, match="unsupported output format"):
        check_output_path(tmp_path / "x.mp3")
    with pytest.raises(EdgeTTSError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "x.wav")
    with pytest.raises(EdgeTTSError, match="directory"):
        (tmp_path / "d.wav").mkdir()
        check_output_path(tmp_path / "d.wav")


def test_s16le():
    x = np.array([0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0], np.float32)
    b = to_s16le(x)
    np.testing.assert_array_equal(np.frombuffer(b, "<i2"), [0, 16384, -16384, 32767, -32767, 32767, -32767])
    buf = io.BytesIO()
    w = RawWriter(buf)
    w.write(x[:3])
    w.write(x[3:])
    assert buf.getvalue() == b and w.frames == 7
