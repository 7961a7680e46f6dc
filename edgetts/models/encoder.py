"""Codec encoder (Mimi-style): 24 kHz audio -> reference codes [frames, groups]. docs/model.md §8.

    enc = CodecEncoder.load(edgetts.weights.open(path))
    codes = enc.encode(audio)         # float32 [N] at enc.sample_rate -> int64 [ceil(N / 1920), 16]

One forward, top to bottom, time-major ([T, C], C contiguous) like the decoder:
  1. SEANet: conv k7 -> per stage [ResBlock(s), ELU, strided conv k=2r s=r] -> ELU, conv k3.
     Every conv is causal: left pad K - S zeros, right zero pad up to a multiple of S.
     The high-rate layers (24, 6 and 1.2 kHz: most of the activation memory) run in chunks of
     `chunk_frames` codec frames with each conv's left context carried over (its last K - S
     input rows): the output equals one full pass (all ops causal, every non-final chunk a
     multiple of every stride) while scratch memory stays bounded and in cache. Layers with fewer
     than MIN_CHUNK_ROWS rows per chunk run once on the whole sequence (their GEMMs would
     otherwise re-read megabytes of weights for a handful of rows). Each conv is im2col + BLAS
     GEMM in row tiles; a strided conv with k = m*s is a stride-1 conv of m taps over its input
     viewed as [L/s, s*C] (a reshape, no copy).
  2. Transformer at 25 Hz on the whole sequence: pre-norm LayerNorm (bias), rotate-half
     RoPE from position 0, full causal attention (what the official eager/SDPA path computes;
     the config's sliding_window only applies under flash-attention-2), exact-erf GELU MLP,
     layer scales on both branches, no final norm.
  3. Downsample: conv k4 s2, no bias, *replicate* padding -> 12.5 Hz.
  4. Split RVQ: semantic code = nearest codeword of input_proj_sem(x); acoustic codes =
     greedy residual VQ of input_proj_ac(x) (the same latent x, not the semantic residual).
     Codebooks are embed_sum / max(cluster_usage, 1e-5) (done by GGUFView / `edgetts quantize`).
     Only the first encoder_valid_num_quantizers codes are kept (the official encode()
     computes all quantizers and slices; greedy RVQ makes the first ones independent of the rest).

Sizes come from the checkpoint (config + tensor shapes); weights of any stored type are widened
to float32 at load. Threads: the codec's row splitter (kernels.pool.Rows): BLAS single-threaded inside.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import EdgeTTSError
from ..gguf.names import GGUFView
from ..kernels import codec_attn as ka
from ..kernels import conv as kc
from ..kernels import encoder_ops as ko
from ..kernels import snake as ks
from ..kernels.memory import release_pages
from ..kernels.rope import rope_cos_sin
from ..kernels.pool import Rows, default_threads
from .codec import CodecDecoder
from .config import EncoderConfig

_P = "tok_enc."


# ------------------------------------------------------------------------------------ layers
def _transposed(w: np.ndarray) -> np.ndarray:
    """A Linear weight [out, in] as a contiguous float32 [in, out] copy (x @ W^T as a plain GEMM)."""
    return np.ascontiguousarray(np.asarray(w, np.float32).T)


class _Conv:
    """Causal conv (MimiConv1d, constant padding) with its left context carried between chunks.

    k taps, stride s, dilation d; context = K - s input rows, K = d*(k-1) + 1. A strided conv
    (k a multiple of s, d = 1) runs as a stride-1 conv of k/s taps over [rows/s, s*Cin]."""

    @staticmethod
    def layout(w_torch: np.ndarray):
        """(PyTorch weight [Cout, Cin, k] -> tap-major [k*Cin, Cout] float32 copy, (Cout, Cin, k))."""
        return kc.conv_weight(np.asarray(w_torch, np.float32)), w_torch.shape

    def __init__(self, w, bias: np.ndarray | None, stride: int = 1, dilation: int = 1, name: str = ""):
        """w: layout()'s result."""
        self.w, (self.cout, self.cin, self.k) = w
        self.s, self.d = int(stride), int(dilation)
        if self.s > 1 and (self.k % self.s or self.d != 1):
            raise EdgeTTSError(f"codec encoder: {name} has kernel {self.k}, stride {self.s}, dilation "
                               f"{self.d}; only kernels that are a multiple of the stride are supported")
        self.ctx = self.d * (self.k - 1) + 1 - self.s
        self.bias = None if bias is None else np.ascontiguousarray(bias, np.float32)

    def state(self):
        return np.zeros((self.ctx, self.cin), np.float32)

    def buffer(self, st, n: int, last: bool):
        """[ctx + n + right pad, Cin]: the carried context, room for n new rows (the caller fills
        rows ctx:ctx+n), then zeros up to a multiple of the stride (only the last chunk has them)."""
        pad = (-n) % self.s
        assert last or not pad, "a non-final chunk must be a multiple of every stride"
        buf = np.empty((self.ctx + n + pad, self.cin), np.float32)
        buf[: self.ctx] = st
        buf[self.ctx + n:] = 0.0
        return buf

    # im2col tiles: narrow convs in L2-sized tiles, wide ones (weights > SMALL_W floats) in tiles of
    # up to 8 MB so that each GEMM call (which re-packs the weights) has enough rows
    TILE_FLOATS = 1 << 18
    SMALL_W = 1 << 17
    WIDE_TILE_FLOATS = 1 << 21

    def run(self, buf, st, rows):
        """Conv over a filled buffer; stores the next left context in st. Bias added."""
        n = buf.shape[0] - self.ctx
        if self.ctx:
            st[:] = buf[n:]
        if self.s == 1:
            src, taps, dil = buf, self.k, self.d
        else:
            src, taps, dil = buf.reshape(-1, self.s * self.cin), self.k // self.s, 1
        span = dil * (taps - 1)
        nout = src.shape[0] - span
        if taps == 1:
            y = rows.gemm(src, self.w)
        else:
            y = np.empty((nout, self.cout), np.float32)
            Kc = self.k * self.cin
            tile = max(16, (self.TILE_FLOATS if Kc * self.cout <= self.SMALL_W else self.WIDE_TILE_FLOATS) // Kc)

            def part(r0, r1):
                cols = np.empty((min(tile, r1 - r0), Kc), np.float32)
                for t0 in range(r0, r1, tile):
                    t1 = min(r1, t0 + tile)
                    cc = cols[: t1 - t0]
                    kc.im2col(cc, src[t0: t1 + span], taps, dil)
                    kc.matmul(cc, self.w, y[t0:t1])
            if rows.pool is None or nout * Kc * self.cout < rows.MIN_GEMM:
                part(0, nout)
            elif nout >= 64 * rows.threads:
                rows.par(part, nout)          # each thread: its own rows, im2col + GEMM
            else:                             # few rows: one im2col, GEMM split by columns
                cols = np.empty((nout, Kc), np.float32)
                kc.im2col(cols, src, taps, dil)
                rows.gemm(cols, self.w, y)
        if self.bias is not None:
            y += self.bias
        return y


@dataclass
class _ResBlock:
    conv1: _Conv   # ELU, conv k (dilated), C -> C/compress
    conv2: _Conv   # ELU, conv 1x1, back to C; output added to the block input


class EncoderWeights:
    """The encoder's weights laid out for the time-major kernels. Built by CodecEncoder.load."""

    def __init__(self, cfg: EncoderConfig, view: GGUFView):
        self.cfg = cfg
        stored = CodecDecoder._getter(view)

        def get(name, layout=np.array):
            """layout(the tensor as float32 in its stored shape), a new array. F32 files are
            memory-mapped: once copied, the tensor's pages are dropped from the resident set."""
            a = stored(name)
            out = layout(a)
            release_pages(a)
            return out

        def conv(i, stride=1):
            return _Conv(get(f"{_P}conv.{i}.weight", _Conv.layout), get(f"{_P}conv.{i}.bias"), stride,
                         name=f"layer {i}")

        # SEANet, layer indices as MimiEncoder numbers its ModuleList
        self.conv0 = conv(0)
        self.stages = []
        i = 1
        for ratio in reversed(cfg.upsampling_ratios):
            res = []
            for j in range(cfg.num_residual_layers):
                p = f"{_P}res.{i}.blk."
                res.append(_ResBlock(
                    _Conv(get(p + "1.weight", _Conv.layout), get(p + "1.bias"), 1, cfg.dilation_growth_rate ** j),
                    _Conv(get(p + "3.weight", _Conv.layout), get(p + "3.bias"))))
                i += 1
            self.stages.append((res, conv(i + 1, ratio)))   # i: the ELU, i+1: the strided conv
            i += 2
        self.conv_out = conv(i + 1)
        self.hidden = self.conv_out.cout
        self.seanet_stride = int(np.prod(cfg.upsampling_ratios))
        ch = self.conv0.cout
        for res, down in self.stages:
            for r in res:
                if r.conv1.cin != ch or r.conv2.cout != ch or r.conv2.k != 1:
                    raise EdgeTTSError(f"codec encoder: residual block shapes {r.conv1.w.shape}/"
                                       f"{r.conv2.w.shape} do not fit {ch} channels")
            if down.cin != ch:
                raise EdgeTTSError(f"codec encoder: strided conv takes {down.cin} channels, got {ch}")
            ch = down.cout
        if self.conv_out.cin != ch or self.conv0.cin != 1:
            raise EdgeTTSError("codec encoder: SEANet channel counts do not chain")

        # transformer
        H, Hkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        D = self.hidden
        self.layers = []
        for li in range(cfg.num_hidden_layers):
            b = f"{_P}blk.{li}."
            wq, wk, wv = (get(b + f"attn_{x}.weight", _transposed) for x in "qkv")   # [D, out]
            if wq.shape != (D, H * hd) or wk.shape != (D, Hkv * hd) or wv.shape != (D, Hkv * hd):
                raise EdgeTTSError(f"codec encoder: attention weights {wq.shape}/{wk.shape} do not match "
                                   f"{H}/{Hkv} heads x {hd} over width {D}")
            self.layers.append(dict(
                ln1=(get(b + "attn_norm.weight"), get(b + "attn_norm.bias")),
                qkv=np.concatenate([wq, wk, wv], axis=1),      # [D, (H + 2 Hkv) hd]
                o=get(b + "attn_output.weight", _transposed),
                ls1=get(b + "attn_scale"),
                ln2=(get(b + "ffn_norm.weight"), get(b + "ffn_norm.bias")),
                fc1=get(b + "ffn_up.weight", _transposed),
                fc2=get(b + "ffn_down.weight", _transposed),
                ls2=get(b + "ffn_scale"),
            ))

        # downsample (MimiModel.downsample): SEANet rate -> frame rate; kernel as stored (2 * stride)
        ds = cfg.frame_samples // self.seanet_stride
        if ds * self.seanet_stride != cfg.frame_samples or ds < 1:
            raise EdgeTTSError(f"codec encoder: {cfg.frame_samples} samples per frame is not a multiple of the "
                               f"SEANet stride {self.seanet_stride}")
        self.down = _Conv(get(_P + "downsample.weight", _Conv.layout), None, ds, name="downsample")
        if (self.down.cin, self.down.cout) != (D, D):
            raise EdgeTTSError(f"codec encoder: downsample is {self.down.cin}->{self.down.cout}, width is {D}")

        # split RVQ
        nsem = cfg.num_semantic_quantizers
        if not 1 <= nsem <= cfg.num_quantizers:
            raise EdgeTTSError(f"codec encoder: {nsem} semantic quantizers for {cfg.num_quantizers} codes")
        self.groups = []
        for g, n in (("vq_semantic", nsem), ("vq_acoustic", cfg.num_quantizers - nsem)):
            if n == 0:
                continue
            name = f"{_P}{g}.input_proj.weight"
            # [D, vq_dim]; absent when the VQ width equals the hidden size (then the identity)
            proj = get(name, lambda a: _transposed(a.reshape(a.shape[0], -1))) if name in view else None
            books = []
            for q in range(n):
                cname = f"{_P}{g}.{q}.codebook"
                if cname not in view:
                    raise EdgeTTSError(f"codec encoder: codebook {cname!r} missing "
                                       f"(encoder_valid_num_quantizers is {cfg.num_quantizers})")
                e = get(cname)
                vq_dim = D if proj is None else proj.shape[1]
                if e.shape != (cfg.codebook_size, vq_dim):
                    raise EdgeTTSError(f"codec encoder: codebook {cname} is {e.shape}, expected "
                                       f"[{cfg.codebook_size}, {vq_dim}]")
                books.append((e, np.einsum("ij,ij->i", e, e, dtype=np.float32)))
            self.groups.append((proj, books))


# ------------------------------------------------------------------------------------ encoder
class CodecEncoder:
    """CodecEncoder.load(checkpoint) -> encode(audio float32 [N] at sample_rate) -> int64 [frames, groups]."""

    chunk_frames = 4   # codec frames of audio per SEANet step (bounded scratch memory)

    def __init__(self, weights: EncoderWeights, threads: int | None = None):
        self.weights = weights
        self.config = cfg = weights.cfg
        self.rows = Rows(default_threads() if threads is None else threads)
        self.sample_rate = cfg.sample_rate
        self.samples_per_frame = cfg.frame_samples
        self.num_quantizers = cfg.num_quantizers
        self.profile: dict | None = None   # set to {} to collect seconds per stage

    @classmethod
    def load(cls, checkpoint, threads: int | None = None) -> "CodecEncoder":
        """checkpoint: what edgetts.weights.open() returns (HF directory or the GGUF pair)."""
        w = getattr(checkpoint, "codec", None)
        if w is None:
            raise EdgeTTSError(f"{getattr(checkpoint, 'root', 'checkpoint')}: no codec (speech tokenizer) "
                               "weights found; expected speech_tokenizer/ or a qwen3-tts-tokenizer GGUF")
        view = GGUFView(w)
        if f"{_P}conv.0.weight" not in view:
            raise EdgeTTSError(f"{w.path}: the codec has no encoder weights (encoder.* / tok_enc.*); "
                               "it can decode but not encode reference audio")
        return cls(EncoderWeights(EncoderConfig.from_checkpoint(checkpoint), view), threads)

    def encode(self, audio) -> np.ndarray:
        """audio: mono float [N] at self.sample_rate (no gain normalisation) -> int64
        [ceil(N / samples_per_frame), num_quantizers], ordered [semantic, acoustic...]."""
        x = np.asarray(audio)
        if x.ndim != 1:
            raise EdgeTTSError(f"codec encoder: audio must be mono [samples], got shape {x.shape}")
        if x.size == 0:
            raise EdgeTTSError("codec encoder: the audio is empty")
        if not np.issubdtype(x.dtype, np.floating):
            raise EdgeTTSError(f"codec encoder: audio must be floating point, got {x.dtype}")
        x = np.ascontiguousarray(x, np.float32)
        if not np.isfinite(x).all():
            raise EdgeTTSError("codec encoder: the audio contains NaN or infinite samples")
        prev = kc.blas_threads(1)
        try:
            t0 = self._tick(None, 0.0)
            h = self._seanet(x)
            t0 = self._tick("seanet", t0)
            h = self._transformer(h)
            t0 = self._tick("transformer", t0)
            h = self._downsample(h)
            t0 = self._tick("downsample", t0)
            codes = self._quantize(h)
            self._tick("rvq", t0)
        finally:
            kc.blas_threads(prev)
        return codes[: -(-x.size // self.samples_per_frame)]

    def _tick(self, stage, t0):
        if self.profile is None:
            return 0.0
        t = time.perf_counter()
        if stage is not None:
            self.profile[stage] = self.profile.get(stage, 0.0) + (t - t0)
        return t

    # -- 1. SEANet: the high-rate layers in chunks with carried conv context, the rest in one go
    # a layer whose input has fewer rows per chunk runs on the whole sequence: with 4-frame chunks
    # the 24 kHz, 6 kHz and 1.2 kHz stages are chunked, the sequence kept whole is at 200 Hz
    # (0.4 MB per second of audio at full size)
    MIN_CHUNK_ROWS = 256

    def _seanet(self, audio: np.ndarray) -> np.ndarray:
        W = self.weights
        steps = [("conv", W.conv0, 1)]          # (kind, layer, input rate divisor)
        div = 1
        for res, down in W.stages:
            steps += [("res", r, div) for r in res] + [("elu_conv", down, div)]
            div *= down.s
        steps.append(("elu_conv", W.conv_out, div))
        step = self.chunk_frames * self.samples_per_frame   # a multiple of every stride
        split = next((i for i, (_, _, d) in enumerate(steps) if step // d < self.MIN_CHUNK_ROWS), len(steps))
        x = audio.reshape(-1, 1)
        N = x.shape[0]
        div = steps[split][2] if split < len(steps) else W.seanet_stride
        ch = 1
        if split:
            kind, layer, _ = steps[split - 1]
            ch = layer.conv2.cout if kind == "res" else layer.cout
        mid = np.empty((-(-N // div), ch), np.float32)
        states = self._states(steps[:split])
        o = 0
        for a in range(0, N, step):
            b = min(N, a + step)
            h = self._run_steps(steps[:split], x[a:b], b == N, states)
            mid[o: o + h.shape[0]] = h
            o += h.shape[0]
        assert o == mid.shape[0]
        return self._run_steps(steps[split:], mid, True)

    @staticmethod
    def _states(steps):
        """Each step's conv left context (zeros: the causal padding of the first chunk)."""
        return [(layer.conv1 if kind == "res" else layer).state() for kind, layer, _ in steps]

    def _run_steps(self, steps, x, last, states=None):
        """Apply SEANet steps to x (rows at the first step's input rate); states carry each conv's
        left context between chunks (fresh zeros when None: the whole sequence in one call)."""
        if states is None:
            states = self._states(steps)
        for (kind, layer, _), st in zip(steps, states):
            if kind == "conv":
                c = layer
                buf = c.buffer(st, x.shape[0], last)
                buf[c.ctx: c.ctx + x.shape[0]] = x
                x = c.run(buf, st, self.rows)
            elif kind == "res":
                self._resblock(layer, st, x, last)   # in place on x (always an array of ours here)
            else:
                x = self._elu_conv(layer, st, x, last)
        return x

    def _elu_conv(self, c: _Conv, st, x, last):
        n = x.shape[0]
        buf = c.buffer(st, n, last)
        self.rows(ko.elu, x, buf[c.ctx: c.ctx + n], rows=(0,))
        return c.run(buf, st, self.rows)

    def _resblock(self, r: _ResBlock, st1, x, last):
        """x += conv2(ELU(conv1(ELU(x)))) in place."""
        h = self._elu_conv(r.conv1, st1, x, last)
        self.rows(ko.elu, h, h, rows=(0,))
        z = self.rows.gemm(h, r.conv2.w)
        self.rows(ks.residual_add, x, z, r.conv2.bias, rows=(0,))

    # -- 2. transformer (whole sequence, full causal attention)
    ATTN_BLOCK = 256   # queries per attention work item (scores scratch: block x frames)

    def _transformer(self, h: np.ndarray) -> np.ndarray:
        W, cfg, rows = self.weights, self.config, self.rows
        T, D = h.shape
        H, Hkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        eps = np.float32(cfg.norm_eps)
        zero = np.zeros(D, np.float32)
        cos, sin = rope_cos_sin(np.arange(T), hd, cfg.rope_theta)
        scale = np.float32(hd ** -0.5)
        a = np.empty_like(h)
        att = np.empty((T, H, hd), np.float32)
        group = H // Hkv
        # attention work items: (head, block of queries); scores [block, keys so far] per item
        B = self.ATTN_BLOCK
        items = [(hh, q0) for hh in range(H) for q0 in range(0, T, B)]
        for L in W.layers:
            rows(ks.layer_norm, h, L["ln1"][0], L["ln1"][1], eps, a, rows=(3,))
            qkv = rows.gemm(a, L["qkv"])
            q = np.ascontiguousarray(qkv[:, : H * hd]).reshape(T, H, hd)
            k = np.ascontiguousarray(qkv[:, H * hd: (H + Hkv) * hd]).reshape(T, Hkv, hd)
            v = qkv[:, (H + Hkv) * hd:].reshape(T, Hkv, hd)
            ka.rope_rotate(q, cos, sin)
            ka.rope_rotate(k, cos, sin)

            def attend(i0, i1):
                for hh, q0 in items[i0:i1]:
                    kh, q1 = hh // group, min(T, q0 + B)
                    s = q[q0:q1, hh] @ k[:q1, kh].T          # [block, q1]
                    ko.causal_softmax(s, scale, q0)
                    att[q0:q1, hh] = s @ v[:q1, kh]
            rows.par(attend, len(items)) if T * T * H >= rows.MIN_ELEMS else attend(0, len(items))
            o = rows.gemm(att.reshape(T, H * hd), L["o"])
            rows(ks.scale_residual, h, o, zero, L["ls1"], rows=(0,))
            rows(ks.layer_norm, h, L["ln2"][0], L["ln2"][1], eps, a, rows=(3,))
            f = rows.gemm(a, L["fc1"])
            rows(ko.gelu, f)
            m = rows.gemm(f, L["fc2"])
            rows(ks.scale_residual, h, m, zero, L["ls2"], rows=(0,))
        return h

    # -- 3. downsample: replicate padding (first frame on the left, last frame on the right)
    def _downsample(self, h: np.ndarray) -> np.ndarray:
        c = self.weights.down
        T = h.shape[0]
        buf = c.buffer(np.broadcast_to(h[:1], (c.ctx, h.shape[1])), T, last=True)
        buf[c.ctx: c.ctx + T] = h
        buf[c.ctx + T:] = h[-1]
        return c.run(buf, c.state(), self.rows)

    # -- 4. split RVQ
    def _quantize(self, x: np.ndarray) -> np.ndarray:
        T = x.shape[0]
        codes = np.empty((T, self.num_quantizers), np.int64)
        q = 0
        for proj, books in self.weights.groups:
            r = x if proj is None else self.rows.gemm(x, proj)
            if proj is None:
                r = r.copy()
            for i, (e, e2) in enumerate(books):
                # argmin_i ||r - e_i||^2 = argmin_i (||e_i||^2 - 2 r.e_i): first index on ties
                d = kc.matmul(r, e.T)
                d *= np.float32(-2.0)
                d += e2
                c = np.argmin(d, axis=1)
                codes[:, q] = c
                q += 1
                if i + 1 < len(books):
                    r -= e[c]
        return codes
