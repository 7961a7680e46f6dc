"""GGUF metadata key names of the Qwen3-TTS layout (qwentts.cpp convert.py), in one place.

Two files: architecture `qwen3-tts` (talker + code predictor [+ speaker encoder] + text tokenizer)
and `qwen3-tts-tokenizer` (the 12 Hz codec: decoder + encoder).

The scalar keys are declarative rows (key, value type, where the value comes from in the Hugging
Face config). `quantize` writes them from the config; the loaders read the same names back. Value
types: "u32" UINT32, "f32" FLOAT32, "str" STRING, "bool" BOOL, "i32[]" ARRAY[INT32].
A source path is dotted through the config dict; a row with a default is written with it when the
config lacks the value (some released configs omit fields the official code gives defaults to).
"""
from __future__ import annotations

import gguf

ARCH_MAIN = "qwen3-tts"
ARCH_CODEC = "qwen3-tts-tokenizer"
TOKENIZER_TYPE_12HZ = "qwen3_tts_tokenizer_12hz"
HF_MODEL_TYPE = "qwen3_tts"            # config.json model_type of a Qwen3-TTS checkpoint

# GGUF container facts come from gguf-py (the file format's own Python package): magic, value
# types (gguf.GGUFValueType), tensor types (gguf.GGMLQuantizationType) and their block sizes.
GGUF_MAGIC = gguf.GGUF_MAGIC.to_bytes(4, "little")   # b"GGUF"
GGUF_VERSIONS = (2, gguf.GGUF_VERSION)               # the versions readers accept
GGUF_DEFAULT_ALIGNMENT = gguf.GGUF_DEFAULT_ALIGNMENT
GGML_QUANT_SIZES = {t.name: gguf.GGML_QUANT_SIZES[t] for t in gguf.GGMLQuantizationType
                    if t in gguf.GGML_QUANT_SIZES}  # type name -> (elements per block, bytes per block)

GENERAL_ARCHITECTURE = "general.architecture"
GENERAL_ALIGNMENT = "general.alignment"            # UINT32; 32 when absent (GGUF spec)
GENERAL_NAME = "general.name"
GENERAL_FILE_TYPE = "general.file_type"            # STRING, as qwentts.cpp's quantizer writes it
GENERAL_QUANTIZATION_VERSION = "general.quantization_version"
QUANTIZATION_VERSION = 2

_M = ARCH_MAIN + "."
_C = ARCH_CODEC + "."
_T = "talker_config."
_P = "talker_config.code_predictor_config."

# ------------------------------------------------------------------------- qwen3-tts (talker file)
MAIN_NAME = GENERAL_NAME
MAIN_TOKENIZER_TYPE = _M + "tokenizer_type"
MAIN_MODEL_SIZE = _M + "model_size"
MAIN_MODEL_TYPE = _M + "model_type"
NUM_CODE_GROUPS = _M + "num_code_groups"

MAIN_KV: list[tuple[str, str, str]] = [
    (MAIN_TOKENIZER_TYPE, "str", "tokenizer_type"),
    (MAIN_MODEL_SIZE, "str", "tts_model_size"),
    (MAIN_MODEL_TYPE, "str", "tts_model_type"),
    (NUM_CODE_GROUPS, "u32", _T + "num_code_groups"),
    (_M + "talker.embedding_length", "u32", _T + "hidden_size"),
    (_M + "talker.feed_forward_length", "u32", _T + "intermediate_size"),
    (_M + "talker.block_count", "u32", _T + "num_hidden_layers"),
    (_M + "talker.attention.head_count", "u32", _T + "num_attention_heads"),
    (_M + "talker.attention.head_count_kv", "u32", _T + "num_key_value_heads"),
    (_M + "talker.attention.key_length", "u32", _T + "head_dim"),
    (_M + "talker.vocab_size", "u32", _T + "vocab_size"),
    (_M + "talker.text_vocab_size", "u32", _T + "text_vocab_size"),
    (_M + "talker.text_hidden_size", "u32", _T + "text_hidden_size"),
    (_M + "talker.context_length", "u32", _T + "max_position_embeddings"),
    (_M + "talker.rope.freq_base", "f32", _T + "rope_theta"),
    (_M + "talker.attention.layer_norm_rms_epsilon", "f32", _T + "rms_norm_eps"),
    (_M + "talker.position_id_per_seconds", "u32", _T + "position_id_per_seconds"),
]
# written only when talker_config.rope_scaling has an mrope_section
TALKER_MROPE_SECTION = _M + "talker.rope.mrope_section"      # i32[]
TALKER_MROPE_INTERLEAVED = _M + "talker.mrope_interleaved"   # bool

