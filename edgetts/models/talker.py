"""The talker: a Qwen3 decoder stack over summed text+codec embeddings (docs/model.md §3).

`Stack` is the pre-norm decoder (q/k RMSNorm, GQA, NeoX RoPE, SwiGLU) shared with the code
predictor. `Talker` adds the text path (embedding + projection MLP), the codec embedding and
the codec head. Every weight is read through GGUFView by its GGUF name, as a Matrix (any
stored type). Single-row decode steps run on preallocated buffers and allocate no arrays.
"""
from __future__ import annotations

import numba
import numpy as np

from ..kernels.activations_lm import add_bias, bias_silu, silu_mul
from ..kernels import decoder
from ..kernels.attention import qkv_attention
from ..kernels.norm import add_rmsnorm, rmsnorm
from ..kernels.rope import rope_tables
from .config import StackConfig, TalkerConfig

from ..kernels.matmul import BLAS_MIN_ROWS, ROWS, Matrix
from ..kernels.quant import QK

_NO_BYTES = np.zeros(0, np.uint8)
_NO_BYTES.flags.writeable = False
_NO_F32 = np.zeros(0, np.float32)


def f32(view, name: str) -> np.ndarray:
    return np.ascontiguousarray(view[name].numpy(), dtype=np.float32)


def gather(m: Matrix, ids, out: np.ndarray) -> np.ndarray:
    """out[i] = row ids[i] of m as float32 (embedding lookup)."""
    for i in range(out.shape[0]):
        m.rows_f32(int(ids[i]), out[i])
    return out


