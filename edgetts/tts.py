"""Public API: `edgetts.load(path) -> TTS`; `TTS.generate(text, ...) -> Result`; `TTS.frames(...)`.

    tts = edgetts.load("Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice")
    res = tts.generate("Hello.", speaker="ryan", language="english")
    res.audio  # float32 at tts.sample_rate (None if the checkpoint has no codec)

    base = edgetts.load("Qwen/Qwen3-TTS-12Hz-0.6B-Base")
    voice = base.clone_voice("ref.wav", ref_text="What ref.wav says.")   # edgetts.Voice
    base.generate("Hello.", voice=voice)

One TTS runs one generation at a time (edgetts.busy): calls from several threads wait for each
other; a stream holds the model until it is exhausted or closed. Starting a second generation in
the thread that holds the model (generate() inside a stream loop) raises EdgeTTSError at once.
"""
from __future__ import annotations

import functools
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import threading_layer as _threading_layer
from . import weights as _weights
from .busy import ModelLock
from .errors import EdgeTTSError
from .gguf import constants as K
from .gguf.names import GGUFView
from .kvcache import KVCache
from .models import config as _config
from .models.predictor import Predictor
from .models.talker import Talker
from .pipeline import Limits, Sampling, Stats, StopGuard, build_prompt, frame_limits, generate_frames
from .text.tokenizer import TextTokenizer

# Reference frames a streaming decoder is warmed with (the official chunked decode's left context).
CONTEXT_FRAMES = 25


FRAME_RATE_12HZ = 12.5   # Qwen3-TTS-12Hz frames per second, when a checkpoint has no codec to say


@dataclass
class Result:
    codes: np.ndarray                  # int64 [frames, groups]
    audio: np.ndarray | None           # float32 [frames * samples_per_frame] or None
    sample_rate: int
    timings: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return int(self.codes.shape[0])

    @property
    def duration(self) -> float:
        return 0.0 if self.audio is None else self.audio.shape[0] / self.sample_rate


def load(path, threads: int | None = None, codec_precision: str = "auto") -> "TTS":
    """Load a model: HF directory, GGUF file(s), or a hub id (downloaded through edgetts.hub).
    codec_precision: "f32" (exact float32 codec products), "auto" (reduced precision where it is
    measured safe: AMX bf16x3 where the CPU has it, models/codec_precision.py), "bf16x3" / "int8" /
    "bf16" (everywhere; int8 and bf16 faster still, less exact)."""
    p = Path(str(path)).expanduser()
    if not p.exists():
        from . import hub  # lazy: only for hub ids
        p = Path(hub.resolve(str(path)))
    return TTS(_weights.open(p), threads=threads, codec_precision=codec_precision)


