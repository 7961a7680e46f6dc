"""Prompt layouts (docs/model.md §4) and the per-frame generation loop (§5) with stop guards.

build_prompt(): the dual-track prompt rows (text track P(.) + codec track E(.)) and the trailing
text rows fed one per generated frame. generate_frames(): prefill, then per frame the code
predictor, the summed frame embedding + next text row through one talker step, and the code-0
sampling in HF order; yields every frame's codes as soon as they exist.

Stop guards (a model that never says EOS must not talk forever): EOS is masked before
`min_frames`, gets a growing bias past `expected_frames`, and `max_frames` is a hard cap (with a
StopWarning when the cap was not the caller's own choice). `StuckDetector` ends a sentence whose
first codes (the semantic codebook) are stuck: a pattern of at most `stuck_period` frames
repeated, or at most `stuck_distinct` different codes (silence, a hum), over `stuck_frames`.
"""
from __future__ import annotations

import time
import warnings
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from .errors import EdgeTTSError
from .kernels.sampling import argmax, mask_range, repetition_penalty, sample
from .models.config import TalkerConfig


@dataclass
class Prompt:
    rows: np.ndarray       # [L, H] talker input embeddings of the prompt
    trailing: np.ndarray   # [T, H] text rows added to generation steps 0..T-1
    pad_row: np.ndarray    # [H] P(tts_pad), added to every later step
    n_text: int            # number of text tokens (drives the stop guards)


@dataclass
class Sampling:
    """Resolved sampling settings (user value, else the checkpoint's generation config)."""
    greedy: bool
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    sub_greedy: bool
    sub_temperature: float
    sub_top_k: int
    sub_top_p: float


@dataclass
class Limits:
    min_frames: int = 2           # EOS is masked while fewer frames than this exist
    max_frames: int = 2048        # hard cap on produced frames
    expected_frames: int = 1 << 30  # past this, EOS gets a growing bias
    eos_bias_per_frame: float = 0.1
    warn_at_cap: bool = False     # StopWarning when max_frames ends a sentence (a derived cap)
    stuck_frames: int = 0         # StuckDetector window in frames (0: off)
    stuck_period: int = 4         # longest repeating pattern, in frames
    stuck_distinct: int = 2       # this few different first codes over the window is stuck too


@dataclass
class StopGuard:
    """The stuck-output guard in user terms (TTS.stop_guard; `say --stuck-stop`).

    seconds: how long stuck output may last before the sentence is ended (0: never)."""
    seconds: float = 4.0
    max_period: int = 4      # longest repeating pattern, in frames
    max_distinct: int = 2    # this few different first codes over the window counts as stuck


class StopWarning(UserWarning):
    """A sentence ended by a stop guard (frame cap, stuck output) instead of EOS."""


class StuckDetector:
    """Is the model stuck? Fed each frame's first code; O(stuck_period) per frame.

    stuck when the last `window` codes are periodic with a period <= `period` (one frame or a
    short pattern over and over) or take at most `distinct` different values (silence, a hum)."""

    def __init__(self, window: int, period: int = 4, distinct: int = 2):
        self.window = int(window)
        self.period = max(1, int(period))
        self.distinct = max(1, int(distinct))
        self.last = deque(maxlen=self.window)
        self.counts: Counter = Counter()
        self.runs = [0] * (self.period + 1)   # runs[p]: trailing frames with c[t] == c[t-p]
        self.reason = ""

    def __call__(self, c: int) -> bool:
        last = self.last
        for p in range(1, self.period + 1):
            self.runs[p] = self.runs[p] + 1 if len(last) >= p and last[-p] == c else 0
        if len(last) == self.window:
            old = last[0]
            self.counts[old] -= 1
            if not self.counts[old]:
                del self.counts[old]
        last.append(c)
        self.counts[c] += 1
        if len(last) < self.window:
            return False
        for p in range(1, self.period + 1):
            if self.runs[p] + p >= self.window:
                self.reason = f"a {p}-frame pattern repeated" if p > 1 else "one code repeated"
                return True
        if len(self.counts) <= self.distinct:
            self.reason = f"only {len(self.counts)} different codes (silence or noise)"
            return True
        return False


def frame_limits(n_text: int, max_new_tokens: int) -> tuple[int, int]:
    """(expected, cap) frame counts for n_text text tokens.

    Speech runs ~3-5 frames (80 ms) per Qwen text token; `expected` is generous, `cap` stops
    runaways (upstream misses EOS now and then) at ~1.2 s per token + 2.4 s.
    """
    expected = 12 + 6 * n_text
    cap = 30 + 15 * n_text
    return expected, max(1, min(cap, max_new_tokens - 1))


