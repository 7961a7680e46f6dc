"""Talker / code-predictor / generation settings, from an HF config.json or GGUF metadata.

Layer sizes (hidden, heads, head_dim, kv heads, FFN, vocab, layer count) are read from the
tensor shapes (spec/talker.md P1/P2): the config only supplies what shapes cannot tell
(eps, rope theta, token ids, speaker and language tables, model type).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EdgeTTSError

ARCH = "qwen3-tts"

# spec/talker.md §1.5 / §5.5: generation_config.json values shipped with every checkpoint
GENERATION_DEFAULTS = dict(do_sample=True, temperature=0.9, top_k=50, top_p=1.0,
                           repetition_penalty=1.05, subtalker_dosample=True,
                           subtalker_temperature=0.9, subtalker_top_k=50, subtalker_top_p=1.0,
                           max_new_tokens=8192)


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
    newline_id: int = 198
    user_id: int = 872
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
def _stack_from_shapes(view, prefix: str, eps: float, theta: float, max_pos: int,
                       head_name: str) -> StackConfig:
    n_layers = 0
    while f"{prefix}.blk.{n_layers}.attn_q.weight" in view:
        n_layers += 1
    if n_layers == 0:
        raise EdgeTTSError(f"checkpoint has no {prefix} layers ({prefix}.blk.0.attn_q.weight missing)")
    q = view[f"{prefix}.blk.0.attn_q.weight"].shape
    k = view[f"{prefix}.blk.0.attn_k.weight"].shape
    hd = view[f"{prefix}.blk.0.attn_q_norm.weight"].shape[0]
    ffn = view[f"{prefix}.blk.0.ffn_gate.weight"].shape[0]
    vocab = view[head_name].shape[0]
    return StackConfig(n_layers=n_layers, hidden=int(q[1]), n_heads=int(q[0]) // hd,
                       n_kv_heads=int(k[0]) // hd, head_dim=int(hd), ffn=int(ffn), vocab=int(vocab),
                       rope_theta=float(theta), eps=float(np.float32(eps)), max_pos=int(max_pos))


def _gen_from_dict(d: dict | None) -> GenerationConfig:
    g = dict(GENERATION_DEFAULTS)
    for k in g:
        if d and d.get(k) is not None:
            g[k] = type(g[k])(d[k])
    if d and d.get("subtalker_do_sample") is not None:  # GGUF spelling
        g["subtalker_dosample"] = bool(d["subtalker_do_sample"])
    return GenerationConfig(**g)


def from_hf(config: dict, generation_config: dict | None, view) -> TalkerConfig:
    tc = config.get("talker_config") or {}
    cp = tc.get("code_predictor_config") or {}
    talker = _stack_from_shapes(view, "talker", tc.get("rms_norm_eps", 1e-6),
                                tc.get("rope_theta", 1e6), tc.get("max_position_embeddings", 32768),
                                "talker.codec_head.weight")
    pred = _stack_from_shapes(view, "code_pred", cp.get("rms_norm_eps", 1e-6),
                              cp.get("rope_theta", 1e6), cp.get("max_position_embeddings", 65536),
                              "code_pred.lm_head.0.weight")
    langs = {k.lower(): int(v) for k, v in (tc.get("codec_language_id") or {}).items()}
    spk = {k.lower(): int(v) for k, v in (tc.get("spk_id") or {}).items()}
    dia = {k.lower(): (v if isinstance(v, str) else "") for k, v in (tc.get("spk_is_dialect") or {}).items()}
    te = view["talker.text_embd.weight"].shape
    spk_dim = int((config.get("speaker_encoder_config") or {}).get("enc_dim", 0))
    return TalkerConfig(
        talker=talker, predictor=pred,
        num_code_groups=int(tc.get("num_code_groups", _count_groups(view))),
        text_vocab=int(te[0]), text_hidden=int(te[1]),
        model_type=str(config.get("tts_model_type", "custom_voice")),
        model_size=str(config.get("tts_model_size", "")),
        codec_pad_id=int(tc["codec_pad_id"]), codec_bos_id=int(tc["codec_bos_id"]),
        codec_eos_id=int(tc["codec_eos_token_id"]), codec_think_id=int(tc["codec_think_id"]),
        codec_nothink_id=int(tc["codec_nothink_id"]), codec_think_bos_id=int(tc["codec_think_bos_id"]),
        codec_think_eos_id=int(tc["codec_think_eos_id"]),
        language_ids=langs, speaker_ids=spk, speaker_dialect={k: dia.get(k, "") for k in spk},
        im_start_id=int(config.get("im_start_token_id", 151644)),
        im_end_id=int(config.get("im_end_token_id", 151645)),
        tts_pad_id=int(config.get("tts_pad_token_id", 151671)),
        tts_bos_id=int(config.get("tts_bos_token_id", 151672)),
        tts_eos_id=int(config.get("tts_eos_token_id", 151673)),
        assistant_id=int(config.get("assistant_token_id", 77091)),
        speaker_dim=spk_dim, generation=_gen_from_dict(generation_config))


def _count_groups(view) -> int:
    n = 0
    while f"code_pred.lm_head.{n}.weight" in view:
        n += 1
    return n + 1


def from_gguf(meta: dict, view) -> TalkerConfig:
    p = ARCH + "."

    def m(key, default=None):
        v = meta.get(p + key, default)
        if v is None:
            raise EdgeTTSError(f"GGUF metadata key {p + key!r} missing")
        return v

    talker = _stack_from_shapes(view, "talker", m("talker.attention.layer_norm_rms_epsilon", 1e-6),
                                m("talker.rope.freq_base", 1e6), m("talker.context_length", 32768),
                                "talker.codec_head.weight")
    pred = _stack_from_shapes(view, "code_pred", m("code_pred.attention.layer_norm_rms_epsilon", 1e-6),
                              m("code_pred.rope.freq_base", 1e6), m("code_pred.context_length", 65536),
                              "code_pred.lm_head.0.weight")
    langs = {str(a).lower(): int(b) for a, b in zip(meta.get(p + "codec.language_names") or [],
                                                     meta.get(p + "codec.language_ids") or [])}
    names = [str(s).lower() for s in meta.get(p + "codec.speaker_names") or []]
    spk = dict(zip(names, (int(i) for i in meta.get(p + "codec.speaker_ids") or [])))
    dia = dict(zip(names, (str(d) for d in meta.get(p + "codec.speaker_dialects") or [])))
    gen = {k[len(p + "generation."):]: v for k, v in meta.items() if k.startswith(p + "generation.")}
    te = view["talker.text_embd.weight"].shape
    return TalkerConfig(
        talker=talker, predictor=pred,
        num_code_groups=int(m("num_code_groups", _count_groups(view))),
        text_vocab=int(te[0]), text_hidden=int(te[1]),
        model_type=str(m("model_type", "custom_voice")), model_size=str(meta.get(p + "model_size", "")),
        codec_pad_id=int(m("codec.pad_id")), codec_bos_id=int(m("codec.bos_id")),
        codec_eos_id=int(m("codec.eos_id")), codec_think_id=int(m("codec.think_id")),
        codec_nothink_id=int(m("codec.nothink_id")), codec_think_bos_id=int(m("codec.think_bos_id")),
        codec_think_eos_id=int(m("codec.think_eos_id")),
        language_ids=langs, speaker_ids=spk, speaker_dialect={k: dia.get(k, "") for k in spk},
        im_start_id=int(m("text.im_start_id", 151644)), im_end_id=int(m("text.im_end_id", 151645)),
        tts_pad_id=int(m("text.tts_pad_id", 151671)), tts_bos_id=int(m("text.tts_bos_id", 151672)),
        tts_eos_id=int(m("text.tts_eos_id", 151673)),
        assistant_id=int(meta.get(p + "text.assistant_id", 77091)),
        speaker_dim=int(meta.get(p + "spk_enc.embedding_length", 0)),
        generation=_gen_from_dict(gen))


def from_checkpoint(ck) -> TalkerConfig:
    """TalkerConfig of an edgetts.weights.Checkpoint (HF dir or GGUF)."""
    from ..gguf.names import GGUFView

    if ck.main is None:
        raise EdgeTTSError(f"{ck.root}: no talker weights (model.safetensors or qwen3-tts GGUF)")
    view = GGUFView(ck.main)
    if ck.main.format == "gguf":
        return from_gguf(ck.main.metadata, view)
    if not ck.config:
        raise EdgeTTSError(f"{ck.root}: config.json missing next to the safetensors weights")
    return from_hf(ck.config, ck.generation_config, view)