class TTS:
    def __init__(self, checkpoint, threads: int | None = None, codec_precision: str = "auto"):
        _threading_layer.require_threadsafe()  # the LM and the codec run kernels at once
        if threads:
            import numba
            numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
        self.threads = threads
        from .models.codec_precision import plan_precision
        plan_precision(codec_precision)  # a bad name fails here, not later on the codec thread
        self.codec_precision = codec_precision
        self.lock = ModelLock()   # one generation / stream at a time (see edgetts.busy)
        self.stop_guard = StopGuard()   # ends a sentence whose output is stuck (pipeline.StopGuard)
        self.checkpoint = ck = checkpoint
        # The codec loads on a second thread while the LM loads (cold start: both are CPU work
        # on separate cores); `self.codec` waits for it and re-raises its error, if any.
        self._codec = self._codec_error = self._codec_loader = None
        if ck.codec is not None:
            self._codec_loader = threading.Thread(target=self._load_codec, daemon=True,
                                                  name="edgetts-codec-load")
            self._codec_loader.start()
        self.cfg = cfg = _config.from_checkpoint(ck)
        view = GGUFView(ck.main)
        self.talker = Talker(view, cfg)
        self.predictor = Predictor(view, cfg)
        self.tokenizer = TextTokenizer.from_checkpoint(ck)
        self._resolve_text_ids()
        t = cfg.talker
        self.cache = KVCache(t.n_layers, t.n_kv_heads, t.head_dim, 512)
        self.last_stats: Stats | None = None
        self._speaker_encoder = self._codec_encoder = self._fingerprint = None

    def _resolve_text_ids(self) -> None:
        """Fill in the template ids no config holds ("user", "\\n"; and "assistant" for a GGUF
        that lacks text.assistant_id, as qwentts.cpp writes them) from the tokenizer, then check
        every id against the text vocabulary (an out-of-range id would fail at the first prompt)."""
        tok, cfg, main = self.tokenizer, self.cfg, self.checkpoint.main
        if tok is not None:
            asks = [("user_id", "user")]
            if main.format == "gguf" and K.TEXT_ASSISTANT_ID not in main.metadata:
                asks.append(("assistant_id", "assistant"))
            for attr, s in asks:
                i = tok.token_to_id(s)
                if i is not None:
                    setattr(cfg, attr, int(i))
            nl = tok.encode("\n")
            if len(nl) == 1:
                cfg.newline_id = int(nl[0])
        # "user" only opens instruct blocks: without a tokenizer to name it, checked when used
        for attr in ("im_start_id", "im_end_id", "tts_pad_id", "tts_bos_id", "tts_eos_id",
                     "assistant_id", "newline_id") + (("user_id",) if tok is not None else ()):
            self._check_text_id(attr)

    def _check_text_id(self, attr: str) -> None:
        i, n = getattr(self.cfg, attr), self.cfg.text_vocab
        if not 0 <= i < n:
            raise EdgeTTSError(f"{self.checkpoint.root}: template token {attr} = {i} is outside the "
                               f"text vocabulary (0..{n - 1})")

    # -- properties ------------------------------------------------------------------------------
    @property
    def model_type(self) -> str:
        return self.cfg.model_type

    @property
    def speakers(self) -> list[str]:
        return self.cfg.speakers

    @property
    def languages(self) -> list[str]:
        return self.cfg.languages

    @functools.cached_property
    def sample_rate(self) -> int:
        if self.checkpoint.codec is None:
            return _config.SAMPLE_RATE
        return _config.CodecConfig.from_checkpoint(self.checkpoint).sample_rate

    @functools.cached_property
    def frame_rate(self) -> float:
        """Code frames per second: sample rate / the codec's samples per frame."""
        if self.checkpoint.codec is None:
            return FRAME_RATE_12HZ
        return self.sample_rate / _config.CodecConfig.from_checkpoint(self.checkpoint).samples_per_frame

    @property
    def has_codec(self) -> bool:
        return self.checkpoint.codec is not None

    # -- codec -----------------------------------------------------------------------------------
    def _load_codec(self) -> None:
        try:
            from .models.codec import Codec
            self._codec = Codec.load(self.checkpoint, self.threads, precision=self.codec_precision)
        except BaseException as e:  # noqa: BLE001 - handed to the thread that asks for the codec
            self._codec_error = e

    @property
    def codec(self):
        if self._codec_loader is not None:
            self._codec_loader.join()
            self._codec_loader = None
        if self._codec_error is not None:
            raise self._codec_error
        if self._codec is None:
            raise EdgeTTSError(f"{self.checkpoint.root}: this checkpoint has no speech tokenizer (codec)")
        return self._codec

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.codec.decode(np.asarray(codes, np.int64))

    def codec_stream(self, context=None):
        """An incremental decoder; `context` (reference codes [F, groups], Base ICL) is decoded
        first and its audio dropped, so the first frames continue the reference as upstream's
        decode of concat(ref, generated) does (its chunked decode keeps CONTEXT_FRAMES of left
        context; so do we)."""
        s = self.codec.stream()
        if context is not None and len(context):
            s.push(np.asarray(context, np.int64)[-CONTEXT_FRAMES:])
        return s

    def stream(self, text, **kw):
        """float32 audio chunks while generating; same arguments as generate().

        The LM runs in a producer thread and the codec decodes ready frames in the caller's
        thread (edgetts.streaming.AudioStream); its `.timings` are filled once exhausted.
        """
        from .streaming import stream
        return stream(self, text, **self._voice_kw(kw))

    # -- voice cloning (Base models) --------------------------------------------------------------
    @property
    def speaker_encoder(self):
        """The ECAPA-TDNN x-vector extractor of a Base checkpoint (loaded on first use)."""
        if self._speaker_encoder is None:
            self._need_base("cloning a voice")
            from .models.speaker import SpeakerEncoder
            self._speaker_encoder = SpeakerEncoder.load(self.checkpoint)
        return self._speaker_encoder

    @property
    def codec_encoder(self):
        """The codec's encoder (audio -> reference codes; loaded on first use)."""
        if self._codec_encoder is None:
            if self.checkpoint.codec is None:
                raise EdgeTTSError(f"{self.checkpoint.root}: this checkpoint has no speech tokenizer (codec); "
                                   "reference codes need its encoder")
            from .models.encoder import CodecEncoder
            self._codec_encoder = CodecEncoder.load(self.checkpoint, self.threads)
        return self._codec_encoder

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from .voice import model_fingerprint
            self._fingerprint = model_fingerprint(self)
        return self._fingerprint

    def _need_base(self, what: str) -> None:
        if self.model_type != "base":
            raise EdgeTTSError(f"{what} needs a Base model (e.g. Qwen/Qwen3-TTS-12Hz-0.6B-Base); "
                               f"this one is {self.model_type}")

    def _reference(self, audio, sample_rate):
        from .voice import reference_audio
        enc = self.speaker_encoder
        return reference_audio(audio, sample_rate, min_seconds=enc.cfg.min_samples / enc.sample_rate)

    def speaker_embedding(self, audio, sample_rate=None) -> np.ndarray:
        """x-vector float32 [enc_dim] of reference audio (array at `sample_rate`, or a file path)."""
        from .voice import resample
        y, sr = self._reference(audio, sample_rate)
        enc = self.speaker_encoder
        return enc.embed(resample(y, sr, enc.sample_rate))

    def encode(self, audio, sample_rate=None) -> np.ndarray:
        """Reference codes int64 [frames, groups] of audio (array at `sample_rate`, or a path)."""
        from .voice import reference_audio, resample
        y, sr = reference_audio(audio, sample_rate)
        enc = self.codec_encoder
        return np.asarray(enc.encode(resample(y, sr, enc.sample_rate)), np.int64)

    def clone_voice(self, audio, sample_rate=None, ref_text=None):
        """A Voice from reference audio (array at `sample_rate`, or a path soundfile reads).

        Without ref_text: x-vector only. With ref_text (the words spoken in the reference, a str
        or token ids): x-vector + reference codes + transcript ids (in-context cloning)."""
        from .voice import Voice, resample, voice_model_info
        self._need_base("clone_voice")
        y, sr = self._reference(audio, sample_rate)
        enc = self.speaker_encoder
        xvec = enc.embed(resample(y, sr, enc.sample_rate))
        codes = ids = text = None
        if ref_text is not None and not (isinstance(ref_text, str) and not ref_text.strip()):
            ids = np.asarray(self.ref_text_ids(ref_text), np.int64)
            if ids.size == 0:
                raise EdgeTTSError("ref_text is empty")
            codes = self.encode(y, sr)
            text = ref_text if isinstance(ref_text, str) else None
        return Voice(speaker_embedding=xvec, ref_codes=codes, ref_text_ids=ids, ref_text=text,
                     model=voice_model_info(self))

    def _voice_kw(self, kw: dict) -> dict:
        """generate/frames/stream keyword arguments with voice= turned into what it holds."""
        voice = kw.pop("voice", None)
        if voice is None:
            return kw
        from .voice import Voice
        if isinstance(voice, (str, Path)):
            voice = Voice.load(voice)
        if not isinstance(voice, Voice):
            raise EdgeTTSError(f"voice= takes an edgetts.Voice or a voice file path, not {type(voice).__name__}")
        clash = [k for k in ("speaker", "speaker_embedding", "ref_codes", "ref_text") if kw.get(k) is not None]
        if clash:
            raise EdgeTTSError(f"voice= already sets the speaker; drop {', '.join(clash)}=")
        voice.check_model(self)
        return {**kw, **voice.generate_kwargs()}

    # -- input handling --------------------------------------------------------------------------
    def _encode(self, what: str, s: str) -> list[int]:
        if self.tokenizer is None:
            raise EdgeTTSError(f"this checkpoint has no text tokenizer; pass the {what} as token ids")
        return self.tokenizer.encode(s)

    def text_ids(self, text) -> tuple[list[int], list[int]]:
        """(role ids, text ids) as the official wrapper slices them (docs/model.md §4.1)."""
        cfg = self.cfg
        if isinstance(text, str):
            if not text.strip():
                raise EdgeTTSError("empty text: nothing to say")
            ids = self._encode("text", "<|im_start|>assistant\n" + text + "<|im_end|>\n<|im_start|>assistant\n")
            role, body = ids[:3], ids[3:-5]
        else:
            body = [int(i) for i in np.asarray(text).reshape(-1)]
            role = [cfg.im_start_id, cfg.assistant_id, cfg.newline_id]
        if not body:
            raise EdgeTTSError("empty text: nothing to say")
        bad = [i for i in body if not 0 <= i < cfg.text_vocab]
        if bad:
            raise EdgeTTSError(f"text token id {bad[0]} is outside the text vocabulary (0..{cfg.text_vocab - 1})")
        return role, body

    def instruct_ids(self, instruct) -> list[int] | None:
        cfg = self.cfg
        if instruct is None or (isinstance(instruct, str) and not instruct.strip()):
            return None
        if isinstance(instruct, str):
            return self._encode("instruct", "<|im_start|>user\n" + instruct + "<|im_end|>\n")
        ids = [int(i) for i in np.asarray(instruct).reshape(-1)]
        if not ids:
            return None
        if ids[0] == cfg.im_start_id:  # already the full block
            return ids
        self._check_text_id("user_id")
        return [cfg.im_start_id, cfg.user_id, cfg.newline_id, *ids, cfg.im_end_id, cfg.newline_id]

    def ref_frames(self, ref_codes) -> np.ndarray:
        """Σframe rows [F, H] of reference codes [F, groups] (Base ICL prompt)."""
        from .pipeline import FrameEmbedder

        c = np.asarray(ref_codes)
        G, cb = self.cfg.num_code_groups, self.cfg.predictor.vocab
        if c.ndim != 2 or c.shape[1] != G or c.shape[0] == 0:
            raise EdgeTTSError(f"ref_codes must be [frames, {G}], got shape {c.shape}")
        if c.min() < 0 or c.max() >= cb:
            raise EdgeTTSError(f"ref_codes values must be in 0..{cb - 1}")
        emb = FrameEmbedder(self.talker, self.predictor)
        out = np.zeros((c.shape[0], self.cfg.talker.hidden), np.float32)
        for f in range(c.shape[0]):
            emb(c[f].astype(np.int64), out[f:f + 1])
        return out

    def ref_text_ids(self, ref_text) -> list[int]:
        """Reference transcript ids as the official wrapper slices them (ids[3:-2])."""
        if isinstance(ref_text, str):
            return self._encode("ref_text", "<|im_start|>assistant\n" + ref_text + "<|im_end|>\n")[3:-2]
        return [int(i) for i in np.asarray(ref_text).reshape(-1)]

    def _resolve(self, text, speaker, language, instruct, speaker_embedding, non_streaming_mode,
                 ref_codes=None, ref_text=None):
        cfg = self.cfg
        lang = (language or "auto").lower()
        if lang not in cfg.languages:
            raise EdgeTTSError(f"unknown language {language!r}; choose one of: {', '.join(cfg.languages)}")
        mt = cfg.model_type
        spk = None
        if mt == "custom_voice":
            if speaker_embedding is not None:
                raise EdgeTTSError("speaker_embedding needs a Base model; this one is custom_voice (use speaker=)")
            if speaker is None:
                spk = cfg.speakers[0] if cfg.speakers else None
            else:
                spk = str(speaker).lower()
                if spk not in cfg.speaker_ids:
                    raise EdgeTTSError(f"unknown speaker {speaker!r}; choose one of: {', '.join(cfg.speakers)}")
            if instruct is not None and cfg.model_size.lower() in ("0b6", "0.6b"):
                warnings.warn("the 0.6B CustomVoice model ignores instruct (as the official wrapper does)",
                              stacklevel=3)
                instruct = None
        elif mt == "voice_design":
            if speaker is not None or speaker_embedding is not None:
                raise EdgeTTSError("voice_design models take no speaker; describe the voice with instruct=")
        elif mt == "base":
            if speaker is not None:
                raise EdgeTTSError("a Base model has no named speakers; pass voice= (see clone_voice)")
            if speaker_embedding is None:
                raise EdgeTTSError("a Base model needs a voice: voice= (see clone_voice) or speaker_embedding=")
            if ref_codes is not None and ref_text is None:
                raise EdgeTTSError("voice cloning with ref_codes needs ref_text= (the reference transcript)")
            if instruct is not None:
                warnings.warn("Base models ignore instruct (as the official wrapper does)", stacklevel=3)
                instruct = None
        else:
            raise EdgeTTSError(f"unknown model type {mt!r}")
        if ref_codes is not None and mt != "base":
            raise EdgeTTSError("ref_codes (voice cloning) needs a Base model")
        if non_streaming_mode is None:
            non_streaming_mode = mt != "base"  # official per-variant wrapper defaults
        role, body = self.text_ids(text)
        icl = {}
        if ref_codes is not None:
            icl = dict(ref_text_ids=self.ref_text_ids(ref_text), ref_frames=self.ref_frames(ref_codes))
        return build_prompt(self.talker, cfg, body, role, language=lang, speaker=spk,
                            xvector=speaker_embedding, instruct_ids=self.instruct_ids(instruct),
                            non_streaming=bool(non_streaming_mode), **icl)

    def _sampling(self, greedy, temperature, top_k, top_p, repetition_penalty) -> Sampling:
        g = self.cfg.generation
        return Sampling(
            greedy=bool(greedy) or not g.do_sample,
            temperature=float(temperature if temperature is not None else g.temperature),
            top_k=int(top_k if top_k is not None else g.top_k),
            top_p=float(top_p if top_p is not None else g.top_p),
            repetition_penalty=float(repetition_penalty if repetition_penalty is not None
                                     else g.repetition_penalty),
            sub_greedy=bool(greedy) or not g.subtalker_dosample,
            sub_temperature=float(temperature if temperature is not None else g.subtalker_temperature),
            sub_top_k=int(top_k if top_k is not None else g.subtalker_top_k),
            sub_top_p=float(top_p if top_p is not None else g.subtalker_top_p))

    # -- generation ------------------------------------------------------------------------------
    def frames(self, text, **kw):
        """Generator of each frame's codes (int64 [groups]) as soon as it is produced.

        Base models: voice= (an edgetts.Voice from clone_voice / Voice.load), or speaker_embedding=
        (x-vector) alone, or with ref_codes= [F, groups] and ref_text= (the reference audio's codes
        and transcript) for in-context cloning (docs/model.md §4.4).
        The arguments are checked now; the generator holds the model from its first frame until
        it is exhausted or closed."""
        with self.lock.hold("generating"):
            gen = self._frames(text, **self._voice_kw(kw))
        return self._held(gen)

    def _held(self, gen):
        with self.lock.hold("generating"):
            try:
                yield from gen
            finally:
                gen.close()

    def _frames(self, text, *, speaker=None, language="auto", instruct=None, speaker_embedding=None,
                non_streaming_mode=None, greedy=False, seed=None, temperature=None, top_k=None,
                top_p=None, repetition_penalty=None, max_frames=None, min_frames=None,
                ref_codes=None, ref_text=None, stop_guard: StopGuard | None = None,
                stats: Stats | None = None):
        prompt = self._resolve(text, speaker, language, instruct, speaker_embedding, non_streaming_mode,
                               ref_codes, ref_text)
        s = self._sampling(greedy, temperature, top_k, top_p, repetition_penalty)
        for name, v in (("temperature", s.temperature), ("sub temperature", s.sub_temperature)):
            if v <= 0:
                raise EdgeTTSError(f"{name} must be > 0 (use greedy=True for deterministic output)")
        expected, cap = frame_limits(prompt.n_text, self.cfg.generation.max_new_tokens)
        guard = stop_guard if stop_guard is not None else self.stop_guard
        lim = Limits(min_frames=2 if min_frames is None else int(min_frames),
                     max_frames=cap if max_frames is None else int(max_frames),
                     expected_frames=expected, warn_at_cap=max_frames is None,
                     stuck_frames=max(0, round(guard.seconds * self.frame_rate)),
                     stuck_period=guard.max_period, stuck_distinct=guard.max_distinct)
        if lim.max_frames < 0 or lim.min_frames < 0:
            raise EdgeTTSError("max_frames and min_frames must be >= 0")
        rng = np.random.default_rng(seed)
        self.last_stats = stats = stats if stats is not None else Stats()
        return generate_frames(self.talker, self.predictor, self.cfg, prompt, self.cache, s, lim, rng, stats)

    def generate(self, text, **kw) -> Result:
        with self.lock.hold("generating"):
            return self._generate(text, **kw)

    def _generate(self, text, **kw) -> Result:
        t0 = time.perf_counter()
        stats = kw.pop("stats", None) or Stats()
        kw = self._voice_kw(kw)
        frames = list(self._frames(text, stats=stats, **kw))
        G = self.cfg.num_code_groups
        codes = np.stack(frames).astype(np.int64) if frames else np.zeros((0, G), np.int64)
        t1 = time.perf_counter()
        timings = stats.timings()
        timings["lm_s"] = t1 - t0
        audio = None
        if self.has_codec and codes.shape[0]:
            ref = kw.get("ref_codes")
            if ref is not None:  # as the official wrapper: decode with the reference as context, cut it
                ref = np.asarray(ref, np.int64)
                audio = self.decode(np.concatenate([ref, codes], 0))
                audio = audio[ref.shape[0] * (audio.shape[0] // (ref.shape[0] + codes.shape[0])):]
            else:
                audio = self.decode(codes)
            timings["codec_s"] = time.perf_counter() - t1
        timings["total_s"] = time.perf_counter() - t0
        return Result(codes=codes, audio=audio, sample_rate=self.sample_rate, timings=timings)
