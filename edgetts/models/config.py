"""Talker / code-predictor / generation settings, from an HF config.json or GGUF metadata.

Layer sizes (hidden, heads, head_dim, kv heads, FFN, vocab, layer count) are read from the
tensor shapes (docs/model.md §1): the config only supplies what shapes cannot tell
(eps, rope theta, token ids, speaker and language tables, model type).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .. import schema
from ..errors import EdgeTTSError
from ..gguf import constants as K
from ..gguf import metadata as gguf_metadata


@dataclass
class StackConfig:
    """One pre-norm decoder stack (talker or code predictor)."""
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn: int
    vocab: int          # rows of one output head
    rope_theta: float
    eps: float
    max_pos: int


@dataclass
class GenerationConfig:
    """generation_config.json; the defaults are the values shipped with every released checkpoint."""
    do_sample: bool = True
    temperature: float = 0.9
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.05
    subtalker_dosample: bool = True
    subtalker_temperature: float = 0.9
    subtalker_top_k: int = 50
    subtalker_top_p: float = 1.0
    max_new_tokens: int = 8192


@dataclass
class TalkerConfig:
    talker: StackConfig
    predictor: StackConfig
    num_code_groups: int
    text_vocab: int
    text_hidden: int
    model_type: str                 # custom_voice | voice_design | base
    model_size: str                 # 0b6 | 1b7 | ... (as stored)
    # codec-side control ids
    codec_pad_id: int
    codec_bos_id: int
    codec_eos_id: int
    codec_think_id: int
    codec_nothink_id: int
    codec_think_bos_id: int
    codec_think_eos_id: int
    language_ids: dict[str, int]    # lower-case name -> codec id (dialects included)
    speaker_ids: dict[str, int]     # lower-case name -> codec id
    speaker_dialect: dict[str, str]  # lower-case name -> dialect language name ('' if none)
    # text-side ids
    im_start_id: int
    im_end_id: int
    tts_pad_id: int
    tts_bos_id: int
    tts_eos_id: int
    assistant_id: int
    newline_id: int = K.QWEN_TEXT_IDS["newline"]   # "\n" and "user" are in no config: the tokenizer's,
    user_id: int = K.QWEN_TEXT_IDS["user"]         # when the checkpoint has one (TTS._resolve_text_ids)
    speaker_dim: int = 0            # x-vector length of Base models (== talker hidden)
    generation: GenerationConfig = field(default_factory=GenerationConfig)

    @property
    def languages(self) -> list[str]:
        dialects = {d for d in self.speaker_dialect.values() if d}
        return ["auto"] + [k for k in self.language_ids if "dialect" not in k and k not in dialects]

    @property
    def speakers(self) -> list[str]:
        return list(self.speaker_ids)

    @property
    def suppress_range(self) -> tuple[int, int]:
        """[lo, hi): the control-token block the official generate() masks (except EOS)."""
        v = self.talker.vocab
        return max(0, v - 1024), v


# ------------------------------------------------------------------------------ shapes
def _shape(view, name: str, ndim: int) -> tuple[int, ...]:
    """The shape of a tensor the config is read from: `ndim` dimensions, none of them zero."""
    if name not in view:
        raise EdgeTTSError(f"checkpoint has no tensor {name}")
    shape = tuple(view[name].shape)
    if len(shape) != ndim or not all(shape):
        raise EdgeTTSError(f"{view.weights.path}: tensor {name} has shape {list(shape)}, "
                           f"expected {ndim} non-zero dimensions")
    return shape


def _stack_from_shapes(view, prefix: str, eps: float, theta: float, max_pos: int,
                       head_name: str) -> StackConfig:
    n_layers = 0
    while f"{prefix}.blk.{n_layers}.attn_q.weight" in view:
        n_layers += 1
    if n_layers == 0:
        raise EdgeTTSError(f"checkpoint has no {prefix} layers ({prefix}.blk.0.attn_q.weight missing)")
    q = _shape(view, f"{prefix}.blk.0.attn_q.weight", 2)
    k = _shape(view, f"{prefix}.blk.0.attn_k.weight", 2)
    (hd,) = _shape(view, f"{prefix}.blk.0.attn_q_norm.weight", 1)
    ffn = _shape(view, f"{prefix}.blk.0.ffn_gate.weight", 2)[0]
    vocab = _shape(view, head_name, 2)[0]
    if q[0] % hd or k[0] % hd or q[0] // hd % (k[0] // hd):
        raise EdgeTTSError(f"{view.weights.path}: {prefix} attention shapes do not fit: q {list(q)}, "
                           f"k {list(k)}, head_dim {hd}")
    return StackConfig(n_layers=n_layers, hidden=int(q[1]), n_heads=int(q[0]) // hd,
                       n_kv_heads=int(k[0]) // hd, head_dim=int(hd), ffn=int(ffn), vocab=int(vocab),
                       rope_theta=float(theta), eps=float(np.float32(eps)), max_pos=int(max_pos))


def _gen_from_dict(d: dict | None) -> GenerationConfig:
    """generation_config.json over the released defaults (the GenerationConfig field defaults)."""
    g = GenerationConfig()
    for f in fields(g):
        if d and d.get(f.name) is not None:
            setattr(g, f.name, type(getattr(g, f.name))(d[f.name]))
    return g


def _field(path: str) -> str:
    """TalkerConfig field of a config.json token-id path: talker_config.codec_eos_token_id -> codec_eos_id."""
    return path.rsplit(".", 1)[-1].replace("_token_id", "_id")


def _opt(d: dict, key: str, default):
    """d[key], or default when it is absent or null (JSON null means 'not set')."""
    v = d.get(key)
    return default if v is None else v


def _req(d: dict, key: str, where: str):
    if d.get(key) is None:
        raise EdgeTTSError(f"{where}: missing {key}")
    return d[key]


def from_hf(config: dict, generation_config: dict | None, view, where: str = "config.json") -> TalkerConfig:
    """The config of a Hugging Face checkpoint (config.json + generation_config.json); GGUF
    metadata comes here too, turned back into these dicts by `edgetts.gguf.metadata`."""
    tc = config.get("talker_config") or {}
    cp = tc.get("code_predictor_config") or {}
    talker = _stack_from_shapes(view, "talker", _opt(tc, "rms_norm_eps", 1e-6),
                                _opt(tc, "rope_theta", 1e6), _opt(tc, "max_position_embeddings", 32768),
                                "talker.codec_head.weight")
    pred = _stack_from_shapes(view, "code_pred", _opt(cp, "rms_norm_eps", 1e-6),
                              _opt(cp, "rope_theta", 1e6), _opt(cp, "max_position_embeddings", 65536),
                              "code_pred.lm_head.0.weight")
    langs = {str(k).lower(): int(v) for k, v in (tc.get("codec_language_id") or {}).items()}
    spk = {str(k).lower(): int(v) for k, v in (tc.get("spk_id") or {}).items()}
    dia = {str(k).lower(): (v if isinstance(v, str) else "") for k, v in (tc.get("spk_is_dialect") or {}).items()}
    te = _shape(view, "talker.text_embd.weight", 2)
    text = {_field(path): int(_opt(config, path, default)) for _, _, path, default in K.TEXT_IDS_KV}
    codec = {_field(path): int(_req(tc, path.split(".")[-1], f"{where}: talker_config"))
             for _, _, path in K.CODEC_IDS_KV}
    return TalkerConfig(
        talker=talker, predictor=pred,
        num_code_groups=int(_opt(tc, "num_code_groups", _count_groups(view))),
        text_vocab=int(te[0]), text_hidden=int(te[1]),
        model_type=str(_opt(config, "tts_model_type", "custom_voice")),
        model_size=str(_opt(config, "tts_model_size", "")),
        language_ids=langs, speaker_ids=spk, speaker_dialect={k: dia.get(k, "") for k in spk},
        speaker_dim=int(_opt(config.get("speaker_encoder_config") or {}, "enc_dim", 0)),
        generation=_gen_from_dict(generation_config), **codec, **text)


def _count_groups(view) -> int:
    n = 0
    while f"code_pred.lm_head.{n}.weight" in view:
        n += 1
    return n + 1


def _stack_shapes(prefix: str, s: StackConfig) -> dict[str, tuple]:
    q, kv = s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim
    out = {f"{prefix}.output_norm.weight": (s.hidden,)}
    for i in range(s.n_layers):
        b = f"{prefix}.blk.{i}."
        out.update({b + "attn_norm.weight": (s.hidden,), b + "ffn_norm.weight": (s.hidden,),
                    b + "attn_q_norm.weight": (s.head_dim,), b + "attn_k_norm.weight": (s.head_dim,),
                    b + "attn_q.weight": (q, s.hidden), b + "attn_k.weight": (kv, s.hidden),
                    b + "attn_v.weight": (kv, s.hidden), b + "attn_output.weight": (s.hidden, q),
                    b + "ffn_gate.weight": (s.ffn, s.hidden), b + "ffn_up.weight": (s.ffn, s.hidden),
                    b + "ffn_down.weight": (s.hidden, s.ffn)})
    return out


def expected_shapes(tc: TalkerConfig, view) -> dict[str, tuple]:
    """The shape of every talker / code-predictor tensor the models read, from the sizes the
    config took from the first layer (None: any size; the text projection's width is its own)."""
    t, c = tc.talker, tc.predictor
    inner = view["talker.text_proj.fc1.weight"].shape[0] if "talker.text_proj.fc1.weight" in view else None
    out = {**_stack_shapes("talker", t), **_stack_shapes("code_pred", c),
           "talker.text_embd.weight": (tc.text_vocab, tc.text_hidden),
           "talker.text_proj.fc1.weight": (inner, tc.text_hidden), "talker.text_proj.fc1.bias": (inner,),
           "talker.text_proj.fc2.weight": (t.hidden, inner), "talker.text_proj.fc2.bias": (t.hidden,),
           "talker.codec_embd.weight": (t.vocab, t.hidden), "talker.codec_head.weight": (t.vocab, t.hidden)}
    for j in range(tc.num_code_groups - 1):
        out[f"code_pred.codec_embd.{j}.weight"] = (c.vocab, t.hidden)
        out[f"code_pred.lm_head.{j}.weight"] = (c.vocab, c.hidden)
    if "code_pred.mtp_proj.weight" in view or c.hidden != t.hidden:
        out["code_pred.mtp_proj.weight"] = (c.hidden, t.hidden)
        out["code_pred.mtp_proj.bias"] = (c.hidden,)
    return out


def check_shapes(tc: TalkerConfig, view, where: str) -> None:
    """Every tensor the talker and code predictor read exists, with its expected shape."""
    for name, want in expected_shapes(tc, view).items():
        if name not in view:
            raise EdgeTTSError(f"{where}: tensor {name} is missing")
        got = tuple(view[name].shape)
        if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)) or not all(got):
            shown = [w if w is not None else "*" for w in want]
            raise EdgeTTSError(f"{where}: tensor {name} has shape {list(got)}, expected {shown}")


