"""Qwen3-TTS-Tokenizer-12Hz codec decoder: codes [frames, groups] -> 24 kHz waveform.

docs/model.md §6-7. Everything is time-major ([T, C], C contiguous) so each conv is a
GEMM with M = T. The whole decoder is causal, so one code path serves both uses:

    codec = Codec.load(edgetts.weights.open(path))
    wav = codec.decode(codes)             # one-shot
    st = codec.stream(); st.push(codes[:1]); st.push(codes[1:5])   # incremental, exact

CodecStream keeps, per layer, only what the next frames need (docs/model.md §7): conv left context
((k-1)*d rows), transposed-conv carry (k-s rows), the transformer's K/V for the last
sliding_window-1 frames (a ring with room for one chunk more), and the absolute position.
Memory and per-frame work are constant.
decode() is a fresh stream fed in chunks of `chunk_frames` (bounded scratch memory); within a
chunk the late blocks (from LATE_ROWS_PER_FRAME input rows per frame) and the final conv run in
pieces of PIECE_FRAMES frames. The output is identical to a single full forward pass up to
float32 rounding.

Load: weights become float32 (F16/BF16 widened; F32 used in place from the memory map where
the stored layout already suits the kernel). The RVQ sums each group's codebook rows and
projects the sum with the group's output_proj (codebooks read in place); SnakeBeta's exp(alpha)
and 1/(exp(beta)+1e-9) are precomputed. Layouts:
  stride-1 convs    tap-major copy [k*Cin, Cout]           (im2col + one BLAS GEMM)
  transposed convs  as stored, [Cin, Cout*k]               (BLAS GEMM + overlap-add with carry)
  transformer       as stored, [out, in]                   (numba few-row kernel, <= chunk rows;
                                                            one parallel region per push,
                                                            kernels/codec_tfm.py)
  ConvNeXt linears  copy [in, out]                          (BLAS GEMM)

Reduced precision (Codec.load(precision=...), docs/kernels.md §6): the groups named by
codec_precision.plan_precision hold a lowp.PackedGemm (int8 / bf16, packed at load) instead of
the float32 layout above; Rows.gemm / Rows.lin and the convs hand their products to it.

Threads: `threads` (default 2, or EDGETTS_CODEC_THREADS) Python threads split rows / columns of
each stage; BLAS runs single-threaded inside them (see kernels/pool.py). Use threads=1 when the codec
shares two cores with a busy LM thread.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import EdgeTTSError
from ..gguf.names import GGUFView
from .config import CodecConfig
from ..kernels import codec_attn as ka
from ..kernels import codec_tfm
from ..kernels import conv as kc
from ..kernels.gemm_rows import Panels
from ..kernels.memory import RowTable, release_pages
from ..kernels.rope import rope_cos_sin
from ..kernels.pool import Rows, as_f32, default_threads
from ..kernels import snake as ks
from ..kernels.lowp import PackedGemm
from .codec_precision import plan_precision

SNAKE_EPS = 1e-9
CONVNEXT_EPS = 1e-6


# ------------------------------------------------------------------------------------ layers
def _snake_params(alpha: np.ndarray, beta: np.ndarray):
    a = np.exp(alpha.astype(np.float64)).astype(np.float32)
    inv_b = (1.0 / (np.exp(beta.astype(np.float64)) + SNAKE_EPS)).astype(np.float32)
    return a, inv_b


class _Conv:
    """Causal conv, stride 1: weights [k*Cin, Cout], bias [Cout], left context (k-1)*d rows."""

    TILE_FLOATS = 1 << 21  # im2col floats (8 MB) above which run() works in row tiles

    def __init__(self, w_torch, reduce=None, *, bias, dilation=1):
        self.cout, self.cin, self.k = w_torch.shape
        self.d = dilation
        # tap-major copy [k*Cin, Cout] (im2col order), or that packed for a reduced-precision kernel
        self.w = _packed(w_torch, kc.conv_weight(w_torch), reduce, self.k)
        self.bias = np.ascontiguousarray(bias, np.float32)
        self.ctx = (self.k - 1) * dilation

    def state(self):
        return np.zeros((self.ctx, self.cin), np.float32)

    def padded(self, st, n):
        """A [ctx + n, Cin] buffer with the state in front; the caller fills rows ctx: ."""
        buf = np.empty((self.ctx + n, self.cin), np.float32)
        buf[: self.ctx] = st
        return buf

    def run(self, buf, st, rows):
        """Conv over buf (state + new rows, bias NOT added); stores the new left context."""
        n = buf.shape[0] - self.ctx
        st[:] = buf[n:]
        if isinstance(self.w, PackedGemm):  # no im2col: the kernel reads each tap's rows
            return self.w.conv(buf, self.d, rows.par if rows.pool else None)
        if self.k == 1:
            return rows.gemm(buf, self.w)
        K = self.k * self.cin
        if n * K <= self.TILE_FLOATS:
            cols = np.empty((n, K), np.float32)
            rows(kc.im2col, cols, buf, self.k, self.d, rows=(0,), extra=self.ctx)
            return rows.gemm(cols, self.w)
        # long inputs (the final conv: every output sample): im2col + GEMM in row tiles, each
        # thread on its own rows, instead of one [n, k*Cin] im2col (82 MB per 16 frames there)
        out = np.empty((n, self.cout), np.float32)
        tile = max(16, self.TILE_FLOATS // K)

        def part(r0, r1):
            cols = np.empty((min(tile, r1 - r0), K), np.float32)
            for t0 in range(r0, r1, tile):
                t1 = min(r1, t0 + tile)
                cc = cols[: t1 - t0]
                kc.im2col(cc, buf[t0: t1 + self.ctx], self.k, self.d)
                if isinstance(self.w, Panels):
                    self.w.matmul(cc, out[t0:t1])
                else:
                    kc.matmul(cc, self.w, out[t0:t1])
        rows.par(part, n)
        return out


class _TransConv:
    def __init__(self, w_torch, reduce=None, *, bias, stride):
        self.cin, self.cout, self.k = w_torch.shape
        self.s = int(stride)
        if self.k < self.s:
            raise EdgeTTSError(f"codec: transposed conv kernel {self.k} shorter than its stride {self.s}")
        self.w = _packed(w_torch, kc.trans_conv_weight(w_torch), reduce)
        self.bias = np.ascontiguousarray(bias, np.float32)

    def state(self):
        return np.zeros((self.k - self.s, self.cout), np.float32)

    def run(self, x, carry, rows):
        n = x.shape[0]
        y3 = np.ascontiguousarray(rows.gemm(x, self.w)).reshape(n, self.cout, self.k)
        out = np.empty((n * self.s, self.cout), np.float32)
        if rows.pool is None or out.size < rows.MIN_ELEMS:
            kc.overlap_add_rows(y3, carry, self.bias, self.s, out, 0, n * self.s)
        else:
            rows.par(lambda p0, p1: kc.overlap_add_rows(y3, carry, self.bias, self.s, out, p0, p1), n * self.s)
        kc.overlap_carry(y3, self.s, carry)
        return out


@dataclass
class _TfmLayer:
    """One pre-norm transformer layer: Linears as stored [out, in] (q|k|v and gate|up stacked:
    one call each), LayerScale vectors."""
    attn_norm: np.ndarray
    qkv: np.ndarray       # [H*hd + 2*Hkv*hd, D]
    o: np.ndarray
    attn_scale: np.ndarray
    ffn_norm: np.ndarray
    gate_up: np.ndarray   # [2*I, D]
    down: np.ndarray
    ffn_scale: np.ndarray


@dataclass
class _Upsample:
    """Transposed conv (k = s = ratio), then a ConvNeXt block: causal depthwise conv
    (dw_w [k, C], dw_ctx = k - 1 rows of state), LayerNorm, pw1 -> GELU -> pw2 ([in, out]), gamma."""
    tconv: "_TransConv"
    dw_w: np.ndarray
    dw_b: np.ndarray
    dw_ctx: int
    norm_w: np.ndarray
    norm_b: np.ndarray
    pw1: np.ndarray
    pw1_b: np.ndarray
    pw2: np.ndarray
    pw2_b: np.ndarray
    gamma: np.ndarray


@dataclass
class _ResUnit:
    """Snake1 -> dilated k7 conv1 -> Snake2 -> 1x1 conv2, added to the input (act = (exp(alpha), 1/(exp(beta)+eps)))."""
    act1: tuple
    conv1: "_Conv"
    act2: tuple
    conv2: "_Conv"


@dataclass
class _Block:
    """Wave-decoder block: Snake -> transposed conv (stride = rate) -> residual units."""
    snake: tuple
    tconv: "_TransConv"
    units: list


class CodecDecoder:
    """Weights of the decoder, laid out for the time-major kernels. Built by Codec.load."""

    def __init__(self, cfg: CodecConfig, view: GGUFView, keep_f16: bool = False, precision="f32"):
        self.cfg = cfg
        get = self._getter(view, keep_f16)
        # per layer group: None (float32 as today) or a packer to a reduced-precision kernel
        red = plan_precision(precision, cfg)
        few = self.few_row_groups(cfg)

        def mat(name, group):
            """A matrix (stored shape) and its packer. The few-row groups' F16 weights stay float16
            where float32 is asked for or auto chooses: the panel kernel widens them in registers
            (the float32 products, bit for bit, from half the bytes; at a few rows per frame it
            runs at memory speed, where the reduced-precision kernels read 4 bytes a weight)."""
            r = red(group)
            if group in few and name in view and view[name].dtype == "F16" and (r is None or precision == "auto"):
                return get(name, True, True), None
            return get(name, True), r

        # RVQ (spec/codec.md 3.2): z = W_first . sum(first group's rows) + W_rest . sum(rest's),
        # the codebooks read in place from the file's memory map (F32 there: only the rows that
        # codes pick are ever paged in; folding output_proj into 16 [codebook_size, codebook_dim]
        # float32 tables cost 64 MB resident for a ~0.3 MMAC product per frame)
        nsem = cfg.num_semantic_quantizers
        # per group: ([codebook [codebook_size, dim_internal] per quantizer],
        #             output_proj [codebook_dim, dim_internal])
        self.rvq = []
        for g, n in (("vq_first", nsem), ("vq_rest", cfg.num_quantizers - nsem)):
            if n == 0:
                continue
            pw = get(f"tok_dec.{g}.output_proj.weight")
            pw = pw.reshape(pw.shape[0], pw.shape[1])
            cbs = []
            for i in range(n):
                cb = get(f"tok_dec.{g}.{i}.codebook")
                if cb.shape != (cfg.codebook_size, pw.shape[1]):
                    raise EdgeTTSError(f"codec: codebook {g}.{i} is {cb.shape}, expected "
                                       f"[{cfg.codebook_size}, {pw.shape[1]}] (codebook_size from the config)")
                cbs.append(RowTable(cb))
            self.rvq.append((cbs, np.ascontiguousarray(pw)))
        cdim = self.rvq[0][1].shape[0]
        if any(pw.shape[0] != cdim for _, pw in self.rvq):
            raise EdgeTTSError("codec: the RVQ output projections differ in width")
        self.codebook_dim = cdim

        self.pre_conv = _Conv(get("tok_dec.pre_conv.weight", True), red("pre_conv"),
                              bias=get("tok_dec.pre_conv.bias"))

        # transformer
        t = "tok_dec.pre_tfm."
        # transformer Linears stay as stored ([out, in], in place for F32 and F16): few rows per
        # call, the numba few-row kernel (Rows.lin) beats BLAS there (no weight packing), and
        # reads float16 weights as they are (half the bytes of the widened copy, the same sums)
        tr = red("transformer")
        self.in_w = _lin(get(t + "input_proj.weight", True, True), tr)
        self.in_b = get(t + "input_proj.bias")
        self.layers = []
        for i in range(cfg.num_hidden_layers):
            b = f"{t}blk.{i}."
            wq, wk, wv = (get(b + f"attn_{x}.weight", True, True) for x in "qkv")
            wq_, wk_ = wq.shape, wk.shape
            if wq_[0] != cfg.num_attention_heads * cfg.head_dim or \
                    wk_[0] != cfg.num_key_value_heads * cfg.head_dim or wv.shape != wk_ or wq_[1] != wk_[1]:
                raise EdgeTTSError(f"codec: attention weights q {wq_} / k {wk_} / v {wv.shape} do not match "
                                   f"heads {cfg.num_attention_heads}/{cfg.num_key_value_heads} x {cfg.head_dim}")
            wg, wu = get(b + "ffn_gate.weight", True, True), get(b + "ffn_up.weight", True, True)
            if wg.shape != wu.shape:
                raise EdgeTTSError(f"codec: ffn_gate {wg.shape} and ffn_up {wu.shape} differ")
            self.layers.append(_TfmLayer(
                attn_norm=get(b + "attn_norm.weight"),
                qkv=_lin(_stack(wq, wk, wv), tr), o=_lin(get(b + "attn_output.weight", True, True), tr),
                attn_scale=get(b + "attn_scale"),
                ffn_norm=get(b + "ffn_norm.weight"),
                gate_up=_lin(_stack(wg, wu), tr),
                down=_lin(get(b + "ffn_down.weight", True, True), tr),
                ffn_scale=get(b + "ffn_scale"),
            ))
        self.norm_w = get(t + "norm.weight")
        self.out_w = _lin(get(t + "output_proj.weight", True, True), tr)
        self.out_b = get(t + "output_proj.bias")
        # the transformer's push in one parallel region (kernels/codec_tfm.py) where its matrices
        # are as stored; packed (reduced-precision) ones keep CodecStream's per-op path
        self.tfm = codec_tfm.weights(self.in_w, self.in_b, self.layers, self.norm_w, self.out_w,
                                     self.out_b, cfg.rms_norm_eps, cfg.num_attention_heads,
                                     cfg.num_key_value_heads, cfg.head_dim, cfg.sliding_window)

        # upsampler: transposed conv (k = s = ratio) + ConvNeXt
        self.upsample = []
        for u, ratio in enumerate(cfg.upsampling_ratios):
            p = f"tok_dec.upsample.{u}."
            dw = get(p + "dwconv.weight")  # [C, 1, k]
            self.upsample.append(_Upsample(
                tconv=_TransConv(*mat(p + "conv.weight", f"upsample{u}.tconv"), bias=get(p + "conv.bias"),
                                 stride=ratio),
                dw_w=np.ascontiguousarray(dw[:, 0, :].T), dw_b=get(p + "dwconv.bias"),
                dw_ctx=dw.shape[2] - 1,
                norm_w=get(p + "norm.weight"), norm_b=get(p + "norm.bias"),
                pw1=_pw(*mat(p + "pwconv1.weight", f"upsample{u}.pwconv")),
                pw1_b=get(p + "pwconv1.bias"),
                pw2=_pw(*mat(p + "pwconv2.weight", f"upsample{u}.pwconv")),
                pw2_b=get(p + "pwconv2.bias"),
                gamma=get(p + "gamma"),
            ))

        # wave decoder
        self.dec0 = _Conv(*mat("tok_dec.dec.0.conv.weight", "decoder.0"), bias=get("tok_dec.dec.0.conv.bias"))
        self.blocks = []
        for bi, rate in enumerate(cfg.upsample_rates):
            p = f"tok_dec.dec.{bi + 1}."
            units = []
            j = 0
            while f"{p}res.{j}.conv1.weight" in view:
                r = f"{p}res.{j}."
                units.append(_ResUnit(
                    act1=_snake_params(get(r + "act1.alpha"), get(r + "act1.beta")),
                    conv1=_Conv(get(r + "conv1.weight", True), red(f"block{bi}.conv1"),
                                bias=get(r + "conv1.bias"), dilation=3 ** j),
                    act2=_snake_params(get(r + "act2.alpha"), get(r + "act2.beta")),
                    conv2=_Conv(get(r + "conv2.weight", True), red(f"block{bi}.conv2"),
                                bias=get(r + "conv2.bias")),
                ))
                j += 1
            self.blocks.append(_Block(
                snake=_snake_params(get(p + "snake.alpha"), get(p + "snake.beta")),
                tconv=_TransConv(*mat(p + "conv_t.weight", f"block{bi}.tconv"), bias=get(p + "conv_t.bias"),
                                 stride=rate),
                units=units,
            ))
        self._few_rows(few)
        nb = len(cfg.upsample_rates)
        self.final_snake = _snake_params(get(f"tok_dec.dec.{nb + 1}.snake.alpha"),
                                         get(f"tok_dec.dec.{nb + 1}.snake.beta"))
        self.final_conv = _Conv(get(f"tok_dec.dec.{nb + 2}.conv.weight", True), red("final"),
                                bias=get(f"tok_dec.dec.{nb + 2}.conv.bias"))
        self._check()

    # Products whose input has at most this many rows per code frame (the upsampler, decoder.0,
    # the first block's transposed conv: <= 64 rows per 16-frame step) run on the panel kernel
    # (kernels/gemm_rows.py), which reads each weight once from panels packed here: 2-2.7x
    # sgemm's speed at 4 rows, 1.2-1.7x at 16, equal at 64. Every row rounds alike whatever the
    # push size.
    FEW_ROWS_PER_FRAME = 4

    @classmethod
    def few_row_groups(cls, cfg) -> set:
        """The precision groups (codec_precision) of those products."""
        few, r = set(), 1
        for u, ratio in enumerate(cfg.upsampling_ratios):
            if r <= cls.FEW_ROWS_PER_FRAME:
                few.add(f"upsample{u}.tconv")
            r *= ratio
            if r <= cls.FEW_ROWS_PER_FRAME:
                few.add(f"upsample{u}.pwconv")
        if r <= cls.FEW_ROWS_PER_FRAME:
            few.add("decoder.0")
        for bi, rate in enumerate(cfg.upsample_rates):
            if r <= cls.FEW_ROWS_PER_FRAME:
                few.add(f"block{bi}.tconv")
            r *= rate
        return few

    def _few_rows(self, few: set):
        """Put the few-row groups' float weights on panels (few: few_row_groups)."""
        def panels(w):
            if not Panels.fits(w):
                return w
            p = Panels(w)
            release_pages(w)  # a weight read in place from the file: the panels are its copy now
            return p
        for ui, u in enumerate(self.upsample):
            if f"upsample{ui}.tconv" in few:
                u.tconv.w = panels(u.tconv.w)
            if f"upsample{ui}.pwconv" in few:
                u.pw1, u.pw2 = panels(u.pw1), panels(u.pw2)
        if "decoder.0" in few:
            self.dec0.w = panels(self.dec0.w)
        for bi, blk in enumerate(self.blocks):
            if f"block{bi}.tconv" in few:
                blk.tconv.w = panels(blk.tconv.w)

    @staticmethod
    def _getter(view, keep_f16=False):
        def get(name, big=False, f16=False):
            """float32 array in the stored (PyTorch) shape: F32 tensors are the memory-mapped
            data itself (no copy), other types are widened/dequantized. Big (matrix) weights
            stored as F16 stay float16 (memory-mapped) where f16 says their consumer reads
            float16 as it is (the transformer's few-row kernel), and with keep_f16 everywhere
            (widened per call there)."""
            if name not in view:
                raise EdgeTTSError(f"codec weights: tensor {name!r} missing")
            t = view[name]
            if t.dtype == "F32":
                return np.asarray(t.data, np.float32).reshape(t.shape)
            if t.dtype == "F16":
                h = np.asarray(t.data, np.float16).reshape(t.shape)
                if big and (keep_f16 or f16):
                    return h
                w = as_f32(h)
            else:
                w = np.ascontiguousarray(t.numpy(), np.float32)
            release_pages(np.asarray(t.data))  # the widened copy is the resident one now
            return w
        return get

    def _check(self):
        cfg = self.cfg
        nq = sum(len(cbs) for cbs, _ in self.rvq)
        if nq != cfg.num_quantizers:
            raise EdgeTTSError(f"codec: {nq} codebooks, config says {cfg.num_quantizers}")
        if self.pre_conv.cin != self.codebook_dim or self.pre_conv.cout != cfg.latent_dim:
            raise EdgeTTSError(f"codec: pre_conv is {self.pre_conv.cin}->{self.pre_conv.cout}, "
                               f"expected {self.codebook_dim}->{cfg.latent_dim}")
        if _out_in(self.in_w) != (cfg.hidden_size, cfg.latent_dim):
            raise EdgeTTSError(f"codec: transformer input_proj {self.in_w.shape} does not match "
                               f"hidden_size {cfg.hidden_size} / latent_dim {cfg.latent_dim}")
        if self.dec0.cout != cfg.decoder_dim:
            raise EdgeTTSError(f"codec: decoder.0 has {self.dec0.cout} channels, decoder_dim is {cfg.decoder_dim}")

    @property
    def weight_bytes(self) -> int:
        """Bytes of every weight array the decoder holds (packed or float; mmap views included)."""
        seen, tot = set(), 0

        def add(v):
            nonlocal tot
            if isinstance(v, PackedGemm):
                tot += v.nbytes
            elif isinstance(v, np.ndarray) and id(v) not in seen:
                seen.add(id(v))
                tot += v.nbytes
            elif isinstance(v, (list, tuple)):
                for x in v:
                    add(x)
            elif hasattr(v, "__dict__") and not isinstance(v, (CodecConfig, type)):
                for x in vars(v).values():
                    add(x)
        for k, v in vars(self).items():
            if k not in ("cfg", "tfm"):  # tfm: views of the arrays above
                add(v)
        return tot


