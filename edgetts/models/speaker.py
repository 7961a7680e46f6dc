"""Speaker encoder of the Base models: log-mel front end + ECAPA-TDNN -> x-vector (spec/codec.md §6).

    enc = SpeakerEncoder.load(checkpoint)     # speaker_encoder.* (safetensors) or spk_enc.* (GGUF)
    mel = enc.mel(audio)                      # float32 [frames, n_mels], audio mono at enc.sample_rate
    xvec = enc(mel)                           # float32 [enc_dim]

Sizes (channels, kernel sizes, Res2Net scale, attention / SE widths, enc_dim, n_mels) come from
the tensor shapes; dilations are not in the tensors: they come from config.json
(`speaker_encoder_config.enc_dilations`) and otherwise from the official defaults, which the
released checkpoints use (their config.json only carries enc_dim and sample_rate).

The whole network is float32 numpy: every conv is a sum of per-tap matrix products (BLAS); about
0.5 GMAC per second of reference audio at full size, run once per cloned voice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import EdgeTTSError
from ..gguf.names import GGUFView

# The official `extract_speaker_embedding` calls `mel_spectrogram` with these fixed values.
N_FFT = 1024
HOP = 256
WIN = 1024
FMIN = 0.0
FMAX = 12000.0
MAG_EPS = 1e-9      # inside the sqrt: magnitude, not power
LOG_FLOOR = 1e-5    # natural log of max(mel, 1e-5)
STD_EPS = 1e-12     # attentive statistics pooling clamps the variance here
# Qwen3TTSSpeakerEncoderConfig defaults (the released config.json does not override them).
DEFAULT_DILATIONS = (1, 2, 3, 4, 1)
DEFAULT_SAMPLE_RATE = 24000


# ------------------------------------------------------------------------------ mel front end
def _hz_to_mel(f):
    """Slaney mel scale (librosa htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, mels)


