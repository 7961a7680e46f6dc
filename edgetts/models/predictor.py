"""The code predictor (MTP / sub-talker): fills codebooks 1..G-1 of a frame (docs/model.md §5.3).

Per frame, from an empty cache: a 2-row prefill [h_prev, E(c0)] at positions 0, 1 -> c1 with
lm_head[0]; then G-2 single steps, input CE_{j-2}(c_{j-1}) at position j -> c_j with
lm_head[j-1]. The embeddings have talker width; `small_to_mtp_projection` (1.7B layout, with
bias) maps every input row to the predictor width, identity when absent.
"""
from __future__ import annotations

import numba
import numpy as np

from ..kernels import decoder
from ..kernels.activations_lm import add_bias
from ..kernels.sampling import argmax, sample
from ..kvcache import KVCache
from .config import TalkerConfig
from .talker import Buffers, Matrix, Stack, f32


class Predictor:
    def __init__(self, view, cfg: TalkerConfig):
        self.cfg = cfg
        c = cfg.predictor
        self.groups = cfg.num_code_groups
        self.stack = Stack(view, "code_pred", c, self.groups + 1)
        self.embd = [Matrix.from_tensor(view[f"code_pred.codec_embd.{j}.weight"]) for j in range(self.groups - 1)]
        self.heads = [Matrix.from_tensor(view[f"code_pred.lm_head.{j}.weight"]) for j in range(self.groups - 1)]
        if "code_pred.mtp_proj.weight" in view:
            self.proj = Matrix.from_tensor(view["code_pred.mtp_proj.weight"])
            self.proj_b = f32(view, "code_pred.mtp_proj.bias")
        else:
            self.proj = None
        H = cfg.talker.hidden
        self.cache = KVCache(c.n_layers, c.n_kv_heads, c.head_dim, self.groups)
        self.buf1, self.buf2 = Buffers(c, 1), Buffers(c, 2)
        self.in2 = np.zeros((2, H), np.float32)       # talker-width input rows
        self.in1 = np.zeros((1, H), np.float32)
        self.x2 = np.zeros((2, c.hidden), np.float32)  # predictor-width residual stream
        self.x1 = np.zeros((1, c.hidden), np.float32)
        self.logits = np.zeros(c.vocab, np.float32)
        self.work = np.zeros(c.vocab, np.float32)
        self._frame = self._frame_setup()

    def _frame_setup(self):
        """Inputs of kernels.decoder.predictor_frame (the whole frame in one parallel region):
        a fused stack, no input projection, quantized heads and GGML-row embedding tables."""
        st = self.stack
        if not st.fused or self.proj is not None or self.groups < 2:
            return None
        if not all(st._x8_ok(m) for m in self.heads):
            return None
        if not all(e.dtype in decoder.KINDS and e._x8.size == 0 for e in self.embd):
            return None
        tables = [e.row_table() for e in self.embd]  # rows read from the file where mapped
        return dict(heads=decoder.FrameHeads(
                        heads=decoder.array_list([m.prepare()._x8 for m in self.heads]),
                        head_kinds=np.array([decoder.KINDS[m.dtype] for m in self.heads], np.int64),
                        embd=decoder.array_list([e.data for e in self.embd]),
                        embd_kinds=np.array([decoder.KINDS[e.dtype] for e in self.embd], np.int64),
                        embd_fd=np.array([-1 if t.fd is None else t.fd for t in tables], np.int64),
                        embd_off=np.array([0 if t.fd is None else t.offset for t in tables], np.int64),
                        row=np.zeros(max(e.data.shape[1] for e in self.embd), np.uint8),
                        logits=self.logits, work=self.work),
                    tables=tables,  # their fds stay open as long as the kernel may use them
                    ctr=decoder.counters(len(st.layers), self.groups),
                    no_us=np.zeros(self.groups - 1), no_forced=np.zeros(0, np.int64),
                    no_logits=np.zeros((0, self.logits.shape[0]), np.float32))

    def _frame_fused(self, codes_out, greedy, temperature, top_k, top_p, rng, logits_out, forced) -> bool:
        ff = self._frame
        G1 = self.groups - 1
        if (ff is None or not self.stack.fused or codes_out.dtype != np.int64
                or not codes_out.flags.c_contiguous):
            return False
        if logits_out is not None and not (logits_out.dtype == np.float32 and logits_out.flags.c_contiguous
                                           and logits_out.shape == (G1, self.logits.shape[0])):
            return False
        st, cache = self.stack, self.cache
        us = ff["no_us"] if greedy else rng.random(G1)   # the draws frame() takes one by one
        forced = ff["no_forced"] if forced is None else np.ascontiguousarray(forced, np.int64)
        decoder.predictor_frame(
            numba.get_num_threads(), st.weights(), st.run_state(self.buf1, cache, ff["ctr"]), ff["heads"],
            self.x2, self.x1, cache.k, cache.v, us, bool(greedy), float(temperature), int(top_k), float(top_p),
            codes_out, ff["no_logits"] if logits_out is None else logits_out, forced)
        cache.pos = self.groups
        return True

    def _project(self, src: np.ndarray, dst: np.ndarray) -> None:
        if self.proj is None:
            dst[...] = src
        elif src.shape[0] == 1:
            self.proj.matvec(src[0], dst[0])
            add_bias(dst, self.proj_b)
        else:
            self.proj.matmul(src, dst)
            add_bias(dst, self.proj_b)

    def frame(self, h_prev: np.ndarray, e_c0: np.ndarray, codes_out: np.ndarray, greedy: bool,
              temperature: float, top_k: int, top_p: float, rng, logits_out=None,
              forced=None) -> np.ndarray:
        """codes_out[0..G-2] = c1..c_{G-1}. h_prev: talker y [H]; e_c0: E(c0) [H].
        logits_out [G-1, vocab] receives the raw logits; forced [G-1] replaces the sampled codes
        (teacher forcing, for comparisons on identical inputs)."""
        cache = self.cache
        cache.reset()
        self.in2[0] = h_prev
        self.in2[1] = e_c0
        self._project(self.in2, self.x2)
        if self.groups + 1 <= self.stack.cos.shape[0] and self._frame_fused(
                codes_out, greedy, temperature, top_k, top_p, rng, logits_out, forced):
            return codes_out
        if self.stack.fused:  # two one-region steps: same numbers as the 2-row forward
            self.stack.step(self.x2[0:1], 0, cache, self.buf1)
            self.stack.step(self.x2[1:2], 1, cache, self.buf1, self.heads[0], self.logits)
        else:
            y = self.stack.forward(self.x2, 0, cache, self.buf2)
            self.heads[0].matvec(y[1], self.logits)
        for j in range(self.groups - 1):
            if j > 0:
                self.embd[j - 1].rows_f32(int(codes_out[j - 1]), self.in1[0])
                self._project(self.in1, self.x1)
                self.stack.step(self.x1, j + 1, cache, self.buf1, self.heads[j], self.logits)
            if logits_out is not None:
                logits_out[j] = self.logits
            if greedy:
                codes_out[j] = argmax(self.logits)
            else:
                codes_out[j] = sample(self.logits, temperature, top_k, top_p, rng.random(), self.work)
            if forced is not None:
                codes_out[j] = forced[j]
        return codes_out

    def matrices(self):
        return self.stack.matrices() + self.heads + ([self.proj] if self.proj is not None else [])