# ------------------------------------------------------------------------------------ stream
class CodecStream:
    """Incremental decoder: push(codes [n, groups]) -> float32 [n * samples_per_frame]."""

    def __init__(self, codec: "Codec", max_chunk: int = 0):
        self.codec = codec
        self.dec = codec.decoder
        self.rows = codec.rows
        self.max_chunk = max_chunk or codec.chunk_frames
        self.profile: dict | None = None  # set to {} to collect seconds per stage
        self.reset()

    def reset(self) -> None:
        d, cfg = self.dec, self.dec.cfg
        self.pos = 0
        self.pre_st = d.pre_conv.state()
        # the transformer's keys / values: position p at row p % R of a ring holding the
        # sliding window's sliding_window - 1 past frames and a push's new ones
        R = max(cfg.sliding_window - 1, 0) + self.max_chunk
        shape = (len(d.layers), R, cfg.num_key_value_heads, cfg.head_dim)
        self.kring = np.zeros(shape, np.float32)
        self.vring = np.zeros(shape, np.float32)
        self.tfm_scratch: dict = {}  # n4 -> codec_tfm.TfmScratch
        self.up_st = [(u.tconv.state(), np.zeros((u.dw_ctx, cfg.latent_dim), np.float32))
                      for u in d.upsample]
        self.dec0_st = d.dec0.state()
        self.block_st = [(b.tconv.state(), [u.conv1.state() for u in b.units]) for b in d.blocks]
        self.final_st = d.final_conv.state()

    def push(self, codes) -> np.ndarray:
        codes = self.codec.check_codes(codes)
        n = codes.shape[0]
        spf = self.codec.samples_per_frame
        out = np.empty(n * spf, np.float32)
        prev = kc.blas_threads(1)
        try:
            for a in range(0, n, self.max_chunk):
                b = min(n, a + self.max_chunk)
                out[a * spf: b * spf] = self._step(codes[a:b])
        finally:
            kc.blas_threads(prev)
        return out

    # -- one chunk through every stage
    def _step(self, codes: np.ndarray) -> np.ndarray:
        d = self.dec
        tick = self._tick
        t0 = tick("start", 0.0)
        x = self._rvq(codes)
        x = self._pre_conv(x)
        t0 = tick("rvq+pre_conv", t0)
        x = self._transformer(x)
        t0 = tick("transformer", t0)
        for u, st in zip(d.upsample, self.up_st):
            x = self._upsample(u, st, x)
        t0 = tick("upsample", t0)
        x = d.dec0.run(self._fill(d.dec0, self.dec0_st, x), self.dec0_st, self.rows)
        t0 = tick("decoder.0", t0)
        bias = d.dec0.bias
        late, rows_in = self.late_blocks(d.cfg)
        for bi in range(late):
            x = self._block(d.blocks[bi], self.block_st[bi], x, bias)
            bias = _ZERO(x.shape[1])
            t0 = tick(f"block{bi}", t0)
        # The late blocks and the final conv, where rows and buffers grow with the upsampling,
        # in pieces of PIECE_FRAMES frames: a 16-frame step's scratch there is a quarter of its
        # size. Causal convs carry their state, so the pieces give the one-piece result (to
        # float32 summation order; bit for bit on the row-independent kernels).
        step = self.PIECE_FRAMES * rows_in
        out = []
        for r0 in range(0, x.shape[0], step):
            y, b = x[r0: r0 + step], bias
            for bi in range(late, len(d.blocks)):
                y = self._block(d.blocks[bi], self.block_st[bi], y, b)
                b = _ZERO(y.shape[1])
                t0 = tick(f"block{bi}", t0)
            out.append(self._final(y, b))
            t0 = tick("final", t0)
        return out[0] if len(out) == 1 else np.concatenate(out)

    PIECE_FRAMES = 4             # frames per piece of the late blocks
    LATE_ROWS_PER_FRAME = 128    # a block is late from this many input rows per code frame

    @classmethod
    def late_blocks(cls, cfg) -> tuple[int, int]:
        """(index of the first late block, its input rows per frame; len(blocks) and the final
        conv's when none is late). Earlier blocks keep the whole step: their weights are the
        big ones, read once per step."""
        r = int(np.prod(cfg.upsampling_ratios))
        for bi, rate in enumerate(cfg.upsample_rates):
            if r >= cls.LATE_ROWS_PER_FRAME:
                return bi, r
            r *= rate
        return len(cfg.upsample_rates), r

    def _final(self, x, bias):
        """Snake, the final conv, clip to [-1, 1] -> float32 samples."""
        d = self.dec
        fc = d.final_conv
        buf = fc.padded(self.final_st, x.shape[0])
        a, ib = d.final_snake
        self.rows(ks.snake_beta, x, bias, a, ib, buf[fc.ctx:], rows=(3,))
        y = fc.run(buf, self.final_st, self.rows)
        y += fc.bias
        np.clip(y, -1.0, 1.0, out=y)
        return y.reshape(-1) if y.shape[1] == 1 else y[:, 0]

    def _tick(self, stage, t0):
        """Per-stage wall time into self.profile (a dict) when profiling is on."""
        if self.profile is None:
            return 0.0
        t = time.perf_counter()
        if stage != "start":
            self.profile[stage] = self.profile.get(stage, 0.0) + (t - t0)
        return t

    @staticmethod
    def _fill(conv, st, x):
        buf = conv.padded(st, x.shape[0])
        buf[conv.ctx:] = x
        return buf

    def _rvq(self, codes):
        """codes [n, num_quantizers] -> z [n, codebook_dim]: per group, the sum of its codebooks'
        rows, projected (the few-row kernel: a row's result does not depend on n)."""
        z = None
        q = 0
        for cbs, pw in self.dec.rvq:
            s = cbs[0].take(codes[:, q])
            for i in range(1, len(cbs)):
                s += cbs[i].take(codes[:, q + i])
            q += len(cbs)
            y = self.rows.lin(s, pw)
            if z is None:
                z = y
            else:
                z += y
        return z

    def _pre_conv(self, x):
        c = self.dec.pre_conv
        y = c.run(self._fill(c, self.pre_st, x), self.pre_st, self.rows)
        y += c.bias
        return y

    def _transformer(self, x):
        d, cfg = self.dec, self.dec.cfg
        n = x.shape[0]
        cos, sin = rope_cos_sin(np.arange(self.pos, self.pos + n), cfg.head_dim, cfg.rope_theta)
        if d.tfm is not None and self.fused:
            y = self._transformer_fused(x, cos, sin)
        else:
            y = self._transformer_per_op(x, cos, sin)
        self.pos += n
        return y

    fused = True  # the one-region transformer push where the decoder has one (tests turn it off)

    def _transformer_fused(self, x, cos, sin):
        n = x.shape[0]
        n4 = -(-n // 4) * 4
        S = self.tfm_scratch.get(n4)
        if S is None:
            S = self.tfm_scratch[n4] = codec_tfm.scratch(self.dec.tfm, n4)
        S.x[:n] = x
        codec_tfm.push(self.rows.threads, self.dec.tfm, S, self.kring, self.vring, cos, sin, self.pos, n)
        return S.y[:n].copy()

    def _transformer_per_op(self, x, cos, sin):
        d, cfg = self.dec, self.dec.cfg
        n = x.shape[0]
        H, Hkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        eps = np.float32(cfg.rms_norm_eps)
        lin = self.rows.lin
        h = lin(x, d.in_w)
        h += d.in_b
        a = np.empty_like(h)
        att = np.empty((n, H, hd), np.float32)
        scores = np.empty(max(cfg.sliding_window, 1), np.float32)
        scale = np.float32(hd ** -0.5)
        for li, L in enumerate(d.layers):
            ka.rms_norm(h, L.attn_norm, eps, a)
            qkv = lin(a, L.qkv)
            q = qkv[:, :H * hd].reshape(n, H, hd)
            k = qkv[:, H * hd:(H + Hkv) * hd].reshape(n, Hkv, hd)
            v = qkv[:, (H + Hkv) * hd:].reshape(n, Hkv, hd)
            ka.rope_rotate(q, cos, sin)
            ka.rope_rotate(k, cos, sin)
            ka.ring_store(self.kring[li], self.vring[li], k, v, self.pos, n, 0, Hkv)
            ka.ring_attention(q, self.kring[li], self.vring[li], self.pos, n, cfg.sliding_window,
                              scale, att, 0, H, scores)
            o = lin(att.reshape(n, H * hd), L.o)
            ks.scale_residual(h, o, _ZERO(h.shape[1]), L.attn_scale)
            ka.rms_norm(h, L.ffn_norm, eps, a)
            gu = lin(a, L.gate_up)
            g = gu[:, :gu.shape[1] // 2]
            ka.silu_mul(g, gu[:, gu.shape[1] // 2:])
            m = lin(g, L.down)
            ks.scale_residual(h, m, _ZERO(h.shape[1]), L.ffn_scale)
        ka.rms_norm(h, d.norm_w, eps, a)
        y = lin(a, d.out_w)
        y += d.out_b
        return y

    def _upsample(self, u, st, x):
        carry, dw_st = st
        y = u.tconv.run(x, carry, self.rows)
        T, C = y.shape
        ctx = u.dw_ctx
        buf = np.empty((ctx + T, C), np.float32)
        buf[:ctx] = dw_st
        buf[ctx:] = y
        dw_st[:] = buf[T:]
        h = np.empty((T, C), np.float32)
        kc.dwconv_causal(buf, u.dw_w, u.dw_b, h)
        self.rows(ks.layer_norm, h, u.norm_w, u.norm_b, CONVNEXT_EPS, h, rows=(3,))
        p = self.rows.gemm(h, u.pw1)
        self.rows(ks.gelu_erf, p, u.pw1_b)
        q = self.rows.gemm(p, u.pw2)
        self.rows(ks.scale_residual, y, q, u.pw2_b, u.gamma, rows=(0,))
        return y

    def _block(self, blk, st, x, bias):
        carry, unit_st = st
        a, ib = blk.snake
        s = np.empty_like(x)
        self.rows(ks.snake_beta, x, bias, a, ib, s, rows=(3,))
        y = blk.tconv.run(s, carry, self.rows)
        T, C = y.shape
        zero = _ZERO(C)
        for u, ust in zip(blk.units, unit_st):
            c1, c2 = u.conv1, u.conv2
            a1, ib1 = u.act1
            a2, ib2 = u.act2
            ctx = c1.ctx
            buf = c1.padded(ust, T)
            # phase 1: Snake1 into the conv input, after the left context
            self.rows(ks.snake_beta, y, zero, a1, ib1, buf[ctx:], rows=(3,))
            ust[:] = buf[T:]
            # phase 2, each thread on its own rows: im2col, dilated k7 conv (GEMM), Snake2,
            # 1x1 conv (GEMM), residual add. Rows are independent once phase 1 is done.
            w1, w2 = _f32_or_packed(c1.w), _f32_or_packed(c2.w)
            if self.rows.pool is None or T * C * C * c1.k < self.rows.MIN_GEMM:
                self._unit_rows(u, w1, w2, buf, y, 0, T)
            elif T < self.COL_SPLIT_ROWS * self.rows.threads:
                self._unit_cols(u, buf, y, ust)
            else:
                self.rows.par(lambda r0, r1: self._unit_rows(u, w1, w2, buf, y, r0, r1), T)
        return y

    # Below this many rows per thread a residual unit splits its products' output columns over
    # the threads instead of its rows: split by rows, every thread reads the whole weight (at one
    # frame, block 0's 57 MB of bf16x3 pairs twice over) for a few rows each.
    COL_SPLIT_ROWS = 128

    def _unit_cols(self, u, buf, y, ust):
        """A residual unit over all of buf's rows, each product's columns split over the threads
        (the same per-row sums as _unit_rows: the kernels' results do not depend on the split)."""
        c1, c2 = u.conv1, u.conv2
        a2, ib2 = u.act2
        h = c1.run(buf, ust, self.rows)
        self.rows(ks.snake_beta, h, c1.bias, a2, ib2, h, rows=(3,))
        z = c2.run(h, c2.state(), self.rows)
        self.rows(ks.residual_add, y, z, c2.bias, rows=(0,))

    # Narrow units (weights <= SMALL_W floats, block 3 here) run in im2col tiles of TILE_FLOATS that
    # stay in L2 between their copy and their GEMM (-10 % CPU there); wide ones in one piece,
    # since every GEMM call re-packs the weights (tiling block 0 costs +40 %).
    TILE_FLOATS = 1 << 18
    SMALL_W = 1 << 17
    WIDE_TILE_FLOATS = 1 << 21  # wide units: im2col tiles of at most 8 MB (memory; 1 weight pack each)

    @classmethod
    def _unit_rows(cls, u, w1, w2, buf, y, r0, r1):
        """Rows r0..r1 of a residual unit, in tiles: im2col, k7 conv, Snake2, 1x1 conv, += y."""
        c1, c2 = u.conv1, u.conv2
        a2, ib2 = u.act2
        K = c1.k * c1.cin
        tile = max(16, (cls.TILE_FLOATS if K * c1.cout <= cls.SMALL_W else cls.WIDE_TILE_FLOATS) // K)
        cols = None
        if isinstance(w1, PackedGemm):  # no im2col: tiles of TILE_FLOATS input floats (L2-sized)
            tile = max(16, cls.TILE_FLOATS // c1.cin)
        else:
            cols = np.empty((min(tile, max(r1 - r0, 0)), K), np.float32)
        for t0 in range(r0, r1, tile):
            t1 = min(r1, t0 + tile)
            cc = None if cols is None else cols[: t1 - t0]
            if isinstance(w1, PackedGemm):
                h = w1.conv(buf[t0: t1 + c1.ctx], c1.d)
            else:
                kc.im2col(cc, buf[t0: t1 + c1.ctx], c1.k, c1.d)
                h = kc.matmul(cc, w1)
            ks.snake_beta(h, c1.bias, a2, ib2, h)
            z = w2.matmul(h) if isinstance(w2, PackedGemm) else kc.matmul(h, w2)
            ks.residual_add(y[t0:t1], z, c2.bias)


def _f32_or_packed(w):
    return w if isinstance(w, PackedGemm) else as_f32(w)


def _packed(src, w, reduce, taps=1):
    """w (src laid out for the float32 kernels), or w packed by reduce; then the pages of a
    file-mapped src are released when the result is a copy (the copy is the resident one)."""
    p = w if reduce is None else reduce(w, taps)
    if not isinstance(p, np.ndarray) or not np.may_share_memory(p, src):
        release_pages(np.asarray(src))
    return p


def _lin(w, reduce):
    """A transformer Linear [out, in]: as stored (Rows.lin), or packed from its transpose."""
    if reduce is None:
        return w
    p = _packed(w, np.ascontiguousarray(w.T), reduce)
    return p if isinstance(p, PackedGemm) else w  # not packed (too few outputs): as stored


def _stack(*ws):
    """Linears [out_i, in] sharing an input -> one [sum(out_i), in] (one call; the file-mapped
    sources' pages released)."""
    w = np.concatenate(ws, axis=0)
    for x in ws:
        release_pages(x)
    return w


def _out_in(w):
    return (w.N, w.K) if isinstance(w, PackedGemm) else w.shape


def _pw(w, reduce):
    """A ConvNeXt Linear [out, in] -> [in, out] (Rows.gemm), packed or float32."""
    return _packed(w, _linear_t(w), reduce)


def _linear_t(*ws):
    """Linear weights [out_i, in] -> one contiguous [in, sum(out_i)] (x @ W^T as a fast GEMM;
    several share an input: q|k|v, gate|up)."""
    n_in = ws[0].shape[1]
    out = np.empty((n_in, sum(w.shape[0] for w in ws)), ws[0].dtype)
    o = 0
    for w in ws:
        out[:, o: o + w.shape[0]] = w.T
        o += w.shape[0]
    return out


_ZEROS: dict = {}


def _ZERO(n):
    z = _ZEROS.get(n)
    if z is None:
        z = _ZEROS[n] = np.zeros(n, np.float32)
    return z


# ------------------------------------------------------------------------------------ codec
class Codec:
    """The codec decoder. Codec.load(checkpoint); decode(codes) or stream().push(codes)."""

    chunk_frames = 16  # frames per internal step of decode(): measured best 12-16 (CPU -3% vs 8)

    def __init__(self, decoder: CodecDecoder, threads: int | None = None):
        self.decoder = decoder
        self.rows = Rows(default_threads() if threads is None else threads)
        cfg = decoder.cfg
        self.config = cfg
        self.sample_rate = cfg.sample_rate
        self.samples_per_frame = cfg.samples_per_frame
        self.num_quantizers = cfg.num_quantizers
        self.codebook_size = cfg.codebook_size

    @classmethod
    def load(cls, checkpoint, threads: int | None = None, keep_f16: bool = False,
             precision: str = "auto") -> "Codec":
        """threads: worker count (default 2 / EDGETTS_CODEC_THREADS). keep_f16: keep matrices
        stored as F16 in half precision (memory-mapped) and widen them at each use: the same
        output, ~half the resident weight memory, a few % more CPU. precision: "f32" (exact
        float32 products), "auto" (reduced-precision kernels where this CPU has them and the
        measured error allows, models/codec_precision.py), or "int8" / "bf16" everywhere they
        apply (measurements)."""
        if getattr(checkpoint, "codec", None) is None:
            raise EdgeTTSError(f"{getattr(checkpoint, 'root', 'checkpoint')}: no codec (speech tokenizer) "
                               "weights found; expected speech_tokenizer/ or a qwen3-tts-tokenizer GGUF")
        cfg = CodecConfig.from_checkpoint(checkpoint)
        return cls(CodecDecoder(cfg, GGUFView(checkpoint.codec), keep_f16, precision), threads)

    def check_codes(self, codes) -> np.ndarray:
        c = np.asarray(codes)
        if c.ndim != 2 or c.shape[1] != self.num_quantizers:
            raise EdgeTTSError(f"codec: codes must be [frames, {self.num_quantizers}], got shape {c.shape}")
        if c.size and not np.issubdtype(c.dtype, np.integer):
            raise EdgeTTSError(f"codec: codes must be integers, got {c.dtype}")
        if c.size and (c.min() < 0 or c.max() >= self.codebook_size):
            raise EdgeTTSError(f"codec: code values must be in 0..{self.codebook_size - 1}, "
                               f"got {int(c.min())}..{int(c.max())}")
        return c.astype(np.int64, copy=False)

    def decode(self, codes) -> np.ndarray:
        """codes int [frames, groups] -> float32 [frames * samples_per_frame] in [-1, 1]."""
        return self.stream().push(codes)

    def stream(self) -> CodecStream:
        return CodecStream(self)