def from_checkpoint(ck) -> TalkerConfig:
    """TalkerConfig of an edgetts.weights.Checkpoint (HF dir or GGUF), every value checked
    (edgetts.schema) and every codec-side id checked against the talker's codec vocabulary."""
    from ..gguf.names import GGUFView

    if ck.main is None:
        raise EdgeTTSError(f"{ck.root}: no talker weights (model.safetensors or qwen3-tts GGUF)")
    view = GGUFView(ck.main)
    if ck.main.format == "gguf":
        where = str(ck.main.path)
        schema.check_gguf_arrays(ck.main.metadata, where)
        cfg, gen = gguf_metadata.main_config(ck.main.metadata)
        schema.check(cfg, schema.MAIN, where, schema.MAIN_KEYS)
        schema.check(gen, schema.GENERATION, where, schema.GENERATION_KEYS)
        gen_where = where
    else:
        if not ck.config:
            raise EdgeTTSError(f"{ck.root}: config.json missing next to the safetensors weights")
        cfg, gen = ck.config, ck.generation_config
        where, gen_where = str(ck.root / "config.json"), str(ck.root / "generation_config.json")
        schema.check(cfg, schema.MAIN, where)
        schema.check(gen, schema.GENERATION, gen_where)
    tc = from_hf(cfg, gen, view, where=where)
    codec_ids = {f.name: getattr(tc, f.name) for f in fields(tc) if f.name.startswith("codec_")}
    codec_ids.update({f"language {k}": v for k, v in tc.language_ids.items()})
    codec_ids.update({f"speaker {k}": v for k, v in tc.speaker_ids.items()})
    schema.check_ids(codec_ids, tc.talker.vocab, where, "codec vocabulary of talker.codec_head")
    if tc.num_code_groups < 2:
        raise EdgeTTSError(f"{where}: num_code_groups = {tc.num_code_groups}, expected >= 2")
    check_shapes(tc, view, str(ck.main.path))
    return tc


