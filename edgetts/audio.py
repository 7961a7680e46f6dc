"""Audio sinks: live playback (Player), files (.wav/.flac/.ogg), raw s16le bytes.

Player keeps ONE sounddevice OutputStream open for the whole session and feeds it from a queue
from the stream's callback, so chunks play back to back without gaps (calling sd.play per chunk
restarts the device and clicks). Playback starts once `preroll` seconds are queued; when the
queue runs dry the callback plays zeros, counts an underrun and waits for `preroll` seconds of
audio again before resuming (one longer gap rather than a stutter of short ones); `drain()` plays
what is left and closes; `close()` stops at once (Ctrl-C).

    with Player(24000) as player:      # leaving the block drains (or aborts on an exception)
        for chunk in stream:
            player.write(chunk)

EDGETTS_PLAYER_DUMP=path.npy makes the Player save every sample it handed to the device
(underrun zeros excluded) when it closes: tests compare that with one-shot synthesis.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
from pathlib import Path

import numpy as np

from .atomic import AtomicOutput
from .errors import EdgeTTSError

FILE_FORMATS = {  # extension -> (soundfile format, subtype)
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}

_END = None  # queue sentinel: no more audio


def _sounddevice():
    try:
        import sounddevice as sd
    except OSError as e:  # PortAudio shared library missing
        raise EdgeTTSError(
            f"no usable audio output device ({e}: install libportaudio2); "
            "write a file with -o out.wav or pipe --output-raw into a player") from None
    return sd


class Player:
    """Plays float32 mono chunks through one persistent output stream."""

    def __init__(self, sample_rate: int, *, preroll: float = 0.16, device=None,
                 latency="high", stream_factory=None, dump: str | None = None):
        self.sample_rate = int(sample_rate)
        self.preroll = max(0, int(round(preroll * self.sample_rate)))
        self.underruns = 0            # times the queue ran dry before the end (gaps heard)
        self.underrun_samples = 0     # zeros played in those gaps
        self._starving = False
        self.played = 0               # real samples handed to the device
        self._queue: queue.Queue = queue.Queue()
        self._queued = 0              # samples written so far
        self._buf = np.zeros(0, np.float32)
        self._pos = 0
        self._ended = False           # callback saw the sentinel
        self._drained = threading.Event()
        self._started = False
        self._closed = False
        self._finishing = False
        self._dump_path = dump if dump is not None else os.environ.get("EDGETTS_PLAYER_DUMP")
        self._fed: list[np.ndarray] | None = [] if self._dump_path else None
        self._stop_exc = Exception
        if stream_factory is None:
            sd = _sounddevice()
            self._stop_exc = sd.CallbackStop

            def stream_factory(**kw):
                try:
                    return sd.OutputStream(device=device, latency=latency, **kw)
                except Exception as e:  # PortAudioError, ValueError (no device)
                    raise EdgeTTSError(
                        f"no usable audio output device ({e}); write a file with -o out.wav "
                        "or pipe --output-raw into a player") from None
        self._stream = stream_factory(samplerate=self.sample_rate, channels=1, dtype="float32",
                                      callback=self._callback, finished_callback=self._drained.set)

    # -- producer side -------------------------------------------------------------------------
    def write(self, chunk) -> None:
        if self._closed or self._finishing:
            raise RuntimeError("Player is closed")
        chunk = np.ascontiguousarray(chunk, dtype=np.float32).reshape(-1)
        if chunk.size == 0:
            return
        self._queue.put(chunk)
        self._queued += chunk.size
        if not self._started and self._queued >= self.preroll:
            self._start()

    def _start(self) -> None:
        self._started = True
        self._stream.start()

    def drain(self, timeout: float | None = None) -> None:
        """Play everything queued, then close the stream."""
        if self._closed:
            return
        self._finishing = True
        self._queue.put(_END)
        if not self._started:
            self._start()
        if timeout is None:  # queued audio plus device latency plus slack
            timeout = self._queued / self.sample_rate + 5.0
        self._drained.wait(timeout)
        self.close()

    def close(self) -> None:
        """Stop now (drops queued audio) and release the device."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._started and not self._drained.is_set():
                self._stream.abort()
        finally:
            self._stream.close()
            self._save_dump()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.drain()
        else:
            self.close()
        return False

    # -- device side (PortAudio thread) --------------------------------------------------------
    def _callback(self, outdata, frames, time, status) -> None:
        out = outdata[:, 0] if outdata.ndim == 2 else outdata
        if self._starving and not self._finishing and self._queued - self.played < self.preroll:
            out[:] = 0.0   # rebuffering after an underrun: one longer gap instead of stutter
            self.underrun_samples += frames
            return
        filled = 0
        while filled < frames:
            if self._pos >= self._buf.size:
                if self._ended:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _END:
                    self._ended = True
                    break
                self._buf, self._pos = item, 0
            n = min(frames - filled, self._buf.size - self._pos)
            out[filled:filled + n] = self._buf[self._pos:self._pos + n]
            if self._fed is not None:
                self._fed.append(self._buf[self._pos:self._pos + n].copy())
            self._pos += n
            filled += n
        self.played += filled
        if filled < frames:
            out[filled:] = 0.0
            if self._ended:
                raise self._stop_exc()
            if not self._starving:
                self.underruns += 1
            self._starving = True
            self.underrun_samples += frames - filled
        else:
            self._starving = False

    def _save_dump(self) -> None:
        if self._fed is None:
            return
        fed = np.concatenate(self._fed) if self._fed else np.zeros(0, np.float32)
        np.save(self._dump_path, fed)


