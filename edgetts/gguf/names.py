"""Hugging Face tensor names <-> GGUF tensor names (the qwentts.cpp layout), one table.

Used alike by the quantizer (HF -> GGUF when writing) and by the model loaders (which address
every tensor by its GGUF name, whatever file it came from). Like gguf-py's tensor_mapping.py:
declarative rows, no if-chains.

A row is (HF pattern, GGUF template). `{i}`, `{j}`, `{k}` stand for integers. Codebooks are
*derived*: the HF checkpoint stores an EMA numerator and a usage count; GGUF stores the quotient
(see DERIVED below).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

# ----------------------------------------------------------------------- talker file (qwen3-tts)
_LAYER = [
    ("input_layernorm.weight", "attn_norm.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("self_attn.q_norm.weight", "attn_q_norm.weight"),
    ("self_attn.k_norm.weight", "attn_k_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
]

TALKER_TABLE: list[tuple[str, str]] = [
    ("talker.model.text_embedding.weight", "talker.text_embd.weight"),
    ("talker.model.codec_embedding.weight", "talker.codec_embd.weight"),
    ("talker.text_projection.linear_fc1.weight", "talker.text_proj.fc1.weight"),
    ("talker.text_projection.linear_fc1.bias", "talker.text_proj.fc1.bias"),
    ("talker.text_projection.linear_fc2.weight", "talker.text_proj.fc2.weight"),
    ("talker.text_projection.linear_fc2.bias", "talker.text_proj.fc2.bias"),
    ("talker.codec_head.weight", "talker.codec_head.weight"),
    ("talker.model.norm.weight", "talker.output_norm.weight"),
    *[(f"talker.model.layers.{{i}}.{a}", f"talker.blk.{{i}}.{b}") for a, b in _LAYER],
    *[(f"talker.code_predictor.model.layers.{{i}}.{a}", f"code_pred.blk.{{i}}.{b}") for a, b in _LAYER],
    ("talker.code_predictor.model.norm.weight", "code_pred.output_norm.weight"),
    ("talker.code_predictor.model.codec_embedding.{i}.weight", "code_pred.codec_embd.{i}.weight"),
    ("talker.code_predictor.lm_head.{i}.weight", "code_pred.lm_head.{i}.weight"),
    ("talker.code_predictor.small_to_mtp_projection.weight", "code_pred.mtp_proj.weight"),
    ("talker.code_predictor.small_to_mtp_projection.bias", "code_pred.mtp_proj.bias"),
    # speaker encoder (ECAPA-TDNN, Base models only)
    ("speaker_encoder.blocks.0.conv.{w}", "spk_enc.conv0.{w}"),
    ("speaker_encoder.blocks.{i}.tdnn1.conv.{w}", "spk_enc.blk.{i}.tdnn1.{w}"),
    ("speaker_encoder.blocks.{i}.tdnn2.conv.{w}", "spk_enc.blk.{i}.tdnn2.{w}"),
    ("speaker_encoder.blocks.{i}.res2net_block.blocks.{j}.conv.{w}", "spk_enc.blk.{i}.res2net.{j}.{w}"),
    ("speaker_encoder.blocks.{i}.se_block.conv1.{w}", "spk_enc.blk.{i}.se.conv1.{w}"),
    ("speaker_encoder.blocks.{i}.se_block.conv2.{w}", "spk_enc.blk.{i}.se.conv2.{w}"),
    ("speaker_encoder.mfa.conv.{w}", "spk_enc.mfa.{w}"),
    ("speaker_encoder.asp.tdnn.conv.{w}", "spk_enc.asp.tdnn.{w}"),
    ("speaker_encoder.asp.conv.{w}", "spk_enc.asp.conv.{w}"),
    ("speaker_encoder.fc.{w}", "spk_enc.fc.{w}"),
]

# ----------------------------------------------------------------- codec file (qwen3-tts-tokenizer)
_DEC_LAYER = [
    ("input_layernorm.weight", "attn_norm.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
    ("self_attn_layer_scale.scale", "attn_scale"),
    ("mlp_layer_scale.scale", "ffn_scale"),
]
_ENC_LAYER = [
    ("input_layernorm.{w}", "attn_norm.{w}"),
    ("post_attention_layernorm.{w}", "ffn_norm.{w}"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("mlp.fc1.weight", "ffn_up.weight"),
    ("mlp.fc2.weight", "ffn_down.weight"),
    ("self_attn_layer_scale.scale", "attn_scale"),
    ("mlp_layer_scale.scale", "ffn_scale"),
]
_D = "decoder."
_E = "encoder."
CODEC_TABLE: list[tuple[str, str]] = [
    (_D + "quantizer.rvq_first.output_proj.weight", "tok_dec.vq_first.output_proj.weight"),
    (_D + "quantizer.rvq_rest.output_proj.weight", "tok_dec.vq_rest.output_proj.weight"),
    (_D + "pre_conv.conv.{w}", "tok_dec.pre_conv.{w}"),
    (_D + "pre_transformer.input_proj.{w}", "tok_dec.pre_tfm.input_proj.{w}"),
    (_D + "pre_transformer.output_proj.{w}", "tok_dec.pre_tfm.output_proj.{w}"),
    (_D + "pre_transformer.norm.weight", "tok_dec.pre_tfm.norm.weight"),
    *[(_D + f"pre_transformer.layers.{{i}}.{a}", f"tok_dec.pre_tfm.blk.{{i}}.{b}") for a, b in _DEC_LAYER],
    (_D + "upsample.{i}.0.conv.{w}", "tok_dec.upsample.{i}.conv.{w}"),
    (_D + "upsample.{i}.1.dwconv.conv.{w}", "tok_dec.upsample.{i}.dwconv.{w}"),
    (_D + "upsample.{i}.1.norm.{w}", "tok_dec.upsample.{i}.norm.{w}"),
    (_D + "upsample.{i}.1.pwconv1.{w}", "tok_dec.upsample.{i}.pwconv1.{w}"),
    (_D + "upsample.{i}.1.pwconv2.{w}", "tok_dec.upsample.{i}.pwconv2.{w}"),
    (_D + "upsample.{i}.1.gamma", "tok_dec.upsample.{i}.gamma"),
    (_D + "decoder.0.conv.{w}", "tok_dec.dec.0.conv.{w}"),
    (_D + "decoder.{i}.block.0.{ab}", "tok_dec.dec.{i}.snake.{ab}"),
    (_D + "decoder.{i}.block.1.conv.{w}", "tok_dec.dec.{i}.conv_t.{w}"),
    (_D + "decoder.{i}.block.{r}.{act}.{ab}", "tok_dec.dec.{i}.res.{r-2}.{act}.{ab}"),
    (_D + "decoder.{i}.block.{r}.{conv}.conv.{w}", "tok_dec.dec.{i}.res.{r-2}.{conv}.{w}"),
    (_D + "decoder.{i}.{ab}", "tok_dec.dec.{i}.snake.{ab}"),
    (_D + "decoder.{i}.conv.{w}", "tok_dec.dec.{i}.conv.{w}"),
    (_E + "encoder.layers.{i}.conv.{w}", "tok_enc.conv.{i}.{w}"),
    (_E + "encoder.layers.{i}.block.{j}.conv.{w}", "tok_enc.res.{i}.blk.{j}.{w}"),
    *[(_E + f"encoder_transformer.layers.{{i}}.{a}", f"tok_enc.blk.{{i}}.{b}") for a, b in _ENC_LAYER],
    (_E + "downsample.conv.weight", "tok_enc.downsample.weight"),
    (_E + "quantizer.semantic_residual_vector_quantizer.input_proj.weight", "tok_enc.vq_semantic.input_proj.weight"),
    (_E + "quantizer.semantic_residual_vector_quantizer.output_proj.weight", "tok_enc.vq_semantic.output_proj.weight"),
    (_E + "quantizer.acoustic_residual_vector_quantizer.input_proj.weight", "tok_enc.vq_acoustic.input_proj.weight"),
    (_E + "quantizer.acoustic_residual_vector_quantizer.output_proj.weight", "tok_enc.vq_acoustic.output_proj.weight"),
]

# Codebooks: GGUF name <- (HF numerator, HF usage count); value = sum / max(usage, 1e-5).
CODEBOOK_EPS = 1e-5
DERIVED_CODEBOOKS: list[tuple[str, str, str]] = [
    ("tok_dec.vq_first.{i}.codebook",
     _D + "quantizer.rvq_first.vq.layers.{i}._codebook.embedding_sum",
     _D + "quantizer.rvq_first.vq.layers.{i}._codebook.cluster_usage"),
    ("tok_dec.vq_rest.{i}.codebook",
     _D + "quantizer.rvq_rest.vq.layers.{i}._codebook.embedding_sum",
     _D + "quantizer.rvq_rest.vq.layers.{i}._codebook.cluster_usage"),
    ("tok_enc.vq_semantic.{i}.codebook",
     _E + "quantizer.semantic_residual_vector_quantizer.layers.{i}.codebook.embed_sum",
     _E + "quantizer.semantic_residual_vector_quantizer.layers.{i}.codebook.cluster_usage"),
    ("tok_enc.vq_acoustic.{i}.codebook",
     _E + "quantizer.acoustic_residual_vector_quantizer.layers.{i}.codebook.embed_sum",
     _E + "quantizer.acoustic_residual_vector_quantizer.layers.{i}.codebook.cluster_usage"),
]
# HF tensors that have no GGUF counterpart of their own (folded into a derived one, or unused).
IGNORED_HF = [
    _D + "quantizer.rvq_{x}.input_proj.weight",     # encode-side only, never read by decode
    _E + "quantizer.{q}.layers.{i}.codebook.initialized",
]


# ------------------------------------------------------------------------------ the machinery
_FIELD = re.compile(r"\{(\w+)(-2)?\}")


def _compile(template: str) -> re.Pattern:
    out, pos = [], 0
    for m in _FIELD.finditer(template):
        out.append(re.escape(template[pos:m.start()]))
        name = m.group(1)
        kind = r"\d+" if name in ("i", "j", "k", "r") else r"[A-Za-z0-9_]+"
        out.append(f"(?P<{name}>{kind})")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out) + r"\Z")


def _fill(template: str, groups: dict[str, str]) -> str:
    def sub(m):
        v = groups[m.group(1)]
        return str(int(v) - 2) if m.group(2) else v
    return _FIELD.sub(sub, template)


@dataclass(frozen=True)
class _Rule:
    src: re.Pattern
    dst: str
    check: Callable[[dict], bool]


def _rules(table: Iterable[tuple[str, str]]) -> list[_Rule]:
    rules = []
    for a, b in table:
        def check(g, a=a):
            # decoder.{i}.block.{r}: r >= 2 are residual units; {i} of the top-level snake/conv
            if "r" in g and int(g["r"]) < 2:
                return False
            if "ab" in g and g["ab"] not in ("alpha", "beta"):
                return False
            if "act" in g and g["act"] not in ("act1", "act2"):
                return False
            if "conv" in g and g["conv"] not in ("conv1", "conv2"):
                return False
            if "w" in g and g["w"] not in ("weight", "bias"):
                return False
            return True
        rules.append(_Rule(_compile(a), b, check))
    return rules


_HF_RULES = _rules(TALKER_TABLE + CODEC_TABLE)
_IGNORED = [_compile(p) for p in IGNORED_HF]
_DERIVED_NUM = [(_compile(num), dst, use) for dst, num, use in DERIVED_CODEBOOKS]


def hf_to_gguf(name: str) -> str | None:
    """GGUF name of a directly mapped HF tensor, or None (derived, ignored or unknown)."""
    for r in _HF_RULES:
        m = r.src.match(name)
        if m and r.check(m.groupdict()):
            return _fill(r.dst, m.groupdict())
    return None


def is_ignored(name: str) -> bool:
    return any(p.match(name) for p in _IGNORED) or any(
        _compile(use).match(name) for _, _, use in DERIVED_CODEBOOKS)


def derived_codebooks(names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """GGUF codebook name -> (HF numerator name, HF usage name) for the codebooks present."""
    out = {}
    for n in names:
        for pat, dst, use in _DERIVED_NUM:
            m = pat.match(n)
            if m:
                out[_fill(dst, m.groupdict())] = (n, _fill(use, m.groupdict()))
    return out


def codebook(embedding_sum: np.ndarray, cluster_usage: np.ndarray) -> np.ndarray:
    """EMA codebook: the numerator divided row-wise by the clamped usage count (float32)."""
    use = np.maximum(cluster_usage.astype(np.float32), np.float32(CODEBOOK_EPS))
    return (embedding_sum.astype(np.float32) / use[:, None]).astype(np.float32)


class GGUFView:
    """Tensors of a Weights container addressed by GGUF name, whatever the file's naming.

    For a GGUF file this is the file itself. For a Hugging Face safetensors file the names are
    mapped through the table; codebooks are derived on first access (a small float32 array).
    `view[name]` -> edgetts.weights.Tensor; `name in view`; `view.names()`.
    """

    def __init__(self, weights):
        self.weights = weights
        self._map: dict[str, str] = {}
        self._derived: dict[str, tuple[str, str]] = {}
        self._cache: dict = {}
        if weights.format == "gguf":
            self._map = {n: n for n in weights.names()}
        else:
            for n in weights.names():
                g = hf_to_gguf(n)
                if g is not None:
                    self._map[g] = n
            self._derived = derived_codebooks(weights.names())

    def names(self) -> list[str]:
        return list(self._map) + list(self._derived)

    def __contains__(self, name: str) -> bool:
        return name in self._map or name in self._derived

    def get(self, name: str, default=None):
        return self[name] if name in self else default

    def __getitem__(self, name: str):
        from ..weights import Tensor
        from ..errors import WeightsError

        if name in self._map:
            return self.weights[self._map[name]]
        if name in self._derived:
            if name not in self._cache:
                num, use = self._derived[name]
                cb = codebook(self.weights[num].numpy(), self.weights[use].numpy())
                self._cache[name] = Tensor(name, "F32", cb.shape, cb)
            return self._cache[name]
        raise WeightsError(f"{self.weights.path}: tensor {name!r} not found")
