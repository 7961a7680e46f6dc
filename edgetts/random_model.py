"""A full-size Qwen3-TTS-12Hz checkpoint with random weights, in the real Hugging Face layout
(`edgetts bench --random`, bench/make_random_model.py). numpy only.

    write_checkpoint(out, size="0.6b", variant="custom_voice", dtype="bf16", seed=0)

out/
  config.json, generation_config.json   real values (spec/talker.md section 1)
  model.safetensors                     talker + code predictor (+ speaker encoder for base),
                                        real names and shapes, BF16 like the release (or F32)
  speech_tokenizer/config.json          real codec config (spec/codec.md section 1)
  speech_tokenizer/model.safetensors    decoder + Mimi encoder tensors, F32

Weights: matrices and conv kernels N(0, 1/fan_in), norm weights 1 + N(0, 0.02), biases N(0, 0.02),
layer scales 0.01, SnakeBeta log-scale alpha/beta ~0, codebook usage counts in [0.5, 2].
Tensors are generated and written one at a time (large ones in row chunks): memory stays small.
No text tokenizer: write_byte_tokenizer adds a byte-level one (256 byte tokens + the special
tokens at the config's ids) when the real Qwen2 BPE is not at hand.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

# ------------------------------------------------------------------------------- configs

SPEAKERS = {  # name: (codec id, dialect or False)   spec/talker.md 1.4
    "vivian": (3065, False), "serena": (3066, False), "uncle_fu": (3010, False),
    "dylan": (2878, "beijing_dialect"), "eric": (2875, "sichuan_dialect"), "ryan": (3061, False),
    "aiden": (2861, False), "ono_anna": (2873, False), "sohee": (2864, False),
}
LANGUAGES = {"chinese": 2055, "english": 2050, "german": 2053, "italian": 2070, "portuguese": 2071,
             "spanish": 2054, "japanese": 2058, "korean": 2064, "french": 2061, "russian": 2069}
DIALECTS = {"beijing_dialect": 2074, "sichuan_dialect": 2062}
SIZES = {"0.6b": dict(hidden=1024, inter=3072, tag="0b6"), "1.7b": dict(hidden=2048, inter=6144, tag="1b7")}


def make_config(size: str, variant: str, dtype: str) -> dict:
    s = SIZES[size]
    H = s["hidden"]
    cv = variant == "custom_voice"
    langs = dict(LANGUAGES, **(DIALECTS if cv else {}))
    cp = {
        "model_type": "qwen3_tts_talker_code_predictor", "hidden_size": 1024, "intermediate_size": 3072,
        "num_hidden_layers": 5, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "hidden_act": "silu", "vocab_size": 2048, "num_code_groups": 16, "rope_theta": 1000000,
        "rope_scaling": None, "rms_norm_eps": 1e-6, "max_position_embeddings": 65536,
        "layer_types": ["full_attention"] * 5, "attention_bias": False, "attention_dropout": 0.0,
        "use_sliding_window": False, "sliding_window": None, "max_window_layers": 28,
        "tie_word_embeddings": False, "max_length": 20, "initializer_range": 0.02, "use_cache": True,
    }
    talker = {
        "model_type": "qwen3_tts_talker", "hidden_size": H, "intermediate_size": s["inter"],
        "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "hidden_act": "silu", "vocab_size": 3072, "text_vocab_size": 151936, "text_hidden_size": 2048,
        "num_code_groups": 16, "rope_theta": 1000000,
        "rope_scaling": {"rope_type": "default", "mrope_section": [24, 20, 20], "interleaved": True},
        "rms_norm_eps": 1e-6, "max_position_embeddings": 32768, "attention_bias": False,
        "attention_dropout": 0.0, "use_sliding_window": False, "sliding_window": None,
        "tie_word_embeddings": False, "position_id_per_seconds": 13, "initializer_range": 0.02,
        "use_cache": True,
        "codec_pad_id": 2148, "codec_bos_id": 2149, "codec_eos_token_id": 2150, "codec_think_id": 2154,
        "codec_nothink_id": 2155, "codec_think_bos_id": 2156, "codec_think_eos_id": 2157,
        "codec_language_id": langs,
        "spk_id": {k: v[0] for k, v in SPEAKERS.items()} if cv else {},
        "spk_is_dialect": {k: v[1] for k, v in SPEAKERS.items()} if cv else {},
        "code_predictor_config": cp,
    }
    return {
        "architectures": ["Qwen3TTSForConditionalGeneration"], "model_type": "qwen3_tts",
        "tokenizer_type": "qwen3_tts_tokenizer_12hz", "tts_model_size": s["tag"], "tts_model_type": variant,
        "im_start_token_id": 151644, "im_end_token_id": 151645, "tts_pad_token_id": 151671,
        "tts_bos_token_id": 151672, "tts_eos_token_id": 151673, "assistant_token_id": 77091,
        "speaker_encoder_config": {"enc_dim": H, "sample_rate": 24000},
        "talker_config": talker,
        "torch_dtype": "bfloat16" if dtype == "bf16" else "float32", "transformers_version": "4.57.3",
    }


GENERATION_CONFIG = {"do_sample": True, "temperature": 0.9, "top_k": 50, "top_p": 1.0,
                     "repetition_penalty": 1.05, "subtalker_dosample": True, "subtalker_temperature": 0.9,
                     "subtalker_top_k": 50, "subtalker_top_p": 1.0, "max_new_tokens": 8192}

CODEC_CONFIG = {
    "architectures": ["Qwen3TTSTokenizerV2Model"], "model_type": "qwen3_tts_tokenizer_12hz",
    "encoder_valid_num_quantizers": 16, "input_sample_rate": 24000, "output_sample_rate": 24000,
    "decode_upsample_rate": 1920, "encode_downsample_rate": 1920, "dtype": "float32",
    "transformers_version": "4.57.3",
    "decoder_config": {
        "codebook_size": 2048, "codebook_dim": 512, "num_quantizers": 16, "num_semantic_quantizers": 1,
        "semantic_codebook_size": 4096, "vector_quantization_hidden_dimension": 512, "latent_dim": 1024,
        "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 8, "num_attention_heads": 16,
        "num_key_value_heads": 16, "head_dim": 64, "sliding_window": 72, "rope_theta": 10000,
        "max_position_embeddings": 8000, "rms_norm_eps": 1e-5, "layer_scale_initial_scale": 0.01,
        "hidden_act": "silu", "attention_bias": False, "attention_dropout": 0.0,
        "upsampling_ratios": [2, 2], "upsample_rates": [8, 5, 4, 3], "decoder_dim": 1536,
    },
    "encoder_config": {
        "model_type": "mimi", "sampling_rate": 24000, "_frame_rate": 12.5, "audio_channels": 1,
        "hidden_size": 512, "num_filters": 64, "num_residual_layers": 1, "upsampling_ratios": [8, 6, 5, 4],
        "kernel_size": 7, "last_kernel_size": 3, "residual_kernel_size": 3, "dilation_growth_rate": 2,
        "compress": 2, "use_causal_conv": True, "pad_mode": "constant", "trim_right_ratio": 1.0,
        "use_conv_shortcut": False, "codebook_size": 2048, "codebook_dim": 256, "num_quantizers": 32,
        "num_semantic_quantizers": 1, "vector_quantization_hidden_dimension": 256,
        "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 8, "head_dim": 64,
        "intermediate_size": 2048, "hidden_act": "gelu", "norm_eps": 1e-5, "rope_theta": 10000.0,
        "sliding_window": 250, "max_position_embeddings": 8000, "layer_scale_initial_scale": 0.01,
        "attention_bias": False, "attention_dropout": 0.0, "upsample_groups": 512, "use_cache": False,
        "use_streaming": False, "initializer_range": 0.02,
    },
}

# ------------------------------------------------------------------------------ tensor lists
# (name, shape, init) with init one of: "w" N(0, 1/fan_in), "wt" transposed conv [in, out, k],
# "emb" N(0, 1/dim), "norm" 1 + N(0, .02), "bias" N(0, .02), "scale" 0.01, "log" N(0, .02) (SnakeBeta),
# "usage" U(0.5, 2), "one" 1.0


def _layer(prefix: str, d: int, inter: int, qn=True) -> list:
    t = [(prefix + "input_layernorm.weight", (d,), "norm"),
         (prefix + "self_attn.q_proj.weight", (16 * 128, d), "w"),
         (prefix + "self_attn.k_proj.weight", (8 * 128, d), "w"),
         (prefix + "self_attn.v_proj.weight", (8 * 128, d), "w"),
         (prefix + "self_attn.o_proj.weight", (d, 16 * 128), "w"),
         (prefix + "post_attention_layernorm.weight", (d,), "norm"),
         (prefix + "mlp.gate_proj.weight", (inter, d), "w"),
         (prefix + "mlp.up_proj.weight", (inter, d), "w"),
         (prefix + "mlp.down_proj.weight", (d, inter), "w")]
    if qn:
        t += [(prefix + "self_attn.q_norm.weight", (128,), "norm"),
              (prefix + "self_attn.k_norm.weight", (128,), "norm")]
    return t


def talker_tensors(cfg: dict) -> list:
    tc = cfg["talker_config"]
    H, I = tc["hidden_size"], tc["intermediate_size"]
    cp = tc["code_predictor_config"]
    Hc = cp["hidden_size"]
    T = [("talker.model.text_embedding.weight", (tc["text_vocab_size"], tc["text_hidden_size"]), "emb"),
         ("talker.text_projection.linear_fc1.weight", (2048, 2048), "w"),
         ("talker.text_projection.linear_fc1.bias", (2048,), "bias"),
         ("talker.text_projection.linear_fc2.weight", (H, 2048), "w"),
         ("talker.text_projection.linear_fc2.bias", (H,), "bias"),
         ("talker.model.codec_embedding.weight", (tc["vocab_size"], H), "emb"),
         ("talker.model.norm.weight", (H,), "norm"),
         ("talker.codec_head.weight", (tc["vocab_size"], H), "w")]
    for i in range(tc["num_hidden_layers"]):
        T += _layer(f"talker.model.layers.{i}.", H, I)
    for i in range(cp["num_hidden_layers"]):
        T += _layer(f"talker.code_predictor.model.layers.{i}.", Hc, cp["intermediate_size"])
    T.append(("talker.code_predictor.model.norm.weight", (Hc,), "norm"))
    for j in range(cp["num_code_groups"] - 1):
        T.append((f"talker.code_predictor.model.codec_embedding.{j}.weight", (cp["vocab_size"], H), "emb"))
        T.append((f"talker.code_predictor.lm_head.{j}.weight", (cp["vocab_size"], Hc), "w"))
    if H != Hc:
        T += [("talker.code_predictor.small_to_mtp_projection.weight", (Hc, H), "w"),
              ("talker.code_predictor.small_to_mtp_projection.bias", (Hc,), "bias")]
    if cfg["tts_model_type"] == "base":  # ECAPA-TDNN speaker encoder, spec/codec.md 6.2
        se = "speaker_encoder."
        T += [(se + "blocks.0.conv.weight", (512, 128, 5), "w"), (se + "blocks.0.conv.bias", (512,), "bias")]
        for b in (1, 2, 3):
            p = f"{se}blocks.{b}."
            for name, shape in (("tdnn1.conv", (512, 512, 1)), ("tdnn2.conv", (512, 512, 1)),
                                ("se_block.conv1", (128, 512, 1)), ("se_block.conv2", (512, 128, 1)),
                                *[(f"res2net_block.blocks.{j}.conv", (64, 64, 3)) for j in range(7)]):
                T += [(p + name + ".weight", shape, "w"), (p + name + ".bias", (shape[0],), "bias")]
        for name, shape in (("mfa.conv", (1536, 1536, 1)), ("asp.tdnn.conv", (128, 4608, 1)),
                            ("asp.conv", (1536, 128, 1)), ("fc", (H, 3072, 1))):
            T += [(se + name + ".weight", shape, "w"), (se + name + ".bias", (shape[0],), "bias")]
    return T


def codec_tensors(cc: dict) -> list:
    dc, ec = cc["decoder_config"], cc["encoder_config"]
    D = "decoder."
    cd2 = dc["codebook_dim"] // 2
    T = []
    for q, n in (("rvq_first", dc["num_semantic_quantizers"]),
                 ("rvq_rest", dc["num_quantizers"] - dc["num_semantic_quantizers"])):
        p = f"{D}quantizer.{q}."
        T += [(p + "input_proj.weight", (cd2, dc["codebook_dim"], 1), "w"),
              (p + "output_proj.weight", (dc["codebook_dim"], cd2, 1), "w")]
        for i in range(n):
            T += [(f"{p}vq.layers.{i}._codebook.embedding_sum", (dc["codebook_size"], cd2), "emb1"),
                  (f"{p}vq.layers.{i}._codebook.cluster_usage", (dc["codebook_size"],), "usage")]
    L, hs, it = dc["latent_dim"], dc["hidden_size"], dc["intermediate_size"]
    qkv = dc["num_attention_heads"] * dc["head_dim"]
    T += [(D + "pre_conv.conv.weight", (L, dc["codebook_dim"], 3), "w"), (D + "pre_conv.conv.bias", (L,), "bias"),
          (D + "pre_transformer.input_proj.weight", (hs, L), "w"), (D + "pre_transformer.input_proj.bias", (hs,), "bias"),
          (D + "pre_transformer.output_proj.weight", (L, hs), "w"), (D + "pre_transformer.output_proj.bias", (L,), "bias"),
          (D + "pre_transformer.norm.weight", (hs,), "norm")]
    for i in range(dc["num_hidden_layers"]):
        p = f"{D}pre_transformer.layers.{i}."
        T += [(p + "input_layernorm.weight", (hs,), "norm"), (p + "post_attention_layernorm.weight", (hs,), "norm"),
              (p + "self_attn.q_proj.weight", (qkv, hs), "w"), (p + "self_attn.k_proj.weight", (qkv, hs), "w"),
              (p + "self_attn.v_proj.weight", (qkv, hs), "w"), (p + "self_attn.o_proj.weight", (hs, qkv), "w"),
              (p + "mlp.gate_proj.weight", (it, hs), "w"), (p + "mlp.up_proj.weight", (it, hs), "w"),
              (p + "mlp.down_proj.weight", (hs, it), "w"),
              (p + "self_attn_layer_scale.scale", (hs,), "scale"), (p + "mlp_layer_scale.scale", (hs,), "scale")]
    for u in range(len(dc["upsampling_ratios"])):
        p = f"{D}upsample.{u}."
        r = dc["upsampling_ratios"][u]
        T += [(p + "0.conv.weight", (L, L, r), "wt"), (p + "0.conv.bias", (L,), "bias"),
              (p + "1.dwconv.conv.weight", (L, 1, 7), "w"), (p + "1.dwconv.conv.bias", (L,), "bias"),
              (p + "1.norm.weight", (L,), "norm"), (p + "1.norm.bias", (L,), "bias"),
              (p + "1.pwconv1.weight", (4 * L, L), "w"), (p + "1.pwconv1.bias", (4 * L,), "bias"),
              (p + "1.pwconv2.weight", (L, 4 * L), "w"), (p + "1.pwconv2.bias", (L,), "bias"),
              (p + "1.gamma", (L,), "scale")]
    C = dc["decoder_dim"]
    T += [(D + "decoder.0.conv.weight", (C, L, 7), "w"), (D + "decoder.0.conv.bias", (C,), "bias")]
    for b, r in enumerate(dc["upsample_rates"]):
        p = f"{D}decoder.{b + 1}.block."
        ci, co = C >> b, C >> (b + 1)
        T += [(p + "0.alpha", (ci,), "log"), (p + "0.beta", (ci,), "log"),
              (p + "1.conv.weight", (ci, co, 2 * r), "wt"), (p + "1.conv.bias", (co,), "bias")]
        for k in (2, 3, 4):
            T += [(f"{p}{k}.act1.alpha", (co,), "log"), (f"{p}{k}.act1.beta", (co,), "log"),
                  (f"{p}{k}.act2.alpha", (co,), "log"), (f"{p}{k}.act2.beta", (co,), "log"),
                  (f"{p}{k}.conv1.conv.weight", (co, co, 7), "w"), (f"{p}{k}.conv1.conv.bias", (co,), "bias"),
                  (f"{p}{k}.conv2.conv.weight", (co, co, 1), "w"), (f"{p}{k}.conv2.conv.bias", (co,), "bias")]
    nd = len(dc["upsample_rates"])
    cl = C >> nd
    T += [(f"{D}decoder.{nd + 1}.alpha", (cl,), "log"), (f"{D}decoder.{nd + 1}.beta", (cl,), "log"),
          (f"{D}decoder.{nd + 2}.conv.weight", (1, cl, 7), "w"), (f"{D}decoder.{nd + 2}.conv.bias", (1,), "bias")]

    # Mimi encoder (transformers MimiEncoder layer indices: conv, then per ratio [res, elu, conv], elu, conv)
    E = "encoder."
    nf, comp = ec["num_filters"], ec["compress"]
    T += [(E + "encoder.layers.0.conv.weight", (nf, ec["audio_channels"], ec["kernel_size"]), "w"),
          (E + "encoder.layers.0.conv.bias", (nf,), "bias")]
    ch, idx = nf, 1
    for ratio in reversed(ec["upsampling_ratios"]):
        h = ch // comp
        T += [(f"{E}encoder.layers.{idx}.block.1.conv.weight", (h, ch, ec["residual_kernel_size"]), "w"),
              (f"{E}encoder.layers.{idx}.block.1.conv.bias", (h,), "bias"),
              (f"{E}encoder.layers.{idx}.block.3.conv.weight", (ch, h, 1), "w"),
              (f"{E}encoder.layers.{idx}.block.3.conv.bias", (ch,), "bias"),
              (f"{E}encoder.layers.{idx + 2}.conv.weight", (2 * ch, ch, 2 * ratio), "w"),
              (f"{E}encoder.layers.{idx + 2}.conv.bias", (2 * ch,), "bias")]
        ch, idx = 2 * ch, idx + 3
    ehs = ec["hidden_size"]
    T += [(f"{E}encoder.layers.{idx + 1}.conv.weight", (ehs, ch, ec["last_kernel_size"]), "w"),
          (f"{E}encoder.layers.{idx + 1}.conv.bias", (ehs,), "bias")]
    eq = ec["num_attention_heads"] * ec["head_dim"]
    for i in range(ec["num_hidden_layers"]):
        p = f"{E}encoder_transformer.layers.{i}."
        T += [(p + "input_layernorm.weight", (ehs,), "norm"), (p + "input_layernorm.bias", (ehs,), "bias"),
              (p + "post_attention_layernorm.weight", (ehs,), "norm"),
              (p + "post_attention_layernorm.bias", (ehs,), "bias"),
              (p + "self_attn.q_proj.weight", (eq, ehs), "w"), (p + "self_attn.k_proj.weight", (eq, ehs), "w"),
              (p + "self_attn.v_proj.weight", (eq, ehs), "w"), (p + "self_attn.o_proj.weight", (ehs, eq), "w"),
              (p + "mlp.fc1.weight", (ec["intermediate_size"], ehs), "w"),
              (p + "mlp.fc2.weight", (ehs, ec["intermediate_size"]), "w"),
              (p + "self_attn_layer_scale.scale", (ehs,), "scale"), (p + "mlp_layer_scale.scale", (ehs,), "scale")]
    T.append((E + "downsample.conv.weight", (ehs, ehs, 4), "w"))
    cdim = ec["codebook_dim"]
    for q, n in (("semantic", ec["num_semantic_quantizers"]),
                 ("acoustic", ec["num_quantizers"] - ec["num_semantic_quantizers"])):
        p = f"{E}quantizer.{q}_residual_vector_quantizer."
        T += [(p + "input_proj.weight", (cdim, ehs, 1), "w"), (p + "output_proj.weight", (ehs, cdim, 1), "w")]
        for i in range(n):
            T += [(f"{p}layers.{i}.codebook.embed_sum", (ec["codebook_size"], cdim), "emb1"),
                  (f"{p}layers.{i}.codebook.cluster_usage", (ec["codebook_size"],), "usage"),
                  (f"{p}layers.{i}.codebook.initialized", (1,), "one")]
    return T


# ------------------------------------------------------------------------ safetensors writer

def _fan_in(shape, init):
    if init == "wt":  # ConvTranspose1d [in, out, k]
        return shape[0]
    return int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]


def _gen(rng, shape, init, rows=None):
    """float32 values of `init` for `shape` (or `rows` of its first dim)."""
    shp = (rows,) + tuple(shape[1:]) if rows is not None else tuple(shape)
    if init in ("w", "wt"):
        return rng.standard_normal(shp, dtype=np.float32) * np.float32(1 / np.sqrt(_fan_in(shape, init)))
    if init == "emb":
        return rng.standard_normal(shp, dtype=np.float32) * np.float32(1 / np.sqrt(shape[-1]))
    if init == "emb1":
        return rng.standard_normal(shp, dtype=np.float32)
    if init == "norm":
        return 1 + np.float32(0.02) * rng.standard_normal(shp, dtype=np.float32)
    if init in ("bias", "log"):
        return np.float32(0.02) * rng.standard_normal(shp, dtype=np.float32)
    if init == "scale":
        return np.full(shp, 0.01, np.float32)
    if init == "usage":
        return rng.uniform(0.5, 2.0, shp).astype(np.float32)
    if init == "one":
        return np.ones(shp, np.float32)
    raise ValueError(init)


def _bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, round to nearest even."""
    u = x.view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)