CODE_PRED_KV: list[tuple[str, str, str]] = [
    (_M + "code_pred.embedding_length", "u32", _P + "hidden_size"),
    (_M + "code_pred.feed_forward_length", "u32", _P + "intermediate_size"),
    (_M + "code_pred.block_count", "u32", _P + "num_hidden_layers"),
    (_M + "code_pred.attention.head_count", "u32", _P + "num_attention_heads"),
    (_M + "code_pred.attention.head_count_kv", "u32", _P + "num_key_value_heads"),
    (_M + "code_pred.attention.key_length", "u32", _P + "head_dim"),
    (_M + "code_pred.vocab_size", "u32", _P + "vocab_size"),
    (_M + "code_pred.context_length", "u32", _P + "max_position_embeddings"),
    (_M + "code_pred.rope.freq_base", "f32", _P + "rope_theta"),
    (_M + "code_pred.attention.layer_norm_rms_epsilon", "f32", _P + "rms_norm_eps"),
]
# only when config.json has speaker_encoder_config
SPK_ENC_KV: list[tuple[str, str, str]] = [
    (_M + "spk_enc.embedding_length", "u32", "speaker_encoder_config.enc_dim"),
    (_M + "spk_enc.sample_rate", "u32", "speaker_encoder_config.sample_rate"),
]
CODEC_IDS_KV: list[tuple[str, str, str]] = [
    (_M + "codec.pad_id", "u32", _T + "codec_pad_id"),
    (_M + "codec.bos_id", "u32", _T + "codec_bos_id"),
    (_M + "codec.eos_id", "u32", _T + "codec_eos_token_id"),
    (_M + "codec.think_id", "u32", _T + "codec_think_id"),
    (_M + "codec.nothink_id", "u32", _T + "codec_nothink_id"),
    (_M + "codec.think_bos_id", "u32", _T + "codec_think_bos_id"),
    (_M + "codec.think_eos_id", "u32", _T + "codec_think_eos_id"),
]
LANGUAGE_NAMES = _M + "codec.language_names"      # str[]   (from talker_config.codec_language_id)
LANGUAGE_IDS = _M + "codec.language_ids"          # i32[]
SPEAKER_NAMES = _M + "codec.speaker_names"        # str[]   (from talker_config.spk_id; CustomVoice)
SPEAKER_IDS = _M + "codec.speaker_ids"            # i32[]
SPEAKER_DIALECTS = _M + "codec.speaker_dialects"  # str[]   ("" = none; talker_config.spk_is_dialect)

# The Qwen2/Qwen3 text-token ids the prompt template uses, for the released vocabulary. A
# checkpoint's config (HF: *_token_id, GGUF: text.*_id) overrides them; "user" and "\n" are not in
# any config and are looked up in the tokenizer when the checkpoint has one.
QWEN_TEXT_IDS = dict(im_start=151644, im_end=151645, tts_pad=151671, tts_bos=151672, tts_eos=151673,
                     assistant=77091, user=872, newline=198)