# ---------------------------------------------------------------------------------------------
# files

def check_output_path(path) -> Path:
    """Fail early (before loading a model) on an unsupported extension or unwritable folder."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in FILE_FORMATS:
        raise EdgeTTSError(f"{path}: unsupported output format '{ext or '(none)'}'; "
                           f"use one of {', '.join(FILE_FORMATS)}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise EdgeTTSError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise EdgeTTSError(f"{path}: folder {folder} is not writable")
    if path.is_dir():
        raise EdgeTTSError(f"{path}: is a directory")
    return path


class AudioFileWriter:
    """Streams chunks into a temporary file next to `path`; `commit()` renames it into place.

    Anything that ends without commit() (an error, Ctrl-C, SIGTERM, a full disk) removes the
    temporary file, so a failed run never leaves a half-written output behind and an existing
    file at `path` stays as it was (edgetts.atomic.AtomicOutput).
    """

    def __init__(self, path, sample_rate: int):
        import soundfile as sf
        self.path = check_output_path(path)
        fmt, subtype = FILE_FORMATS[self.path.suffix.lower()]
        self._out = AtomicOutput()
        self._tmp = self._out.temp(self.path)
        self.frames = 0
        try:
            self._file = sf.SoundFile(str(self._tmp), "w", samplerate=int(sample_rate), channels=1,
                                      format=fmt, subtype=subtype)
        except Exception as e:
            self._out.abort()
            raise EdgeTTSError(f"{self.path}: cannot write ({e})") from None

    def write(self, chunk) -> None:
        chunk = np.clip(np.asarray(chunk, np.float32).reshape(-1), -1.0, 1.0)
        try:
            self._file.write(chunk)
        except Exception as e:  # libsndfile reports a full disk as a bare "system error"
            raise self._failed(e) from None
        self.frames += chunk.size

    def _failed(self, e: Exception) -> EdgeTTSError:
        err = self._out.failed(e, self.path)
        self.abort()
        return err

    def commit(self) -> Path:
        try:
            self._file.close()   # writes the header's final sizes
        except Exception as e:
            raise self._failed(e) from None
        self._out.commit()
        return self.path

    def abort(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except Exception:   # the file is being discarded; a failing flush does not matter
                pass
        self._out.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


def write_audio(path, audio, sample_rate: int) -> Path:
    """One-shot: write float32 mono audio to .wav/.flac/.ogg (format from the extension)."""
    with AudioFileWriter(path, sample_rate) as w:
        w.write(audio)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# raw PCM

def to_s16le(audio) -> bytes:
    """float32 [-1, 1] -> little-endian int16 bytes (clipped, rounded)."""
    a = np.clip(np.asarray(audio, np.float32).reshape(-1), -1.0, 1.0)
    return np.round(a * 32767.0).astype("<i2").tobytes()


class RawWriter:
    """s16le chunks to a binary stream (stdout by default), flushed per chunk."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.frames = 0

    def write(self, chunk) -> None:
        data = to_s16le(chunk)
        self.stream.write(data)
        self.stream.flush()
        self.frames += len(data) // 2
