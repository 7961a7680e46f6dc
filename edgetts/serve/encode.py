"""Audio chunks -> the bytes of a response format, as they are made (soundfile / libsndfile).

    enc = Encoder("mp3", 24000)
    for chunk in chunks:
        send(enc.push(chunk))      # may be b"" while the encoder gathers a frame
    send(enc.finish())

Every format carries the same int16 samples (edgetts.audio.to_s16le); pcm is them raw. wav, mp3
and opus (in Ogg) stream: libsndfile writes them front to back, and the header fix-ups it makes
when it closes the file (sizes, the LAME tag) are dropped because those bytes have left already;
so a streamed WAV says "size unknown" (0xFFFFFFFF, as WAV streams do), and mp3 is constant bit
rate (~80 kbit/s mono), which a player can read without the LAME tag, though the decoded audio
then keeps the encoder delay (~70 ms at 24 kHz). FLAC needs its header (STREAMINFO: total
samples) right to be read back, so it is sent whole, once the audio is complete.
"""
from __future__ import annotations

import io

import numpy as np

from ..audio import to_s16le
from ..errors import EdgeTTSError

# response_format -> (libsndfile format, subtype, media type, streams as made)
FORMATS = {
    "pcm": (None, None, "audio/pcm", True),
    "wav": ("WAV", "PCM_16", "audio/wav", True),
    "mp3": ("MP3", "MPEG_LAYER_III", "audio/mpeg", True),
    "opus": ("OGG", "OPUS", "audio/ogg", True),
    "flac": ("FLAC", "PCM_16", "audio/flac", False),
}
_UNKNOWN_SIZE = b"\xff\xff\xff\xff"


class _AppendOnly:
    """A file object for libsndfile whose bytes are sent as they are appended.

    Writes behind the sent end (header fix-ups at close) are dropped."""

    def __init__(self):
        self.sent = 0
        self.pos = 0
        self.out = bytearray()   # appended, not yet taken

    def write(self, data) -> int:
        data = bytes(data)
        end = self.sent + len(self.out)
        if self.pos + len(data) > end:
            self.out += data[max(0, end - self.pos):]
        self.pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        end = self.sent + len(self.out)
        self.pos = offset if whence == 0 else (self.pos + offset if whence == 1 else end + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        return b""

    def take(self) -> bytes:
        data = bytes(self.out)
        self.sent += len(data)
        self.out.clear()
        return data


class Encoder:
    def __init__(self, response_format: str, sample_rate: int):
        if response_format not in FORMATS:
            raise EdgeTTSError(f"unsupported response_format {response_format!r}; "
                               f"choose one of: {', '.join(FORMATS)}")
        self.format = response_format
        fmt, subtype, self.media_type, self.streams = FORMATS[response_format]
        self.sample_rate = int(sample_rate)
        self._file = self._sink = None
        self._first = True
        if fmt is not None:
            import soundfile as sf

            self._sink = _AppendOnly() if self.streams else io.BytesIO()
            extra = {"bitrate_mode": "CONSTANT", "compression_level": 0.5} if fmt == "MP3" else {}
            self._file = sf.SoundFile(self._sink, "w", samplerate=self.sample_rate, channels=1,
                                      format=fmt, subtype=subtype, **extra)

    def push(self, chunk) -> bytes:
        pcm = to_s16le(chunk)   # every format carries the same int16 samples as pcm
        if self._file is None:
            return pcm
        self._file.write(np.frombuffer(pcm, "<i2"))
        return self._take()

    def finish(self) -> bytes:
        if self._file is None:
            return b""
        self._file.close()
        if not self.streams:
            return self._sink.getvalue()
        return self._take()

    def close(self) -> None:
        """Drop the rest (the client went away)."""
        if self._file is not None and not self._file.closed:
            self._file.close()

    def _take(self) -> bytes:
        if not self.streams:
            return b""
        data = self._sink.take()
        if self._first and data:
            self._first = False
            if self.format == "wav" and data[:4] == b"RIFF" and data[36:40] == b"data":
                data = data[:4] + _UNKNOWN_SIZE + data[8:40] + _UNKNOWN_SIZE + data[44:]
        return data