# (key, type, config.json path, default)
TEXT_IDS_KV: list[tuple[str, str, str, int]] = [
    (_M + "text.im_start_id", "u32", "im_start_token_id", QWEN_TEXT_IDS["im_start"]),
    (_M + "text.im_end_id", "u32", "im_end_token_id", QWEN_TEXT_IDS["im_end"]),
    (_M + "text.tts_pad_id", "u32", "tts_pad_token_id", QWEN_TEXT_IDS["tts_pad"]),
    (_M + "text.tts_bos_id", "u32", "tts_bos_token_id", QWEN_TEXT_IDS["tts_bos"]),
    (_M + "text.tts_eos_id", "u32", "tts_eos_token_id", QWEN_TEXT_IDS["tts_eos"]),
    # an edgetts key (qwentts.cpp does not write it; readers then ask the tokenizer)
    ("edgetts.text.assistant_id", "u32", "assistant_token_id", QWEN_TEXT_IDS["assistant"]),
]
TEXT_ASSISTANT_ID = TEXT_IDS_KV[-1][0]
# generation_config.json -> generation.* (each written only when present)
GENERATION_KV: list[tuple[str, str, str]] = [
    ("generation.do_sample", "bool", "do_sample"),
    ("generation.top_k", "u32", "top_k"),
    ("generation.top_p", "f32", "top_p"),
    ("generation.temperature", "f32", "temperature"),
    ("generation.repetition_penalty", "f32", "repetition_penalty"),
    ("generation.subtalker_do_sample", "bool", "subtalker_dosample"),
    ("generation.subtalker_top_k", "u32", "subtalker_top_k"),
    ("generation.subtalker_top_p", "f32", "subtalker_top_p"),
    ("generation.subtalker_temperature", "f32", "subtalker_temperature"),
    ("generation.max_new_tokens", "u32", "max_new_tokens"),
]

# text tokenizer (Qwen2 byte-level BPE), llama.cpp convention
TOKENIZER_MODEL = "tokenizer.ggml.model"            # "gpt2"
TOKENIZER_TOKENS = "tokenizer.ggml.tokens"          # str[]
TOKENIZER_TOKEN_TYPE = "tokenizer.ggml.token_type"  # i32[]: gguf.TokenType (normal, user-defined, unused)
TOKENIZER_MERGES = "tokenizer.ggml.merges"          # str[] "a b"
TOKENIZER_EOS_ID = "tokenizer.ggml.eos_token_id"    # u32
TOKEN_TYPE_NORMAL = int(gguf.TokenType.NORMAL)
TOKEN_TYPE_CONTROL = int(gguf.TokenType.CONTROL)
TOKEN_TYPE_USER_DEFINED = int(gguf.TokenType.USER_DEFINED)
TOKEN_TYPE_UNUSED = int(gguf.TokenType.UNUSED)
QWEN2_ENDOFTEXT_ID = 151643   # what qwentts.cpp writes as eos when <|endoftext|> is not in the vocab

# --------------------------------------------------------------- qwen3-tts-tokenizer (codec file)
_D = "decoder_config."
_E = "encoder_config."
CODEC_NAME_12HZ = "Qwen3-TTS-Tokenizer-12Hz"
ENCODER_VALID_NUM_QUANTIZERS = _C + "encoder_valid_num_quantizers"
DECODER_CODEBOOK_DIM_INTERNAL = _C + "decoder.codebook_dim_internal"   # width of the stored codebooks