# ------------------------------------------------------------------------------ prompt layout
def codec_prefix(cfg: TalkerConfig, language: str, speaker: str | None) -> list[int]:
    """Control ids before the speaker slot (§4.2), after the dialect override."""
    lang = None if language == "auto" else cfg.language_ids[language]
    if speaker is not None and language in ("chinese", "auto"):
        dia = cfg.speaker_dialect.get(speaker, "")
        if dia and dia in cfg.language_ids:
            lang = cfg.language_ids[dia]
    if lang is None:
        return [cfg.codec_nothink_id, cfg.codec_think_bos_id, cfg.codec_think_eos_id]
    return [cfg.codec_think_id, cfg.codec_think_bos_id, lang, cfg.codec_think_eos_id]


def build_prompt(talker, cfg: TalkerConfig, text_ids, role_ids, *, language: str = "auto",
                 speaker: str | None = None, xvector: np.ndarray | None = None,
                 instruct_ids=None, non_streaming: bool = True, ref_text_ids=None,
                 ref_frames: np.ndarray | None = None) -> Prompt:
    """Rows of §4.3. speaker: CustomVoice speaker name (its codec row fills the slot);
    xvector: Base speaker embedding [H] (inserted as-is); instruct_ids: full instruct block ids.
    Base ICL (§4.4): ref_text_ids (the reference transcript's text ids) and ref_frames
    (Σframe rows [F, H] of the reference codes) replace the body."""
    T = [int(t) for t in text_ids]
    if not T:
        raise EdgeTTSError("empty text: nothing to say")
    H = cfg.talker.hidden
    # every text row of the prompt through the text projection in one call (a product per call)
    I = [int(t) for t in instruct_ids] if instruct_ids is not None else []
    role = [int(t) for t in role_ids]
    R = [int(t) for t in ref_text_ids] if ref_frames is not None and ref_text_ids is not None else []
    rows = talker.text_rows([cfg.tts_pad_id, cfg.tts_bos_id, cfg.tts_eos_id] + I + role + T + R)
    pad, bos, eos = rows[:3]
    rows_I, rows_role, P, rows_R = np.split(rows[3:], np.cumsum([len(I), len(role), len(T)]))
    E = talker.codec_rows
    # codec track K: control ids, speaker slot, [pad, bos]
    pre = codec_prefix(cfg, language, speaker)
    K = [E(pre)]
    if speaker is not None:
        K.append(E([cfg.speaker_ids[speaker]]))
    elif xvector is not None:
        xv = np.asarray(xvector, np.float32).reshape(-1)
        if xv.size != H:
            raise EdgeTTSError(f"speaker embedding has {xv.size} values, this model needs {H}")
        K.append(xv[None])
    K.append(E([cfg.codec_pad_id, cfg.codec_bos_id]))
    K = np.concatenate(K, 0)
    k = K.shape[0]
    blocks = [rows_I, rows_role]   # (no instruct: rows_I has no rows)
    prefix = np.repeat(pad[None], k - 1, 0)
    prefix[k - 2] = bos
    blocks.append(prefix + K[:k - 1])
    e_pad, e_bos = E([cfg.codec_pad_id, cfg.codec_bos_id])
    if ref_frames is not None:
        X = np.concatenate([rows_R, P, eos[None]], 0)
        Y = np.concatenate([e_bos[None], np.asarray(ref_frames, np.float32).reshape(-1, H)], 0)
        if non_streaming:
            body = np.concatenate([X + e_pad, Y + pad], 0)
            trailing = pad[None].copy()
        elif X.shape[0] > Y.shape[0]:
            body = X[:Y.shape[0]] + Y
            trailing = X[Y.shape[0]:]
        else:
            Xp = np.concatenate([X, np.repeat(pad[None], Y.shape[0] - X.shape[0], 0)], 0)
            body = Xp + Y
            trailing = pad[None].copy()
    elif non_streaming:
        body = np.concatenate([P, eos[None], pad[None]], 0)
        body[:-1] += e_pad
        body[-1] += e_bos
        trailing = pad[None].copy()
    else:
        body = (P[0] + e_bos)[None]
        trailing = np.concatenate([P[1:], eos[None]], 0)
    blocks.append(body)
    return Prompt(np.ascontiguousarray(np.concatenate(blocks, 0), np.float32),
                  np.ascontiguousarray(trailing, np.float32), pad.copy(), len(T))


# ------------------------------------------------------------------------------ generation
@dataclass
class Stats:
    prefill_s: float = 0.0
    talker_s: float = 0.0
    predictor_s: float = 0.0
    frames: int = 0
    talker_steps: int = 0
    prompt_len: int = 0
    stop: str = ""
    trace: dict | None = None  # when a dict is given: raw logits per step (tests)

    def timings(self) -> dict:
        f = max(self.frames, 1)
        return dict(prefill_s=self.prefill_s, prompt_len=self.prompt_len, frames=self.frames,
                    talker_ms_per_frame=1e3 * self.talker_s / max(self.talker_steps, 1),
                    predictor_ms_per_frame=1e3 * self.predictor_s / f,
                    lm_ms_per_frame=1e3 * (self.talker_s + self.predictor_s) / f, stop=self.stop)


