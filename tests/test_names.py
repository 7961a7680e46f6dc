"""HF <-> GGUF tensor names (edgetts.gguf.names) against the qwentts.cpp layout.

The expected key names/types and tensor names/ggml shapes below are copied from what qwentts.cpp's
own convert.py writes for the tiny fixture (shared/research/qwentts_gguf_listing_tiny.txt).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgetts import weights as W
from edgetts.gguf import names as N
from quantize import plan

from conftest import FIXTURES


def tensors(block: str) -> dict[str, list[int]]:
    """'name 64x256' lines -> {name: ggml ne (innermost first)}."""
    out = {}
    for line in block.strip().splitlines():
        name, ne = line.split()
        out[name] = [int(x) for x in ne.split("x")]
    return out


def tiny_or_skip(name: str = "tiny") -> Path:
    d = FIXTURES / name
    if not (d / "model.safetensors").is_file():
        pytest.skip(f"fixture {name} not present")
    return d


def test_talker_names_match_qwentts():
    ck = W.open(tiny_or_skip())
    view = N.GGUFView(ck.main)
    want = tensors(TALKER_TENSORS)
    assert sorted(view.names()) == sorted(want)
    for name, ne in want.items():
        assert list(reversed(view[name].shape)) == ne, name


def test_codec_names_match_qwentts():
    ck = W.open(tiny_or_skip())
    view = N.GGUFView(ck.codec)
    want = tensors(CODEC_TENSORS)
    got = set(view.names())
    # qwentts.cpp keeps only encoder_valid_num_quantizers encoder codebooks; the view has them all
    extra = got - set(want)
    assert all(n.startswith("tok_enc.vq_acoustic.") and n.endswith(".codebook") for n in extra), extra
    assert set(want) <= got
    for name, ne in want.items():
        assert list(reversed(view[name].shape)) == ne, name


@pytest.mark.parametrize("fixture", ["tiny", "tiny_base", "tiny_proj", "tiny_vd"])
def test_every_hf_tensor_is_mapped_or_ignored(fixture):
    ck = W.open(tiny_or_skip(fixture))
    for w in (ck.main, ck.codec):
        for n in (w.names() if w is not None else []):
            assert (N.hf_to_gguf(n) is not None or N.is_ignored(n) or N.derived_codebooks([n])), n


def test_speaker_encoder_and_mtp_names():
    assert N.hf_to_gguf("speaker_encoder.blocks.0.conv.weight") == "spk_enc.conv0.weight"
    assert N.hf_to_gguf("speaker_encoder.blocks.2.res2net_block.blocks.5.conv.bias") == "spk_enc.blk.2.res2net.5.bias"
    assert N.hf_to_gguf("speaker_encoder.blocks.3.se_block.conv2.weight") == "spk_enc.blk.3.se.conv2.weight"
    assert N.hf_to_gguf("speaker_encoder.asp.tdnn.conv.weight") == "spk_enc.asp.tdnn.weight"
    assert N.hf_to_gguf("talker.code_predictor.small_to_mtp_projection.weight") == "code_pred.mtp_proj.weight"
    assert N.hf_to_gguf("decoder.decoder.3.block.4.conv2.conv.bias") == "tok_dec.dec.3.res.2.conv2.bias"
    assert N.hf_to_gguf("decoder.decoder.3.block.1.conv.weight") == "tok_dec.dec.3.conv_t.weight"
    assert N.hf_to_gguf("decoder.decoder.5.alpha") == "tok_dec.dec.5.snake.alpha"
    assert N.hf_to_gguf("something.else") is None


def test_derived_codebook_values():
    ck = W.open(tiny_or_skip())
    view = N.GGUFView(ck.codec)
    num = ck.codec["decoder.quantizer.rvq_rest.vq.layers.1._codebook.embedding_sum"].numpy()
    use = ck.codec["decoder.quantizer.rvq_rest.vq.layers.1._codebook.cluster_usage"].numpy()
    want = num / np.maximum(use, 1e-5)[:, None]
    got = view["tok_dec.vq_rest.1.codebook"]
    assert got.dtype == "F32"
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("name,ndim,role", [
    ("talker.blk.3.attn_q.weight", 2, "linear"),
    ("code_pred.blk.0.ffn_down.weight", 2, "linear"),
    ("talker.text_proj.fc2.weight", 2, "linear"),
    ("code_pred.mtp_proj.weight", 2, "linear"),
    ("talker.text_embd.weight", 2, "embed"),
    ("code_pred.codec_embd.7.weight", 2, "embed"),
    ("talker.codec_head.weight", 2, "head"),
    ("code_pred.lm_head.14.weight", 2, "head"),
    ("talker.blk.0.attn_norm.weight", 1, "float"),
    ("talker.text_proj.fc1.bias", 1, "float"),
    ("tok_dec.vq_first.0.codebook", 2, "float"),
    ("tok_enc.vq_semantic.input_proj.weight", 3, "float"),
    ("tok_dec.pre_tfm.blk.1.attn_v.weight", 2, "codec_linear"),
    ("tok_dec.pre_tfm.input_proj.weight", 2, "codec_linear"),
    ("tok_dec.upsample.0.pwconv1.weight", 2, "codec_linear"),
    ("tok_enc.blk.0.ffn_up.weight", 2, "codec_linear"),
    ("tok_dec.dec.1.conv_t.weight", 3, "conv"),
    ("tok_enc.res.4.blk.1.weight", 3, "conv"),
    ("tok_dec.pre_tfm.blk.0.attn_scale", 1, "float"),
    ("spk_enc.blk.1.tdnn1.weight", 3, "conv"),
])
def test_roles(name, ndim, role):
    assert plan.role_of(name, ndim) == role


def test_role_types():
    assert plan.role_types("q4_0") == {"linear": "Q4_0", "embed": "Q8_0", "head": "Q8_0",
                                       "codec_linear": "F16", "conv": "F16", "float": "F32"}
    assert plan.role_types("q8_0")["embed"] == "Q8_0"
    assert plan.role_types("f16")["head"] == "F16"
    assert set(plan.role_types("f32").values()) == {"F32"}
    # rows that are not a multiple of 32 cannot take a block type
    assert plan.choose("talker.blk.0.ffn_down.weight", (64, 40), "q4_0") == ("linear", "F16", True)
    assert plan.choose("talker.blk.0.ffn_down.weight", (64, 40), "f32") == ("linear", "F32", False)
    assert plan.choose("talker.blk.0.ffn_down.weight", (64, 96), "q4_0") == ("linear", "Q4_0", False)


# ------------------------------------------------------------------------ expected layout (data)
TALKER_KEYS = {
    'general.architecture': 'STRING',
    'general.name': 'STRING',
    'qwen3-tts.tokenizer_type': 'STRING',
    'qwen3-tts.model_size': 'STRING',
    'qwen3-tts.model_type': 'STRING',
    'qwen3-tts.num_code_groups': 'UINT32',
    'qwen3-tts.talker.embedding_length': 'UINT32',
    'qwen3-tts.talker.feed_forward_length': 'UINT32',
    'qwen3-tts.talker.block_count': 'UINT32',
    'qwen3-tts.talker.attention.head_count': 'UINT32',
    'qwen3-tts.talker.attention.head_count_kv': 'UINT32',
    'qwen3-tts.talker.attention.key_length': 'UINT32',
    'qwen3-tts.talker.vocab_size': 'UINT32',
    'qwen3-tts.talker.text_vocab_size': 'UINT32',
    'qwen3-tts.talker.text_hidden_size': 'UINT32',
    'qwen3-tts.talker.context_length': 'UINT32',
    'qwen3-tts.talker.rope.freq_base': 'FLOAT32',
    'qwen3-tts.talker.attention.layer_norm_rms_epsilon': 'FLOAT32',
    'qwen3-tts.talker.position_id_per_seconds': 'UINT32',
    'qwen3-tts.talker.rope.mrope_section': 'ARRAY[INT32]',
    'qwen3-tts.talker.mrope_interleaved': 'BOOL',
    'qwen3-tts.code_pred.embedding_length': 'UINT32',
    'qwen3-tts.code_pred.feed_forward_length': 'UINT32',
    'qwen3-tts.code_pred.block_count': 'UINT32',
    'qwen3-tts.code_pred.attention.head_count': 'UINT32',
    'qwen3-tts.code_pred.attention.head_count_kv': 'UINT32',
    'qwen3-tts.code_pred.attention.key_length': 'UINT32',
    'qwen3-tts.code_pred.vocab_size': 'UINT32',
    'qwen3-tts.code_pred.context_length': 'UINT32',
    'qwen3-tts.code_pred.rope.freq_base': 'FLOAT32',
    'qwen3-tts.code_pred.attention.layer_norm_rms_epsilon': 'FLOAT32',
    'qwen3-tts.spk_enc.embedding_length': 'UINT32',
    'qwen3-tts.spk_enc.sample_rate': 'UINT32',
    'qwen3-tts.codec.pad_id': 'UINT32',
    'qwen3-tts.codec.bos_id': 'UINT32',
    'qwen3-tts.codec.eos_id': 'UINT32',
    'qwen3-tts.codec.think_id': 'UINT32',
    'qwen3-tts.codec.nothink_id': 'UINT32',
    'qwen3-tts.codec.think_bos_id': 'UINT32',
    'qwen3-tts.codec.think_eos_id': 'UINT32',
    'qwen3-tts.codec.language_names': 'ARRAY[STRING]',
    'qwen3-tts.codec.language_ids': 'ARRAY[INT32]',
    'qwen3-tts.codec.speaker_names': 'ARRAY[STRING]',
    'qwen3-tts.codec.speaker_ids': 'ARRAY[INT32]',
    'qwen3-tts.codec.speaker_dialects': 'ARRAY[STRING]',
    'qwen3-tts.text.im_start_id': 'UINT32',
    'qwen3-tts.text.im_end_id': 'UINT32',
    'qwen3-tts.text.tts_pad_id': 'UINT32',
    'qwen3-tts.text.tts_bos_id': 'UINT32',
    'qwen3-tts.text.tts_eos_id': 'UINT32',
    'tokenizer.ggml.model': 'STRING',
    'tokenizer.ggml.tokens': 'ARRAY[STRING]',
    'tokenizer.ggml.token_type': 'ARRAY[INT32]',
    'tokenizer.ggml.merges': 'ARRAY[STRING]',
    'tokenizer.ggml.eos_token_id': 'UINT32',
}
TALKER_TENSORS = """
code_pred.lm_head.0.weight 64x256
code_pred.lm_head.1.weight 64x256
code_pred.lm_head.2.weight 64x256
code_pred.codec_embd.0.weight 64x256
code_pred.codec_embd.1.weight 64x256
code_pred.codec_embd.2.weight 64x256
code_pred.blk.0.attn_norm.weight 64
code_pred.blk.0.ffn_down.weight 96x64
code_pred.blk.0.ffn_gate.weight 64x96
code_pred.blk.0.ffn_up.weight 64x96
code_pred.blk.0.ffn_norm.weight 64
code_pred.blk.0.attn_k_norm.weight 16
code_pred.blk.0.attn_k.weight 64x32
code_pred.blk.0.attn_output.weight 64x64
code_pred.blk.0.attn_q_norm.weight 16
code_pred.blk.0.attn_q.weight 64x64
code_pred.blk.0.attn_v.weight 64x32
code_pred.blk.1.attn_norm.weight 64
code_pred.blk.1.ffn_down.weight 96x64
code_pred.blk.1.ffn_gate.weight 64x96
code_pred.blk.1.ffn_up.weight 64x96
code_pred.blk.1.ffn_norm.weight 64
code_pred.blk.1.attn_k_norm.weight 16
code_pred.blk.1.attn_k.weight 64x32
code_pred.blk.1.attn_output.weight 64x64
code_pred.blk.1.attn_q_norm.weight 16
code_pred.blk.1.attn_q.weight 64x64
code_pred.blk.1.attn_v.weight 64x32
code_pred.output_norm.weight 64
talker.codec_head.weight 64x1280
talker.codec_embd.weight 64x1280
talker.blk.0.attn_norm.weight 64
talker.blk.0.ffn_down.weight 128x64
talker.blk.0.ffn_gate.weight 64x128
talker.blk.0.ffn_up.weight 64x128
talker.blk.0.ffn_norm.weight 64
talker.blk.0.attn_k_norm.weight 16
talker.blk.0.attn_k.weight 64x32
talker.blk.0.attn_output.weight 64x64
talker.blk.0.attn_q_norm.weight 16
talker.blk.0.attn_q.weight 64x64
talker.blk.0.attn_v.weight 64x32
talker.blk.1.attn_norm.weight 64
talker.blk.1.ffn_down.weight 128x64
talker.blk.1.ffn_gate.weight 64x128
talker.blk.1.ffn_up.weight 64x128
talker.blk.1.ffn_norm.weight 64
talker.blk.1.attn_k_norm.weight 16
talker.blk.1.attn_k.weight 64x32
talker.blk.1.attn_output.weight 64x64
talker.blk.1.attn_q_norm.weight 16
talker.blk.1.attn_q.weight 64x64
talker.blk.1.attn_v.weight 64x32
talker.output_norm.weight 64
talker.text_embd.weight 96x512
talker.text_proj.fc1.bias 96
talker.text_proj.fc1.weight 96x96
talker.text_proj.fc2.bias 64
talker.text_proj.fc2.weight 96x64
"""
CODEC_KEYS = {
    'general.architecture': 'STRING',
    'general.name': 'STRING',
    'qwen3-tts-tokenizer.input_sample_rate': 'UINT32',
    'qwen3-tts-tokenizer.output_sample_rate': 'UINT32',
    'qwen3-tts-tokenizer.decode_upsample_rate': 'UINT32',
    'qwen3-tts-tokenizer.encode_downsample_rate': 'UINT32',
    'qwen3-tts-tokenizer.encoder_valid_num_quantizers': 'UINT32',
    'qwen3-tts-tokenizer.decoder.latent_dim': 'UINT32',
    'qwen3-tts-tokenizer.decoder.codebook_dim': 'UINT32',
    'qwen3-tts-tokenizer.decoder.codebook_size': 'UINT32',
    'qwen3-tts-tokenizer.decoder.decoder_dim': 'UINT32',
    'qwen3-tts-tokenizer.decoder.hidden_size': 'UINT32',
    'qwen3-tts-tokenizer.decoder.intermediate_size': 'UINT32',
    'qwen3-tts-tokenizer.decoder.head_dim': 'UINT32',
    'qwen3-tts-tokenizer.decoder.num_attention_heads': 'UINT32',
    'qwen3-tts-tokenizer.decoder.num_key_value_heads': 'UINT32',
    'qwen3-tts-tokenizer.decoder.num_hidden_layers': 'UINT32',
    'qwen3-tts-tokenizer.decoder.num_quantizers': 'UINT32',
    'qwen3-tts-tokenizer.decoder.num_semantic_quantizers': 'UINT32',
    'qwen3-tts-tokenizer.decoder.rms_norm_eps': 'FLOAT32',
    'qwen3-tts-tokenizer.decoder.rope_theta': 'FLOAT32',
    'qwen3-tts-tokenizer.decoder.sliding_window': 'UINT32',
    'qwen3-tts-tokenizer.decoder.layer_scale_initial_scale': 'FLOAT32',
    'qwen3-tts-tokenizer.decoder.upsample_rates': 'ARRAY[INT32]',
    'qwen3-tts-tokenizer.decoder.upsampling_ratios': 'ARRAY[INT32]',
    'qwen3-tts-tokenizer.decoder.vector_quantization_hidden_dim': 'UINT32',
    'qwen3-tts-tokenizer.decoder.codebook_dim_internal': 'UINT32',
    'qwen3-tts-tokenizer.encoder.num_filters': 'UINT32',
    'qwen3-tts-tokenizer.encoder.kernel_size': 'UINT32',
    'qwen3-tts-tokenizer.encoder.last_kernel_size': 'UINT32',
    'qwen3-tts-tokenizer.encoder.residual_kernel_size': 'UINT32',
    'qwen3-tts-tokenizer.encoder.num_residual_layers': 'UINT32',
    'qwen3-tts-tokenizer.encoder.dilation_growth_rate': 'UINT32',
    'qwen3-tts-tokenizer.encoder.compress': 'UINT32',
    'qwen3-tts-tokenizer.encoder.upsampling_ratios': 'ARRAY[INT32]',
    'qwen3-tts-tokenizer.encoder.hidden_size': 'UINT32',
    'qwen3-tts-tokenizer.encoder.intermediate_size': 'UINT32',
    'qwen3-tts-tokenizer.encoder.head_dim': 'UINT32',
    'qwen3-tts-tokenizer.encoder.num_attention_heads': 'UINT32',
    'qwen3-tts-tokenizer.encoder.num_key_value_heads': 'UINT32',
    'qwen3-tts-tokenizer.encoder.num_hidden_layers': 'UINT32',
    'qwen3-tts-tokenizer.encoder.norm_eps': 'FLOAT32',
    'qwen3-tts-tokenizer.encoder.rope_theta': 'FLOAT32',
    'qwen3-tts-tokenizer.encoder.layer_scale_initial_scale': 'FLOAT32',
    'qwen3-tts-tokenizer.encoder.codebook_dim': 'UINT32',
    'qwen3-tts-tokenizer.encoder.codebook_size': 'UINT32',
    'qwen3-tts-tokenizer.encoder.num_quantizers': 'UINT32',
    'qwen3-tts-tokenizer.encoder.num_semantic_quantizers': 'UINT32',
    'qwen3-tts-tokenizer.encoder.vector_quantization_hidden_dim': 'UINT32',
}
CODEC_TENSORS = """
tok_dec.dec.0.conv.bias 64
tok_dec.dec.0.conv.weight 7x48x64
tok_dec.dec.1.snake.alpha 64
tok_dec.dec.1.snake.beta 64
tok_dec.dec.1.conv_t.bias 32
tok_dec.dec.1.conv_t.weight 16x32x64
tok_dec.dec.1.res.0.act1.alpha 32
tok_dec.dec.1.res.0.act1.beta 32
tok_dec.dec.1.res.0.act2.alpha 32
tok_dec.dec.1.res.0.act2.beta 32
tok_dec.dec.1.res.0.conv1.bias 32
tok_dec.dec.1.res.0.conv1.weight 7x32x32
tok_dec.dec.1.res.0.conv2.bias 32
tok_dec.dec.1.res.0.conv2.weight 1x32x32
tok_dec.dec.1.res.1.act1.alpha 32
tok_dec.dec.1.res.1.act1.beta 32
tok_dec.dec.1.res.1.act2.alpha 32
tok_dec.dec.1.res.1.act2.beta 32
tok_dec.dec.1.res.1.conv1.bias 32
tok_dec.dec.1.res.1.conv1.weight 7x32x32
tok_dec.dec.1.res.1.conv2.bias 32
tok_dec.dec.1.res.1.conv2.weight 1x32x32
tok_dec.dec.1.res.2.act1.alpha 32
tok_dec.dec.1.res.2.act1.beta 32
tok_dec.dec.1.res.2.act2.alpha 32
tok_dec.dec.1.res.2.act2.beta 32
tok_dec.dec.1.res.2.conv1.bias 32
tok_dec.dec.1.res.2.conv1.weight 7x32x32
tok_dec.dec.1.res.2.conv2.bias 32
tok_dec.dec.1.res.2.conv2.weight 1x32x32
tok_dec.dec.2.snake.alpha 32
tok_dec.dec.2.snake.beta 32
tok_dec.dec.2.conv_t.bias 16
tok_dec.dec.2.conv_t.weight 10x16x32
tok_dec.dec.2.res.0.act1.alpha 16
tok_dec.dec.2.res.0.act1.beta 16
tok_dec.dec.2.res.0.act2.alpha 16
tok_dec.dec.2.res.0.act2.beta 16
tok_dec.dec.2.res.0.conv1.bias 16
tok_dec.dec.2.res.0.conv1.weight 7x16x16
tok_dec.dec.2.res.0.conv2.bias 16
tok_dec.dec.2.res.0.conv2.weight 1x16x16
tok_dec.dec.2.res.1.act1.alpha 16
tok_dec.dec.2.res.1.act1.beta 16
tok_dec.dec.2.res.1.act2.alpha 16
tok_dec.dec.2.res.1.act2.beta 16
tok_dec.dec.2.res.1.conv1.bias 16
tok_dec.dec.2.res.1.conv1.weight 7x16x16
tok_dec.dec.2.res.1.conv2.bias 16
tok_dec.dec.2.res.1.conv2.weight 1x16x16
tok_dec.dec.2.res.2.act1.alpha 16
tok_dec.dec.2.res.2.act1.beta 16
tok_dec.dec.2.res.2.act2.alpha 16
tok_dec.dec.2.res.2.act2.beta 16
tok_dec.dec.2.res.2.conv1.bias 16
tok_dec.dec.2.res.2.conv1.weight 7x16x16
tok_dec.dec.2.res.2.conv2.bias 16
tok_dec.dec.2.res.2.conv2.weight 1x16x16
tok_dec.dec.3.snake.alpha 16
tok_dec.dec.3.snake.beta 16
tok_dec.dec.3.conv_t.bias 8
tok_dec.dec.3.conv_t.weight 8x8x16
tok_dec.dec.3.res.0.act1.alpha 8
tok_dec.dec.3.res.0.act1.beta 8
tok_dec.dec.3.res.0.act2.alpha 8
tok_dec.dec.3.res.0.act2.beta 8
tok_dec.dec.3.res.0.conv1.bias 8
tok_dec.dec.3.res.0.conv1.weight 7x8x8
tok_dec.dec.3.res.0.conv2.bias 8
tok_dec.dec.3.res.0.conv2.weight 1x8x8
tok_dec.dec.3.res.1.act1.alpha 8
tok_dec.dec.3.res.1.act1.beta 8
tok_dec.dec.3.res.1.act2.alpha 8
tok_dec.dec.3.res.1.act2.beta 8
tok_dec.dec.3.res.1.conv1.bias 8
tok_dec.dec.3.res.1.conv1.weight 7x8x8
tok_dec.dec.3.res.1.conv2.bias 8
tok_dec.dec.3.res.1.conv2.weight 1x8x8
tok_dec.dec.3.res.2.act1.alpha 8
tok_dec.dec.3.res.2.act1.beta 8
tok_dec.dec.3.res.2.act2.alpha 8
tok_dec.dec.3.res.2.act2.beta 8
tok_dec.dec.3.res.2.conv1.bias 8
tok_dec.dec.3.res.2.conv1.weight 7x8x8
tok_dec.dec.3.res.2.conv2.bias 8
tok_dec.dec.3.res.2.conv2.weight 1x8x8
tok_dec.dec.4.snake.alpha 8
tok_dec.dec.4.snake.beta 8
tok_dec.dec.4.conv_t.bias 4
tok_dec.dec.4.conv_t.weight 6x4x8
tok_dec.dec.4.res.0.act1.alpha 4
tok_dec.dec.4.res.0.act1.beta 4
tok_dec.dec.4.res.0.act2.alpha 4
tok_dec.dec.4.res.0.act2.beta 4
tok_dec.dec.4.res.0.conv1.bias 4
tok_dec.dec.4.res.0.conv1.weight 7x4x4
tok_dec.dec.4.res.0.conv2.bias 4
tok_dec.dec.4.res.0.conv2.weight 1x4x4
tok_dec.dec.4.res.1.act1.alpha 4
tok_dec.dec.4.res.1.act1.beta 4
tok_dec.dec.4.res.1.act2.alpha 4
tok_dec.dec.4.res.1.act2.beta 4
tok_dec.dec.4.res.1.conv1.bias 4
tok_dec.dec.4.res.1.conv1.weight 7x4x4
tok_dec.dec.4.res.1.conv2.bias 4
tok_dec.dec.4.res.1.conv2.weight 1x4x4
tok_dec.dec.4.res.2.act1.alpha 4
tok_dec.dec.4.res.2.act1.beta 4
tok_dec.dec.4.res.2.act2.alpha 4
tok_dec.dec.4.res.2.act2.beta 4
tok_dec.dec.4.res.2.conv1.bias 4
tok_dec.dec.4.res.2.conv1.weight 7x4x4
tok_dec.dec.4.res.2.conv2.bias 4
tok_dec.dec.4.res.2.conv2.weight 1x4x4
tok_dec.dec.5.snake.alpha 4
tok_dec.dec.5.snake.beta 4
tok_dec.dec.6.conv.bias 1
tok_dec.dec.6.conv.weight 7x4x1
tok_dec.pre_conv.bias 48
tok_dec.pre_conv.weight 3x32x48
tok_dec.pre_tfm.input_proj.bias 32
tok_dec.pre_tfm.input_proj.weight 48x32
tok_dec.pre_tfm.blk.0.attn_norm.weight 32
tok_dec.pre_tfm.blk.0.ffn_down.weight 64x32
tok_dec.pre_tfm.blk.0.ffn_gate.weight 32x64
tok_dec.pre_tfm.blk.0.ffn_up.weight 32x64
tok_dec.pre_tfm.blk.0.ffn_scale 32
tok_dec.pre_tfm.blk.0.ffn_norm.weight 32
tok_dec.pre_tfm.blk.0.attn_k.weight 32x32
tok_dec.pre_tfm.blk.0.attn_output.weight 32x32
tok_dec.pre_tfm.blk.0.attn_q.weight 32x32
tok_dec.pre_tfm.blk.0.attn_v.weight 32x32
tok_dec.pre_tfm.blk.0.attn_scale 32
tok_dec.pre_tfm.blk.1.attn_norm.weight 32
tok_dec.pre_tfm.blk.1.ffn_down.weight 64x32
tok_dec.pre_tfm.blk.1.ffn_gate.weight 32x64
tok_dec.pre_tfm.blk.1.ffn_up.weight 32x64
tok_dec.pre_tfm.blk.1.ffn_scale 32
tok_dec.pre_tfm.blk.1.ffn_norm.weight 32
tok_dec.pre_tfm.blk.1.attn_k.weight 32x32
tok_dec.pre_tfm.blk.1.attn_output.weight 32x32
tok_dec.pre_tfm.blk.1.attn_q.weight 32x32
tok_dec.pre_tfm.blk.1.attn_v.weight 32x32
tok_dec.pre_tfm.blk.1.attn_scale 32
tok_dec.pre_tfm.norm.weight 32
tok_dec.pre_tfm.output_proj.bias 48
tok_dec.pre_tfm.output_proj.weight 32x48
tok_dec.vq_first.output_proj.weight 1x16x32
tok_dec.vq_rest.output_proj.weight 1x16x32
tok_dec.upsample.0.conv.bias 48
tok_dec.upsample.0.conv.weight 2x48x48
tok_dec.upsample.0.dwconv.bias 48
tok_dec.upsample.0.dwconv.weight 7x1x48
tok_dec.upsample.0.gamma 48
tok_dec.upsample.0.norm.bias 48
tok_dec.upsample.0.norm.weight 48
tok_dec.upsample.0.pwconv1.bias 192
tok_dec.upsample.0.pwconv1.weight 48x192
tok_dec.upsample.0.pwconv2.bias 48
tok_dec.upsample.0.pwconv2.weight 192x48
tok_dec.upsample.1.conv.bias 48
tok_dec.upsample.1.conv.weight 2x48x48
tok_dec.upsample.1.dwconv.bias 48
tok_dec.upsample.1.dwconv.weight 7x1x48
tok_dec.upsample.1.gamma 48
tok_dec.upsample.1.norm.bias 48
tok_dec.upsample.1.norm.weight 48
tok_dec.upsample.1.pwconv1.bias 192
tok_dec.upsample.1.pwconv1.weight 48x192
tok_dec.upsample.1.pwconv2.bias 48
tok_dec.upsample.1.pwconv2.weight 192x48
tok_enc.downsample.weight 4x32x32
tok_enc.conv.0.bias 4
tok_enc.conv.0.weight 7x1x4
tok_enc.res.1.blk.1.bias 2
tok_enc.res.1.blk.1.weight 3x4x2
tok_enc.res.1.blk.3.bias 4
tok_enc.res.1.blk.3.weight 1x2x4
tok_enc.res.10.blk.1.bias 16
tok_enc.res.10.blk.1.weight 3x32x16
tok_enc.res.10.blk.3.bias 32
tok_enc.res.10.blk.3.weight 1x16x32
tok_enc.conv.12.bias 64
tok_enc.conv.12.weight 16x32x64
tok_enc.conv.14.bias 32
tok_enc.conv.14.weight 3x64x32
tok_enc.conv.3.bias 8
tok_enc.conv.3.weight 8x4x8
tok_enc.res.4.blk.1.bias 4
tok_enc.res.4.blk.1.weight 3x8x4
tok_enc.res.4.blk.3.bias 8
tok_enc.res.4.blk.3.weight 1x4x8
tok_enc.conv.6.bias 16
tok_enc.conv.6.weight 10x8x16
tok_enc.res.7.blk.1.bias 8
tok_enc.res.7.blk.1.weight 3x16x8
tok_enc.res.7.blk.3.bias 16
tok_enc.res.7.blk.3.weight 1x8x16
tok_enc.conv.9.bias 32
tok_enc.conv.9.weight 12x16x32
tok_enc.blk.0.attn_norm.bias 32
tok_enc.blk.0.attn_norm.weight 32
tok_enc.blk.0.ffn_up.weight 32x64
tok_enc.blk.0.ffn_down.weight 64x32
tok_enc.blk.0.ffn_scale 32
tok_enc.blk.0.ffn_norm.bias 32
tok_enc.blk.0.ffn_norm.weight 32
tok_enc.blk.0.attn_k.weight 32x32
tok_enc.blk.0.attn_output.weight 32x32
tok_enc.blk.0.attn_q.weight 32x32
tok_enc.blk.0.attn_v.weight 32x32
tok_enc.blk.0.attn_scale 32
tok_enc.blk.1.attn_norm.bias 32
tok_enc.blk.1.attn_norm.weight 32
tok_enc.blk.1.ffn_up.weight 32x64
tok_enc.blk.1.ffn_down.weight 64x32
tok_enc.blk.1.ffn_scale 32
tok_enc.blk.1.ffn_norm.bias 32
tok_enc.blk.1.ffn_norm.weight 32
tok_enc.blk.1.attn_k.weight 32x32
tok_enc.blk.1.attn_output.weight 32x32
tok_enc.blk.1.attn_q.weight 32x32
tok_enc.blk.1.attn_v.weight 32x32
tok_enc.blk.1.attn_scale 32
tok_enc.vq_acoustic.input_proj.weight 1x32x16
tok_enc.vq_acoustic.output_proj.weight 1x16x32
tok_enc.vq_semantic.input_proj.weight 1x32x16
tok_enc.vq_semantic.output_proj.weight 1x16x32
tok_dec.vq_first.0.codebook 16x256
tok_dec.vq_rest.0.codebook 16x256
tok_dec.vq_rest.1.codebook 16x256
tok_dec.vq_rest.2.codebook 16x256
tok_enc.vq_acoustic.0.codebook 16x256
tok_enc.vq_acoustic.1.codebook 16x256
tok_enc.vq_acoustic.2.codebook 16x256
tok_enc.vq_semantic.0.codebook 16x256
"""