# ------------------------------------------------------------------------------ codec decoder
SAMPLE_RATE = 24000   # Hz; every 12 Hz codec checkpoint so far (the config's output_sample_rate wins)


@dataclass
class CodecConfig:
    codebook_size: int
    codebook_dim: int
    num_quantizers: int
    latent_dim: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    sliding_window: int
    upsample_rates: list = field(default_factory=list)
    upsampling_ratios: list = field(default_factory=list)
    decoder_dim: int = 0
    num_semantic_quantizers: int = 1
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    sample_rate: int = SAMPLE_RATE

    @property
    def samples_per_frame(self) -> int:
        return int(np.prod(list(self.upsampling_ratios) + list(self.upsample_rates)))

    @classmethod
    def from_dict(cls, d: dict, sample_rate: int = SAMPLE_RATE) -> "CodecConfig":
        try:
            heads = int(d["num_attention_heads"])
            hidden = int(d["hidden_size"])
            return cls(
                codebook_size=int(d["codebook_size"]),
                codebook_dim=int(d["codebook_dim"]),
                num_quantizers=int(d["num_quantizers"]),
                latent_dim=int(d["latent_dim"]),
                hidden_size=hidden,
                intermediate_size=int(d["intermediate_size"]),
                num_hidden_layers=int(d["num_hidden_layers"]),
                num_attention_heads=heads,
                num_key_value_heads=int(d.get("num_key_value_heads", heads)),
                head_dim=int(d.get("head_dim") or hidden // heads),
                sliding_window=int(d["sliding_window"]),
                upsample_rates=[int(r) for r in d["upsample_rates"]],
                upsampling_ratios=[int(r) for r in d["upsampling_ratios"]],
                decoder_dim=int(d["decoder_dim"]),
                num_semantic_quantizers=int(d.get("num_semantic_quantizers", 1) or 1),
                rope_theta=float(d.get("rope_theta", 10000.0)),
                rms_norm_eps=float(d.get("rms_norm_eps", 1e-5)),
                sample_rate=int(sample_rate),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise EdgeTTSError(f"codec config: missing or bad decoder setting ({e})") from None

    @classmethod
    def from_hf(cls, cfg: dict) -> "CodecConfig":
        if not cfg or "decoder_config" not in cfg:
            raise EdgeTTSError("codec config.json has no decoder_config")
        return cls.from_dict(cfg["decoder_config"], cfg.get("output_sample_rate", SAMPLE_RATE))

    @classmethod
    def from_checkpoint(cls, ck) -> "CodecConfig":
        return cls.from_hf(codec_config_dict(ck))


def codec_config_dict(ck) -> dict | None:
    """The checked speech_tokenizer/config.json dict of an edgetts.weights.Checkpoint (from the
    `qwen3-tts-tokenizer` GGUF's metadata for a GGUF checkpoint); decoder and encoder read it."""
    w = ck.codec
    if w is not None and w.format == "gguf":
        cfg = gguf_metadata.codec_config(w.metadata)
        schema.check(cfg, schema.CODEC, str(w.path), schema.CODEC_KEYS)
    else:
        cfg = ck.codec_config
        schema.check(cfg, schema.CODEC, str(ck.root / "speech_tokenizer" / "config.json"))
    return cfg


# ------------------------------------------------------------------------------ codec encoder
@dataclass
class EncoderConfig:
    sample_rate: int               # input_sample_rate
    frame_samples: int             # encode_downsample_rate: samples per output frame
    num_quantizers: int            # encoder_valid_num_quantizers: codes per frame kept
    num_semantic_quantizers: int
    codebook_size: int
    upsampling_ratios: list        # applied in reverse order by the encoder
    num_residual_layers: int
    dilation_growth_rate: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    norm_eps: float
    rope_theta: float

    @classmethod
    def from_hf(cls, cfg: dict | None) -> "EncoderConfig":
        """From speech_tokenizer/config.json (a dict)."""
        if not cfg or not isinstance(cfg.get("encoder_config"), dict):
            raise EdgeTTSError("codec config has no encoder_config: this codec cannot encode audio")
        e = cfg["encoder_config"]
        # settings the Mimi encoder allows but the Qwen3-TTS codec does not use (and GGUF omits)
        for key, want in (("use_causal_conv", True), ("pad_mode", "constant"), ("use_conv_shortcut", False),
                          ("audio_channels", 1)):
            if key in e and e[key] != want:
                raise EdgeTTSError(f"codec encoder: {key}={e[key]!r} is not supported (expected {want!r})")
        try:
            heads = int(e["num_attention_heads"])
            return cls(
                sample_rate=int(cfg["input_sample_rate"]),
                frame_samples=int(cfg["encode_downsample_rate"]),
                num_quantizers=int(cfg["encoder_valid_num_quantizers"]),
                num_semantic_quantizers=int(e["num_semantic_quantizers"]),
                codebook_size=int(e["codebook_size"]),
                upsampling_ratios=[int(r) for r in e["upsampling_ratios"]],
                num_residual_layers=int(e["num_residual_layers"]),
                dilation_growth_rate=int(e["dilation_growth_rate"]),
                num_hidden_layers=int(e["num_hidden_layers"]),
                num_attention_heads=heads,
                num_key_value_heads=int(e.get("num_key_value_heads") or heads),
                head_dim=int(e.get("head_dim") or int(e["hidden_size"]) // heads),
                norm_eps=float(e["norm_eps"]),
                rope_theta=float(e["rope_theta"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise EdgeTTSError(f"codec config: missing or bad encoder setting ({err})") from None

    @classmethod
    def from_checkpoint(cls, ck) -> "EncoderConfig":
        return cls.from_hf(codec_config_dict(ck))
