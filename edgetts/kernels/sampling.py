"""Logit processing and sampling in Hugging Face order (no model knowledge).

repetition penalty -> (min-length / suppress masks) -> temperature -> top-k -> top-p -> draw.
The random draw is one uniform number u in [0, 1) supplied by the caller (numpy Generator),
so runs are reproducible for a given seed.
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def repetition_penalty(logits, seen, penalty):
    """For every id with seen[id] true: logit < 0 -> logit * penalty, else logit / penalty."""
    for i in range(logits.shape[0]):
        if seen[i]:
            v = logits[i]
            logits[i] = v * penalty if v < 0 else v / penalty


@njit(cache=True, nogil=True)
def mask_range(logits, lo, hi, keep):
    """logits[lo:hi] = -inf except index `keep` (pass -1 to keep none)."""
    for i in range(lo, hi):
        if i != keep:
            logits[i] = -np.inf


@njit(cache=True, nogil=True)
def argmax(logits):
    best = 0
    bv = logits[0]
    for i in range(1, logits.shape[0]):
        if logits[i] > bv:
            bv = logits[i]
            best = i
    return best


@njit(cache=True, nogil=True)
def kth_largest(x, k, work):
    """The k-th largest value of x (k >= 1), keeping the k largest seen so far in work[:k]
    (replace-the-minimum; O(n + replacements * k), no sort of the whole row)."""
    n = x.shape[0]
    for i in range(k):
        work[i] = x[i]
    jmin = 0
    for i in range(1, k):
        if work[i] < work[jmin]:
            jmin = i
    for i in range(k, n):
        v = x[i]
        if v > work[jmin]:
            work[jmin] = v
            jmin = 0
            for j in range(1, k):
                if work[j] < work[jmin]:
                    jmin = j
    return work[jmin]


@njit(cache=True, nogil=True)
def sample(logits, temperature, top_k, top_p, u, work):
    """Draw one id from logits (modified in place) with HF warpers; work: float32[len(logits)].

    temperature: divide; top_k > 0: keep logits >= the k-th largest (ties kept);
    top_p < 1: keep the smallest set of highest-probability ids whose mass exceeds top_p
    (HF TopPLogitsWarper: drop ids whose ascending cumulative mass <= 1 - top_p, keep >= 1).
    """
    n = logits.shape[0]
    inv_t = np.float32(1.0) / np.float32(temperature)
    for i in range(n):
        logits[i] = logits[i] * inv_t
    if top_k > 0 and top_k < n:
        thr = kth_largest(logits, top_k, work)
        for i in range(n):
            if logits[i] < thr:
                logits[i] = -np.inf
    m = -np.inf
    for i in range(n):
        if logits[i] > m:
            m = logits[i]
    if top_p < 1.0:
        # probabilities, sorted ascending; threshold = smallest kept probability
        tot = 0.0
        for i in range(n):
            work[i] = np.exp(logits[i] - m)
            tot += work[i]
        for i in range(n):
            work[i] = work[i] / tot  # float32, recomputed identically below
        work.sort()
        cum = 0.0
        thr = work[n - 1]
        for i in range(n - 1):  # the top id is always kept
            cum += work[i]
            if cum > 1.0 - top_p:
                thr = work[i]
                break
        for i in range(n):
            work[0] = np.exp(logits[i] - m)
            work[0] = work[0] / tot
            if work[0] < thr:
                logits[i] = -np.inf
    tot = 0.0
    for i in range(n):
        e = np.exp(logits[i] - m)
        work[i] = e
        tot += e
    target = u * tot
    acc = 0.0
    last = 0
    for i in range(n):
        if work[i] > 0.0:
            acc += work[i]
            last = i
            if acc > target:
                return i
    return last