def write_safetensors(path: Path, tensors: list, dtype: str, rng, keep_f32=()) -> int:
    """Stream `tensors` [(name, shape, init)] into a safetensors file; returns bytes written.
    dtype 'bf16' | 'f32'; names matching keep_f32 predicates stay F32."""
    tensors = sorted(tensors, key=lambda t: t[0])
    header, off, plan = {}, 0, []
    for name, shape, init in tensors:
        st = "F32" if dtype == "f32" or any(k(name) for k in keep_f32) else "BF16"
        n = int(np.prod(shape)) * (4 if st == "F32" else 2)
        header[name] = {"dtype": st, "shape": list(shape), "data_offsets": [off, off + n]}
        plan.append((name, shape, init, st))
        off += n
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(len(hb).to_bytes(8, "little"))
        f.write(hb)
        for name, shape, init, st in plan:
            rows = shape[0]
            per_row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            step = max(1, (1 << 24) // per_row)  # ~16M values per chunk
            for r0 in range(0, rows, step):
                x = _gen(rng, shape, init, rows=min(step, rows - r0))
                f.write((x if st == "F32" else _bf16(x)).tobytes())
    os.replace(tmp, path)
    return 8 + len(hb) + off


def write_checkpoint(out, size: str = "0.6b", variant: str = "custom_voice", dtype: str = "bf16",
                     seed: int = 0) -> list[str]:
    """Write the random checkpoint into out (created); returns notes (sizes)."""
    out = Path(out)
    (out / "speech_tokenizer").mkdir(parents=True, exist_ok=True)
    notes = []
    if variant == "voice_design" and size == "0.6b":
        notes.append("note: there is no released 0.6B VoiceDesign checkpoint; writing one anyway")
    cfg = make_config(size, variant, dtype)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    (out / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2))
    (out / "speech_tokenizer" / "config.json").write_text(json.dumps(CODEC_CONFIG, indent=2))
    (out / "speech_tokenizer" / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "EncodecFeatureExtractor", "feature_size": 1, "sampling_rate": 24000,
         "padding_side": "right", "padding_value": 0.0, "return_attention_mask": True}, indent=2))
    rng = np.random.default_rng(seed)
    tt = talker_tensors(cfg)
    n_main = write_safetensors(out / "model.safetensors", tt, dtype, rng)
    ct = codec_tensors(CODEC_CONFIG)
    n_codec = write_safetensors(out / "speech_tokenizer" / "model.safetensors", ct, "f32", rng)
    notes.append(f"model.safetensors {n_main / 1e6:.1f} MB ({len(tt)} tensors, "
                 f"{sum(int(np.prod(s)) for _, s, _ in tt) / 1e6:.1f} M params); speech_tokenizer "
                 f"{n_codec / 1e6:.1f} MB ({len(ct)} tensors)")
    return notes


def _byte_symbols() -> list[str]:
    """The byte-level BPE alphabet: byte b -> one printable character (GPT-2 / Qwen2 mapping)."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def write_byte_tokenizer(out) -> None:
    """vocab.json (256 byte tokens + 'assistant', 'user'), empty merges.txt and
    tokenizer_config.json (the special tokens) at the ids config.json names: every text byte is
    one token (prompts ~4x longer than with Qwen's BPE: prefill a little pessimistic)."""
    out = Path(out)
    cfg = json.loads((out / "config.json").read_text())
    vocab = {s: i for i, s in enumerate(_byte_symbols())}
    vocab.update({"assistant": int(cfg["assistant_token_id"]), "user": 872})
    special = {"<|im_start|>": cfg["im_start_token_id"], "<|im_end|>": cfg["im_end_token_id"],
               "<tts_pad>": cfg["tts_pad_token_id"], "<tts_text_bos>": cfg["tts_bos_token_id"],
               "<tts_text_eod>": cfg["tts_eos_token_id"]}
    vocab.update({k: int(v) for k, v in special.items()})
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n")
    (out / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {
        str(v): {"content": k, "special": True, "normalized": False} for k, v in special.items()}}))