class FrameEmbedder:
    """Σframe = E(c0) + Σ_i CE_{i-1}(c_i) (§5.2), into a preallocated [1, H] row."""

    def __init__(self, talker, predictor):
        H = talker.cfg.talker.hidden
        self.talker, self.predictor = talker, predictor
        self.tmp = np.zeros((1, H), np.float32)

    def __call__(self, frame: np.ndarray, out: np.ndarray) -> np.ndarray:
        self.talker.codec_embd.rows_f32(int(frame[0]), out[0])
        for i in range(1, frame.shape[0]):
            self.predictor.embd[i - 1].rows_f32(int(frame[i]), self.tmp[0])
            out += self.tmp
        return out


def generate_frames(talker, predictor, cfg: TalkerConfig, prompt: Prompt, cache, s: Sampling,
                    lim: Limits, rng: np.random.Generator, stats: Stats | None = None):
    """Yield int64 [G] codes per frame. EOS ends the stream and is never emitted (§5.1)."""
    stats = stats if stats is not None else Stats()
    G = cfg.num_code_groups
    V = cfg.talker.vocab
    eos = cfg.codec_eos_id
    lo, hi = cfg.suppress_range
    trace = stats.trace
    stuck = StuckDetector(lim.stuck_frames, lim.stuck_period, lim.stuck_distinct) \
        if lim.stuck_frames > 0 else None
    max_frames = max(0, int(lim.max_frames))
    if max_frames == 0:
        return
    L = prompt.rows.shape[0]
    # room for the prompt and the expected length; grown (rarely) if the run goes longer
    cache.ensure(L + min(max_frames, 2 * lim.expected_frames) + 1)
    cache.reset()
    stats.prompt_len = L
    seen = np.zeros(V, np.bool_)
    work = np.zeros(V, np.float32)
    lg = np.zeros(V, np.float32)
    frame = np.zeros(G, np.int64)
    row = np.zeros((1, cfg.talker.hidden), np.float32)
    embed = FrameEmbedder(talker, predictor)
    e_c0 = np.zeros((1, cfg.talker.hidden), np.float32)
    cp_logits = np.zeros((G - 1, cfg.predictor.vocab), np.float32) if trace is not None else None
    if trace is not None:
        trace.setdefault("talker_logits", [])
        trace.setdefault("cp_logits", [])
        trace.setdefault("talker_hidden", [])

    def pick(raw: np.ndarray, g: int) -> int:
        """Code 0 for frame g from raw codec-head logits (§5.4 + stop guards)."""
        if trace is not None:
            trace["talker_logits"].append(raw.copy())
        lg[:] = raw
        if s.repetition_penalty != 1.0:
            repetition_penalty(lg, seen, np.float32(s.repetition_penalty))
        if g < lim.min_frames:
            lg[eos] = -np.inf
        elif g > lim.expected_frames:
            lg[eos] += np.float32(lim.eos_bias_per_frame * (g - lim.expected_frames))
        mask_range(lg, lo, hi, eos)
        if s.greedy:
            c = argmax(lg)
        else:
            c = sample(lg, s.temperature, s.top_k, s.top_p, rng.random(), work)
        seen[c] = True
        return int(c)

    t0 = time.perf_counter()
    y, logits = talker.prefill(prompt.rows, cache)
    stats.prefill_s = time.perf_counter() - t0
    c0 = pick(logits, 0)
    g = 0
    while True:
        if c0 == eos:
            stats.stop = "eos"
            return
        t0 = time.perf_counter()
        frame[0] = c0
        talker.codec_embd.rows_f32(int(c0), e_c0[0])
        if trace is not None:
            trace["talker_hidden"].append(np.array(y, copy=True))
        predictor.frame(y, e_c0[0], frame[1:], s.sub_greedy, s.sub_temperature, s.sub_top_k,
                        s.sub_top_p, rng, cp_logits)
        if trace is not None:
            trace["cp_logits"].append(cp_logits.copy())
        t1 = time.perf_counter()
        stats.predictor_s += t1 - t0
        g += 1
        stats.frames = g
        yield frame.copy()
        if stuck is not None and stuck(c0):
            stats.stop = "stuck"
            warnings.warn(f"a sentence ended early after {g} frames: {stuck.reason} for "
                          f"{stuck.window} frames (degenerate output)", StopWarning, stacklevel=2)
            return
        if g >= max_frames:
            stats.stop = "max_frames"
            if lim.warn_at_cap:
                warnings.warn(f"a sentence was cut at the frame cap ({max_frames} frames) without "
                              "an end of speech from the model", StopWarning, stacklevel=2)
            return
        t0 = time.perf_counter()
        embed(frame, row)
        row += prompt.trailing[g - 1] if g - 1 < prompt.trailing.shape[0] else prompt.pad_row
        if cache.pos >= cache.capacity:
            cache.grow(min(2 * cache.capacity, L + max_frames + 1))
        y, logits = talker.step(row, cache)
        stats.talker_steps += 1
        c0 = pick(logits, g)
        stats.talker_s += time.perf_counter() - t0