CODEC_KV: list[tuple[str, str, str, object]] = [
    (_C + "input_sample_rate", "u32", "input_sample_rate", None),
    (_C + "output_sample_rate", "u32", "output_sample_rate", None),
    (_C + "decode_upsample_rate", "u32", "decode_upsample_rate", None),
    (_C + "encode_downsample_rate", "u32", "encode_downsample_rate", None),
    (ENCODER_VALID_NUM_QUANTIZERS, "u32", "encoder_valid_num_quantizers", None),
    (_C + "decoder.latent_dim", "u32", _D + "latent_dim", None),
    (_C + "decoder.codebook_dim", "u32", _D + "codebook_dim", None),
    (_C + "decoder.codebook_size", "u32", _D + "codebook_size", None),
    (_C + "decoder.decoder_dim", "u32", _D + "decoder_dim", None),
    (_C + "decoder.hidden_size", "u32", _D + "hidden_size", None),
    (_C + "decoder.intermediate_size", "u32", _D + "intermediate_size", None),
    (_C + "decoder.head_dim", "u32", _D + "head_dim", None),
    (_C + "decoder.num_attention_heads", "u32", _D + "num_attention_heads", None),
    (_C + "decoder.num_key_value_heads", "u32", _D + "num_key_value_heads", None),
    (_C + "decoder.num_hidden_layers", "u32", _D + "num_hidden_layers", None),
    (_C + "decoder.num_quantizers", "u32", _D + "num_quantizers", None),
    (_C + "decoder.num_semantic_quantizers", "u32", _D + "num_semantic_quantizers", 1),
    (_C + "decoder.rms_norm_eps", "f32", _D + "rms_norm_eps", None),
    (_C + "decoder.rope_theta", "f32", _D + "rope_theta", None),
    (_C + "decoder.sliding_window", "u32", _D + "sliding_window", None),
    (_C + "decoder.layer_scale_initial_scale", "f32", _D + "layer_scale_initial_scale", None),
    (_C + "decoder.upsample_rates", "i32[]", _D + "upsample_rates", None),
    (_C + "decoder.upsampling_ratios", "i32[]", _D + "upsampling_ratios", None),
    # default: the official config class's default equals codebook_dim (filled in by the writer)
    (_C + "decoder.vector_quantization_hidden_dim", "u32", _D + "vector_quantization_hidden_dimension", "codebook_dim"),
    (DECODER_CODEBOOK_DIM_INTERNAL, "u32", "", None),   # from the codebook tensors' width
    (_C + "encoder.num_filters", "u32", _E + "num_filters", None),
    (_C + "encoder.kernel_size", "u32", _E + "kernel_size", None),
    (_C + "encoder.last_kernel_size", "u32", _E + "last_kernel_size", None),
    (_C + "encoder.residual_kernel_size", "u32", _E + "residual_kernel_size", None),
    (_C + "encoder.num_residual_layers", "u32", _E + "num_residual_layers", None),
    (_C + "encoder.dilation_growth_rate", "u32", _E + "dilation_growth_rate", None),
    (_C + "encoder.compress", "u32", _E + "compress", None),
    (_C + "encoder.upsampling_ratios", "i32[]", _E + "upsampling_ratios", None),
    (_C + "encoder.hidden_size", "u32", _E + "hidden_size", None),
    (_C + "encoder.intermediate_size", "u32", _E + "intermediate_size", None),
    (_C + "encoder.head_dim", "u32", _E + "head_dim", None),
    (_C + "encoder.num_attention_heads", "u32", _E + "num_attention_heads", None),
    (_C + "encoder.num_key_value_heads", "u32", _E + "num_key_value_heads", None),
    (_C + "encoder.num_hidden_layers", "u32", _E + "num_hidden_layers", None),
    (_C + "encoder.norm_eps", "f32", _E + "norm_eps", None),
    (_C + "encoder.rope_theta", "f32", _E + "rope_theta", None),
    (_C + "encoder.layer_scale_initial_scale", "f32", _E + "layer_scale_initial_scale", None),
    (_C + "encoder.codebook_dim", "u32", _E + "codebook_dim", None),
    (_C + "encoder.codebook_size", "u32", _E + "codebook_size", None),
    (_C + "encoder.num_quantizers", "u32", _E + "num_quantizers", None),
    (_C + "encoder.num_semantic_quantizers", "u32", _E + "num_semantic_quantizers", None),
    (_C + "encoder.vector_quantization_hidden_dim", "u32", _E + "vector_quantization_hidden_dimension", None),
]

# ------------------------------------------------------------------ edgetts additions (both files)
# Which stored type each tensor role got (`edgetts quantize`); qwentts.cpp ignores these keys.
EDGETTS_QUANT_POLICY = "edgetts.quantization.policy"        # STRING, one line, human readable
EDGETTS_QUANT_ROLE = "edgetts.quantization.role."           # + role name -> STRING type name
EDGETTS_QUANT_FALLBACK = "edgetts.quantization.fallback_f16"  # UINT32: tensors sent to F16 (row % 32)
EDGETTS_QUANT_SOURCE = "edgetts.quantization.source"        # STRING: the SRC the files came from
EDGETTS_VERSION = "edgetts.version"                         # STRING

# output file names (qwentts.cpp naming)
TALKER_FILE = "qwen-talker-{size}-{kind}-{qtype}.gguf"
CODEC_FILE = "qwen-tokenizer-12hz-{qtype}.gguf"