def _mel_to_hz(m):
    m = np.asarray(m, np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """float32 [n_mels, n_fft//2 + 1]: triangular filters on the Slaney mel scale with Slaney area
    normalisation, computed the way librosa.filters.mel does (float64 ramps, float32 weights)."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, fft_freqs.size), np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, None]
    return weights


def periodic_hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def log_mel(audio: np.ndarray, fbank: np.ndarray, n_fft: int = N_FFT, hop: int = HOP,
            win: int = WIN) -> np.ndarray:
    """float32 [frames, n_mels] log-magnitude mel spectrogram, as the official `mel_spectrogram`:
    reflect pad (n_fft - hop) / 2 on both sides, STFT without centering (periodic Hann),
    sqrt(re^2 + im^2 + 1e-9), mel = fbank @ |S|, ln(max(mel, 1e-5))."""
    y = np.asarray(audio, np.float32).reshape(-1)
    pad = (n_fft - hop) // 2
    if y.size <= pad:
        raise EdgeTTSError(f"reference audio is too short for the speaker encoder ({y.size} samples)")
    y = np.pad(y, (pad, pad), mode="reflect")
    n_frames = 1 + (y.size - n_fft) // hop
    if n_frames < 1:
        raise EdgeTTSError(f"reference audio is too short for the speaker encoder ({audio.size} samples)")
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop][:n_frames]
    window = np.zeros(n_fft, np.float32)
    off = (n_fft - win) // 2          # torch.stft centres a shorter window inside n_fft
    window[off:off + win] = periodic_hann(win)
    spec = np.fft.rfft(frames.astype(np.float64) * window, axis=1)
    mag = np.sqrt(spec.real ** 2 + spec.imag ** 2 + MAG_EPS)
    mel = mag @ fbank.astype(np.float64).T
    return np.log(np.maximum(mel, LOG_FLOOR)).astype(np.float32)


# ------------------------------------------------------------------------------ ECAPA-TDNN
class _Conv:
    """Conv1d with bias and PyTorch 'same' reflect padding (left = total // 2), on [C, T]."""

    def __init__(self, view: GGUFView, name: str, dilation: int = 1):
        w = view[name + ".weight"].numpy()
        if w.ndim == 2:
            w = w[:, :, None]
        self.out_ch, self.in_ch, self.k = w.shape
        # [out, k * in], tap-major: one GEMM over the stacked shifted inputs (im2col); small
        # per-tap GEMMs (64 x 64 in the Res2Net blocks) run far below BLAS speed
        self.w = np.ascontiguousarray(w.transpose(0, 2, 1).reshape(self.out_ch, self.k * self.in_ch), np.float32)
        self.bias = view[name + ".bias"].numpy().reshape(-1, 1).astype(np.float32)
        self.dilation = int(dilation)
        total = self.dilation * (self.k - 1)
        self.pad = (total // 2, total - total // 2)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.k == 1:
            return self.w @ x + self.bias
        T = x.shape[1]
        xp = np.pad(x, ((0, 0), self.pad), mode="reflect")
        cols = np.concatenate([xp[:, j * self.dilation: j * self.dilation + T] for j in range(self.k)], axis=0)
        return self.w @ cols + self.bias


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


@dataclass
class SpeakerConfig:
    sample_rate: int
    n_mels: int
    enc_dim: int
    channels: list[int]        # conv0, each SE-Res2Net block, MFA (as enc_channels)
    kernel_sizes: list[int]
    dilations: list[int]
    res2net_scale: int
    se_channels: int
    attention_channels: int

    @property
    def max_pad(self) -> int:
        return max(d * (k - 1) - d * (k - 1) // 2 for k, d in zip(self.kernel_sizes, self.dilations))

    @property
    def min_samples(self) -> int:
        """Shortest input (at sample_rate) whose mel frames outnumber the largest reflect pad."""
        return (self.max_pad + 1) * HOP


def _spk_meta(ck) -> dict:
    """speaker_encoder_config of the checkpoint (config.json, or read back from GGUF metadata)."""
    if ck.main.format == "gguf":
        from ..gguf.metadata import main_config
        return dict(main_config(ck.main.metadata)[0].get("speaker_encoder_config") or {})
    return dict((ck.config or {}).get("speaker_encoder_config") or {})


class SpeakerEncoder:
    """ECAPA-TDNN x-vector extractor (no BatchNorm; ReLU before tanh in the pooling attention)."""

    def __init__(self, view: GGUFView, meta: dict):
        if "spk_enc.conv0.weight" not in view:
            raise EdgeTTSError("this checkpoint has no speaker encoder (only Base models can clone a voice)")
        n_blocks = 1
        while f"spk_enc.blk.{n_blocks}.tdnn1.weight" in view:
            n_blocks += 1
        dil = list(meta.get("enc_dilations") or DEFAULT_DILATIONS)
        if len(dil) != n_blocks + 1:
            raise EdgeTTSError(f"speaker encoder: {n_blocks + 1} layers in the weights but "
                               f"{len(dil)} dilations in the config")
        scale = 1
        while f"spk_enc.blk.1.res2net.{scale - 1}.weight" in view:
            scale += 1
        conv0 = view["spk_enc.conv0.weight"].shape
        ks = [int(conv0[-1])] + [int(view[f"spk_enc.blk.{i}.res2net.0.weight"].shape[-1])
                                 for i in range(1, n_blocks)] + [int(view["spk_enc.mfa.weight"].shape[-1])]
        chans = [int(conv0[0])] + [int(view[f"spk_enc.blk.{i}.tdnn1.weight"].shape[0])
                                   for i in range(1, n_blocks)] + [int(view["spk_enc.mfa.weight"].shape[0])]
        self.cfg = cfg = SpeakerConfig(
            sample_rate=int(meta.get("sample_rate") or DEFAULT_SAMPLE_RATE), n_mels=int(conv0[1]),
            enc_dim=int(view["spk_enc.fc.weight"].shape[0]), channels=chans, kernel_sizes=ks,
            dilations=[int(d) for d in dil], res2net_scale=scale,
            se_channels=int(view["spk_enc.blk.1.se.conv1.weight"].shape[0]) if n_blocks > 1 else 0,
            attention_channels=int(view["spk_enc.asp.tdnn.weight"].shape[0]))
        if meta.get("enc_dim") and int(meta["enc_dim"]) != cfg.enc_dim:
            raise EdgeTTSError(f"speaker encoder: config enc_dim {meta['enc_dim']} but fc has {cfg.enc_dim} outputs")
        self.conv0 = _Conv(view, "spk_enc.conv0", cfg.dilations[0])
        self.blocks = []
        for i in range(1, n_blocks):
            p = f"spk_enc.blk.{i}"
            self.blocks.append(dict(
                tdnn1=_Conv(view, p + ".tdnn1"), tdnn2=_Conv(view, p + ".tdnn2"),
                res2net=[_Conv(view, f"{p}.res2net.{j}", cfg.dilations[i]) for j in range(scale - 1)],
                se1=_Conv(view, p + ".se.conv1"), se2=_Conv(view, p + ".se.conv2")))
        self.mfa = _Conv(view, "spk_enc.mfa", cfg.dilations[-1])
        self.asp_tdnn = _Conv(view, "spk_enc.asp.tdnn")
        self.asp_conv = _Conv(view, "spk_enc.asp.conv")
        self.fc = _Conv(view, "spk_enc.fc")
        self.fbank = mel_filterbank(cfg.sample_rate, N_FFT, cfg.n_mels, FMIN, FMAX)

    @classmethod
    def load(cls, checkpoint) -> "SpeakerEncoder":
        if checkpoint.main is None:
            raise EdgeTTSError(f"{checkpoint.root}: no talker weights (the speaker encoder lives there)")
        return cls(GGUFView(checkpoint.main), _spk_meta(checkpoint))

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def enc_dim(self) -> int:
        return self.cfg.enc_dim

    def mel(self, audio: np.ndarray) -> np.ndarray:
        """float32 [frames, n_mels] of mono audio at `sample_rate`."""
        return log_mel(audio, self.fbank)

    def _se_res2net(self, b: dict, x: np.ndarray) -> np.ndarray:
        h = _relu(b["tdnn1"](x))
        parts = np.array_split(h, self.cfg.res2net_scale, axis=0)
        outs, prev = [parts[0]], None
        for i, part in enumerate(parts[1:]):
            prev = _relu(b["res2net"][i](part if prev is None else part + prev))
            outs.append(prev)
        h = _relu(b["tdnn2"](np.concatenate(outs, axis=0)))
        s = h.mean(axis=1, keepdims=True)
        s = _sigmoid(b["se2"](_relu(b["se1"](s))))
        return h * s + x

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        """x-vector float32 [enc_dim] of a log-mel [frames, n_mels]."""
        mel = np.asarray(mel, np.float32)
        if mel.ndim != 2 or mel.shape[1] != self.cfg.n_mels:
            raise EdgeTTSError(f"speaker encoder: mel must be [frames, {self.cfg.n_mels}], got {mel.shape}")
        if mel.shape[0] <= self.cfg.max_pad:
            raise EdgeTTSError(f"reference audio is too short: {mel.shape[0]} mel frames, the speaker "
                               f"encoder needs at least {self.cfg.max_pad + 1}")
        x = _relu(self.conv0(np.ascontiguousarray(mel.T)))
        feats = []
        for b in self.blocks:
            x = self._se_res2net(b, x)
            feats.append(x)
        m = _relu(self.mfa(np.concatenate(feats, axis=0)))
        T, C = m.shape[1], m.shape[0]
        # attentive statistics pooling (population statistics; uniform weights first). The
        # attention input concat[m, mu 1^T, sd 1^T] has two columns constant over time: their
        # part of asp.tdnn is one matrix-vector product added to every frame.
        mu, sd = _stats(m, np.full((1, T), 1.0 / T, np.float32))
        W, b = self.asp_tdnn.w, self.asp_tdnn.bias
        const = W[:, C:2 * C] @ mu + W[:, 2 * C:] @ sd + b
        e = self.asp_conv(np.tanh(_relu(W[:, :C] @ m + const)))
        e = np.exp(e - e.max(axis=1, keepdims=True))
        w = e / e.sum(axis=1, keepdims=True)
        mu_w, sd_w = _stats(m, w)
        pooled = np.concatenate([mu_w, sd_w], axis=0)
        return self.fc(pooled).reshape(-1).astype(np.float32)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """x-vector of mono float audio at `sample_rate`."""
        return self(self.mel(audio))


def _stats(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = (x * w).sum(axis=1, keepdims=True)
    var = (w * (x - mean) ** 2).sum(axis=1, keepdims=True)
    return mean, np.sqrt(np.maximum(var, STD_EPS)).astype(np.float32)