def linear(m: Matrix, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out[n, rows] = x[n, cols] @ W^T; one row goes through the matrix-vector kernel."""
    if x.shape[0] == 1:
        m.matvec(x[0], out[0])
    else:
        m.matmul(x, out)
    return out


class Layer:
    def __init__(self, view, prefix: str):
        g = lambda s: view[f"{prefix}.{s}.weight"]  # noqa: E731
        self.attn_norm = f32(view, f"{prefix}.attn_norm.weight")
        self.ffn_norm = f32(view, f"{prefix}.ffn_norm.weight")
        self.q_norm = f32(view, f"{prefix}.attn_q_norm.weight")
        self.k_norm = f32(view, f"{prefix}.attn_k_norm.weight")
        self.qkv = Matrix.concat_rows([Matrix.from_tensor(g("attn_q")), Matrix.from_tensor(g("attn_k")),
                                       Matrix.from_tensor(g("attn_v"))])
        self.o = Matrix.from_tensor(g("attn_output"))
        self.gate_up = Matrix.concat_rows([Matrix.from_tensor(g("ffn_gate")), Matrix.from_tensor(g("ffn_up"))])
        self.down = Matrix.from_tensor(g("ffn_down"))

    def matrices(self):
        return [self.qkv, self.o, self.gate_up, self.down]


class Buffers:
    """Activations of n rows through one stack."""

    def __init__(self, cfg: StackConfig, n: int):
        qkv = (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim
        self.n = n
        self.h = np.zeros((n, cfg.hidden), np.float32)      # normed input of a sublayer
        self.r = np.zeros((n, cfg.hidden), np.float32)      # sublayer output (residual branch)
        self.qkv = np.zeros((n, qkv), np.float32)
        self.att = np.zeros((n, cfg.n_heads * cfg.head_dim), np.float32)
        self.gu = np.zeros((n, 2 * cfg.ffn), np.float32)
        self.act = np.zeros((n, cfg.ffn), np.float32)
        self.y = np.zeros((n, cfg.hidden), np.float32)      # final normed output


class Stack:
    """Pre-norm decoder layers + final RMSNorm. forward() updates x (the residual stream) in place."""

    def __init__(self, view, prefix: str, cfg: StackConfig, n_pos: int):
        self.cfg = cfg
        self.layers = [Layer(view, f"{prefix}.blk.{i}") for i in range(cfg.n_layers)]
        self.out_norm = f32(view, f"{prefix}.output_norm.weight")
        self.eps = np.float32(cfg.eps)
        self.set_positions(n_pos)
        self._fused = self._fused_setup()

    @staticmethod
    def _x8_ok(m: Matrix) -> bool:
        return decoder.SUPPORTED and m.dtype in decoder.KINDS and m.rows % ROWS == 0 and m.rows >= ROWS

    def _fused_setup(self):
        """The fused path's weights (decoder.StackWeights) and quantized-activation scratch when
        every layer matrix is quantized in the x86 x8 layout; None keeps the per-op path."""
        mats = self.matrices()
        if not mats or not all(self._x8_ok(m) for m in mats):
            return None
        c = self.cfg
        if c.head_dim % ROWS:   # a kv head's q, k and v rows are whole 8-row groups (decoder._layers)
            return None
        K = max(c.hidden, c.n_heads * c.head_dim)
        self._W = decoder.StackWeights(
            P=decoder.array_list([m.prepare()._x8 for m in mats]),
            kinds=np.array([decoder.KINDS[m.dtype] for m in mats], np.int64),
            rows=np.array([m.rows for m in mats], np.int64),
            attn_norm=np.stack([L.attn_norm for L in self.layers]),
            ffn_norm=np.stack([L.ffn_norm for L in self.layers]),
            q_norm=np.stack([L.q_norm for L in self.layers]),
            k_norm=np.stack([L.k_norm for L in self.layers]),
            out_norm=self.out_norm, eps=self.eps, n_heads=c.n_heads, n_kv_heads=c.n_kv_heads,
            cos=self.cos, sin=self.sin)
        return dict(xq=np.zeros(K, np.int8), xd=np.zeros(K // QK, np.float32), xs=np.zeros(K // QK, np.int32),
                    xq2=np.zeros(c.ffn, np.int8), xd2=np.zeros(c.ffn // QK, np.float32),
                    xs2=np.zeros(c.ffn // QK, np.int32), scores=None, ctr=decoder.counters(len(self.layers)))

    @property
    def fused(self) -> bool:
        """step() runs as one parallel region (kernels/decoder.py)."""
        return self._fused is not None

    def scores(self, cache) -> np.ndarray:
        """The fused path's attention work rows [n_kv_heads, cache capacity]."""
        f = self._fused
        if f["scores"] is None or f["scores"].shape[1] != cache.k.shape[2]:
            f["scores"] = np.zeros((self.cfg.n_kv_heads, cache.k.shape[2]), np.float32)
        return f["scores"]

    def run_state(self, buf: Buffers, cache, ctr: np.ndarray | None = None) -> "decoder.RunState":
        """decoder.RunState of one row: buf's first row and this stack's scratch (ctr: the
        phase counters, default the single-step ones)."""
        f = self._fused
        return decoder.RunState(h=buf.h, qkv=buf.qkv[0], att=buf.att[0], r=buf.r, gu=buf.gu, act=buf.act,
                                y=buf.y, xq=f["xq"], xd=f["xd"], xs=f["xs"], xq2=f["xq2"], xd2=f["xd2"],
                                xs2=f["xs2"], scores=self.scores(cache), ctr=f["ctr"] if ctr is None else ctr)

    def weights(self) -> "decoder.StackWeights":
        """decoder.StackWeights with RoPE tables for the current position range."""
        if self._W.cos is not self.cos:
            self._W = self._W._replace(cos=self.cos, sin=self.sin)
        return self._W

    def step(self, x: np.ndarray, pos: int, cache, buf: Buffers, head: Matrix | None = None,
             logits: np.ndarray | None = None) -> np.ndarray:
        """One row x [1, hidden] at position pos (consumed) -> y [hidden] (normed); with head,
        logits[rows] = head . y too. Same results as forward() (+ head.matvec); quantized x86
        stacks run it as one parallel region (kernels/decoder.py)."""
        if self._fused is None or x.shape[0] != 1:
            y = self.forward(x, pos, cache, buf)[0]
            if head is not None:
                head.matvec(y, logits)
            return y
        if pos + 1 > self.cos.shape[0]:
            self.set_positions(max(2 * self.cos.shape[0], pos + 1))
        fused_head = head is not None and self._x8_ok(head)
        decoder.decoder_step(
            numba.get_num_threads(), self.weights(), self.run_state(buf, cache), x, pos, cache.k, cache.v,
            head.prepare()._x8 if fused_head else _NO_BYTES,
            decoder.KINDS[head.dtype] if fused_head else 0, logits if fused_head else _NO_F32)
        cache.pos = pos + 1
        y = buf.y[0]
        if head is not None and not fused_head:
            head.matvec(y, logits)
        return y

    def set_positions(self, n_pos: int) -> None:
        self.cos, self.sin = rope_tables(self.cfg.rope_theta, self.cfg.head_dim, n_pos)

    fused_prefill = True  # several rows in one parallel region where step() has one (tests turn it off)

    def forward(self, x: np.ndarray, pos0: int, cache, buf: Buffers, trace: list | None = None,
                last: int = 0) -> np.ndarray:
        """x: [n, hidden] rows at positions pos0..pos0+n-1 (consumed). Returns buf.y (normed);
        last > 0: only its last `last` rows are wanted (the fused prefill skips the rest).
        Quantized x86 / aarch64 stacks run 2 .. BLAS_MIN_ROWS - 1 rows as one parallel region
        (kernels/decoder.py prefill_layers, the same results); a trace takes the per-op path."""
        n = x.shape[0]
        if pos0 + n > self.cos.shape[0]:
            self.set_positions(max(2 * self.cos.shape[0], pos0 + n))
        if self._fused is not None and trace is None and self.fused_prefill and 1 < n < BLAS_MIN_ROWS:
            S = decoder.prefill_state(buf, self.cfg.n_kv_heads, cache.k.shape[2], len(self.layers))
            decoder.prefill_layers(numba.get_num_threads(), self.weights(), S, x, pos0, cache.k, cache.v, last)
            cache.pos = pos0 + n
            return buf.y
        c = self.cfg
        eps = self.eps
        for i, L in enumerate(self.layers):
            if i == 0:
                rmsnorm(x, L.attn_norm, eps, buf.h)
            else:
                add_rmsnorm(x, buf.r, L.attn_norm, eps, buf.h)
                if trace is not None:
                    trace.append(x.copy())
            linear(L.qkv, buf.h, buf.qkv)
            qkv_attention(buf.qkv, c.n_heads, c.n_kv_heads, L.q_norm, L.k_norm, eps, self.cos, self.sin,
                          pos0, cache.k[i], cache.v[i], buf.att, cache.scores)
            linear(L.o, buf.att, buf.r)
            add_rmsnorm(x, buf.r, L.ffn_norm, eps, buf.h)
            linear(L.gate_up, buf.h, buf.gu)
            silu_mul(buf.gu, buf.act)
            linear(L.down, buf.act, buf.r)
        add_rmsnorm(x, buf.r, self.out_norm, eps, buf.y)
        cache.pos = pos0 + n
        return buf.y

    def matrices(self):
        return [m for L in self.layers for m in L.matrices()]


class Talker:
    def __init__(self, view, cfg: TalkerConfig, n_pos: int = 4096):
        self.cfg = cfg
        s = cfg.talker
        self.stack = Stack(view, "talker", s, n_pos)
        self.text_embd = Matrix.from_tensor(view["talker.text_embd.weight"])
        self.fc1 = Matrix.from_tensor(view["talker.text_proj.fc1.weight"])
        self.fc1_b = f32(view, "talker.text_proj.fc1.bias")
        self.fc2 = Matrix.from_tensor(view["talker.text_proj.fc2.weight"])
        self.fc2_b = f32(view, "talker.text_proj.fc2.bias")
        self.codec_embd = Matrix.from_tensor(view["talker.codec_embd.weight"])
        self.codec_head = Matrix.from_tensor(view["talker.codec_head.weight"])
        self.buf1 = Buffers(s, 1)
        self.logits = np.zeros((1, s.vocab), np.float32)

    # -- embeddings ------------------------------------------------------------------------
    def text_rows(self, ids) -> np.ndarray:
        """P(t) for each id: fc2(silu(fc1(text_embedding[t]) + b1)) + b2 -> [n, H] (new array)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        e = np.empty((ids.size, self.cfg.text_hidden), np.float32)
        gather(self.text_embd, ids, e)
        h = linear(self.fc1, e, np.empty((ids.size, self.fc1.rows), np.float32))
        bias_silu(h, self.fc1_b)
        out = linear(self.fc2, h, np.empty((ids.size, self.fc2.rows), np.float32))
        add_bias(out, self.fc2_b)
        return out

    def codec_rows(self, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        out = np.empty((ids.size, self.cfg.talker.hidden), np.float32)
        gather(self.codec_embd, ids, out)
        return out

    # -- forward ---------------------------------------------------------------------------
    def prefill(self, rows: np.ndarray, cache, trace: list | None = None):
        """Run prompt rows [L, H] from position cache.pos; returns (y_last [H], logits [V]) views."""
        x = np.array(rows, dtype=np.float32, copy=True)
        buf = Buffers(self.cfg.talker, x.shape[0])
        y = self.stack.forward(x, cache.pos, cache, buf, trace, last=1)
        if trace is not None:
            trace.append(y.copy())
        self.buf1.y[0] = y[-1]
        self.codec_head.matvec(self.buf1.y[0], self.logits[0])
        return self.buf1.y[0], self.logits[0]

    def all_logits(self, y: np.ndarray) -> np.ndarray:
        return linear(self.codec_head, y, np.empty((y.shape[0], self.codec_head.rows), np.float32))

    def step(self, row: np.ndarray, cache):
        """One decode row [1, H] (consumed in place) at position cache.pos -> (y [H], logits [V])."""
        y = self.stack.step(row, cache.pos, cache, self.buf1, self.codec_head, self.logits[0])
        return y, self.logits[0]

    def matrices(self):
        return self.stack.matrices() + [self.codec_head]
