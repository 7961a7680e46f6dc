"""TEMPORARY float32 stand-in for edgetts.kernels.matmul.Matrix (same API), used only while
that module is not in the tree. Delete once kernels/matmul.py lands."""
from __future__ import annotations

import numpy as np


class Matrix:
    def __init__(self, w: np.ndarray, dtype: str = "F32"):
        self.w = np.ascontiguousarray(w, dtype=np.float32)
        self.rows, self.cols = self.w.shape
        self.dtype = dtype

    @classmethod
    def from_tensor(cls, t):
        a = t.numpy()
        return cls(a.reshape(a.shape[0], -1), t.dtype)

    @classmethod
    def concat_rows(cls, ms):
        return cls(np.concatenate([m.w for m in ms], 0), ms[0].dtype)

    def matvec(self, x, out):
        np.dot(self.w, x, out=out)
        return out

    def matmul(self, X, out=None):
        if out is None:
            out = np.empty((X.shape[0], self.rows), np.float32)
        np.dot(X, self.w.T, out=out)
        return out

    def rows_f32(self, idx, out):
        out[...] = self.w[np.asarray(idx)].reshape(out.shape)
        return out

    def to_f32(self):
        return self.w.copy()
