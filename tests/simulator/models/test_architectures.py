"""The models people serve today (issue 22): each published config.json reads to its preset, and the shapes
give the published parameter counts and checkpoint sizes. configs/*.json are the Hugging Face Hub files of the
repos named in simulator/model_presets.py (fields as published; Gemma 3's text_config leaves vocab_size and
max_position_embeddings to Gemma3TextConfig's defaults, as the Hub file does)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.specs import MODELS, ModelSpec, model_num_params, weight_bytes_per_gpu
from kvsim.simulator.weights import MXFP4_BYTES_PER_PARAM, fp8_bytes_per_param, int_bytes_per_param

CONFIGS = Path(__file__).parent / "configs"
GIB = 2**30


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.stem)
def test_each_published_config_reads_to_its_preset(path):
    assert ModelSpec.from_hf_config(path, name=path.stem) == MODELS[path.stem.lower()]


@pytest.mark.parametrize(
    ("name", "billions"),
    [
        ("llama-3.1-70b", 70.6),  # Meta's model card: 70.6B
        ("qwen3-8b", 8.2),  # Qwen3 model cards: 8.2B, 32.8B, 30.5B, 235B
        ("qwen3-32b", 32.8),
        ("qwen3-30b-a3b", 30.5),
        ("qwen3-235b-a22b", 235.1),
        ("mixtral-8x7b", 46.7),  # Mistral AI: 46.7B total
        ("gpt-oss-20b", 20.9),  # OpenAI gpt-oss model card: 20.91B and 116.83B
        ("gpt-oss-120b", 116.8),
        ("deepseek-v3", 671),  # DeepSeek-V3 README: 671B main model (the 14B MTP module apart)
        ("gemma-3-27b", 27.4),  # Gemma 3 technical report: 27.4B with the vision encoder
        ("mistral-7b-v0.1", 7.24),
    ],
)
def test_parameter_counts_match_the_published_sizes(name, billions):
    assert model_num_params(MODELS[name]) / 1e9 == pytest.approx(billions, rel=0.005)


def test_gpt_oss_weights_are_mxfp4_experts_beside_bf16_attention_and_embeddings():
    """Experts: 36 layers × 128 × 3 × 2880 × 2880 parameters at 0.5 + 1/32 bytes (4-bit values, an 8-bit scale
    per 32); attention 36 × (2880 × 80 × 64 + 64 × 64 × 2880), router 36 × 2880 × 128, embedding and LM head
    2 × 201088 × 2880, all at 2 bytes. OpenAI's model card: the 120b checkpoint is 60.8 GiB."""
    experts = 36 * 128 * 3 * 2880 * 2880
    bf16 = 36 * (2880 * 80 * 64 + 64 * 64 * 2880) + 36 * 2880 * 128 + 2 * 201088 * 2880
    expected = round(experts * (0.5 + 1 / 32) + bf16 * 2)
    assert weight_bytes_per_gpu(MODELS["gpt-oss-120b"]) == expected
    assert expected / GIB == pytest.approx(60.8, abs=0.15)


def test_deepseek_v3_weights_are_fp8_with_a_scale_per_128x128_block():
    model = MODELS["deepseek-v3"]
    bf16 = 2 * 129280 * 7168 + 58 * 7168 * 256  # embedding, LM head, router
    fp8 = model_num_params(model) - bf16
    assert weight_bytes_per_gpu(model) == round(fp8 * (1 + 4 / (128 * 128)) + 2 * bf16)
    # The replicated latent projections (q_a 7168 × 1536, kv_a 7168 × 576 per layer) are on every GPU
    per_gpu_tp8 = weight_bytes_per_gpu(model, tp=8)
    assert per_gpu_tp8 > weight_bytes_per_gpu(model) / 8 + 0.99 * 61 * 7168 * (1536 + 576) * 7 / 8


def test_hybrid_layer_patterns():
    gemma = MODELS["gemma-3-27b"]
    globals_ = [i for i, t in enumerate(gemma.layer_types) if t == "full_attention"]
    assert globals_ == [5, 11, 17, 23, 29, 35, 41, 47, 53, 59] and gemma.num_sliding_layers == 52
    oss = MODELS["gpt-oss-120b"]
    assert oss.layer_types[:4] == ("sliding_attention", "full_attention") * 2 and oss.num_sliding_layers == 18
    assert MODELS["mistral-7b-v0.1"].num_sliding_layers == 32 and MODELS["mistral-7b-v0.1"].has_window
    assert MODELS["llama-3.1-70b"].num_sliding_layers == 0 and not MODELS["llama-3.1-70b"].has_window


TINY = {
    "model_type": "llama",
    "num_hidden_layers": 4,
    "hidden_size": 256,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "intermediate_size": 688,
    "vocab_size": 1000,
    "max_position_embeddings": 2048,
    "torch_dtype": "bfloat16",
}


def _spec(tmp_path, **changes):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TINY, **changes}))
    return ModelSpec.from_hf_config(path, name="tiny")


def test_the_dense_families_read_as_llama_with_their_differences(tmp_path):
    base = _spec(tmp_path)
    for model_type in ("mistral", "granite", "olmo2", "phi3", "qwen2", "qwen3"):
        assert _spec(tmp_path, model_type=model_type) == base, model_type
    assert _spec(tmp_path, model_type="granite", embedding_multiplier=12.0, logits_scaling=8.0) == base
    assert _spec(tmp_path, model_type="qwen3", head_dim=64).head_dim == 64  # Qwen3 gives head_dim apart
    gemma2 = _spec(tmp_path, model_type="gemma2", sliding_window=512, attn_logit_softcapping=50.0)
    assert gemma2.tie_word_embeddings  # Gemma's config classes tie by default
    assert gemma2.layer_types == ("sliding_attention", "full_attention") * 2 and gemma2.sliding_window == 512
    gemma3 = _spec(tmp_path, model_type="gemma3_text", sliding_window=512, sliding_window_pattern=2)
    assert gemma3.layer_types == ("sliding_attention", "full_attention") * 2
    phi3 = _spec(tmp_path, model_type="phi3", sliding_window=1024)  # Phi-3-mini-4k: a window on every layer
    assert phi3.layer_types == ("sliding_attention",) * 4 and phi3.has_window


def test_qwen_windows_below_the_context_are_refused_and_a_window_off_is_full_attention(tmp_path):
    with pytest.raises(KvsimError, match="use_sliding_window with sliding_window 1024 below the context"):
        _spec(tmp_path, model_type="qwen2", use_sliding_window=True, sliding_window=1024)
    off = _spec(
        tmp_path, model_type="qwen2", use_sliding_window=False, sliding_window=512, max_window_layers=2
    )
    assert off == _spec(tmp_path) and not off.has_window


def test_layer_types_are_read_and_other_attention_types_refused(tmp_path):
    spec = _spec(tmp_path, sliding_window=128, layer_types=["sliding_attention", "full_attention"] * 2)
    assert spec.num_sliding_layers == 2
    with pytest.raises(KvsimError, match="layer_types chunked_attention: kvsim models full_attention and"):
        _spec(tmp_path, sliding_window=128, layer_types=["chunked_attention"] * 4)
    with pytest.raises(KvsimError, match="'sliding_window' is null"):
        _spec(tmp_path, layer_types=["sliding_attention"] * 4)


def test_moe_families_read_experts_shared_experts_and_dense_layers_first(tmp_path):
    qwen2_moe = _spec(
        tmp_path,
        model_type="qwen2_moe",
        num_experts=60,
        num_experts_per_tok=4,
        moe_intermediate_size=1408,
        shared_expert_intermediate_size=5632,
    )
    assert (qwen2_moe.num_experts, qwen2_moe.num_experts_per_tok, qwen2_moe.moe_intermediate_size) == (
        60,
        4,
        1408,
    )
    assert qwen2_moe.shared_expert_intermediate_size == 5632 and qwen2_moe.num_moe_layers == 4
    with pytest.raises(KvsimError, match="mlp_only_layers \\[1\\]: dense MLP layers between"):
        _spec(tmp_path, model_type="qwen3_moe", num_experts=8, num_experts_per_tok=2, moe_intermediate_size=64,
              mlp_only_layers=[1])  # fmt: skip
    mla = dict(kv_lora_rank=64, q_lora_rank=None, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32)
    v2 = _spec(
        tmp_path,
        model_type="deepseek_v2",
        n_routed_experts=16,
        num_experts_per_tok=2,
        moe_intermediate_size=128,
        n_shared_experts=2,
        first_k_dense_replace=1,
        **mla,
    )
    assert v2.shared_expert_intermediate_size == 256 and v2.num_dense_layers == 1 and v2.num_moe_layers == 3
    assert v2.is_mla and v2.q_lora_rank == 0 and v2.head_dim == 48
    # a MoE field in a family that has none is still refused by name, never ignored
    with pytest.raises(KvsimError, match="'num_local_experts', 'num_experts_per_tok': field"):
        _spec(tmp_path, num_local_experts=8, num_experts_per_tok=2)


@pytest.mark.parametrize(
    ("quant", "linear", "expert"),
    [
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, fp8_bytes_per_param((128, 128)), None),
        ({"quant_method": "fp8", "activation_scheme": "static"}, 1.0, None),
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}, 0.5 + 2.5 / 128, None),
        ({"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": False}, 0.5 + 2 / 64, None),
        ({"quant_method": "gptq", "bits": 8, "group_size": 128, "desc_act": False}, 1 + 3 / 128, None),
    ],
)
def test_quantized_weights_take_their_bytes_with_scales(tmp_path, quant, linear, expert):
    spec = _spec(tmp_path, quantization_config=quant)
    assert (spec.linear_bytes_per_param, spec.expert_bytes_per_param) == (pytest.approx(linear), expert)
    assert int_bytes_per_param(4, 128, True) == 0.5 + (2 + 0.5) / 128


@pytest.mark.parametrize(
    ("quant", "message"),
    [
        ({"quant_method": "bitsandbytes"}, "quant_method 'bitsandbytes' is not modelled"),
        ({"quant_method": "mxfp4"}, "mxfp4' quantizes experts only"),
        (
            {"quant_method": "fp8", "ignored_layers": ["model.layers.0.mlp"]},
            "keeps 'model.layers.0.mlp' unquant",
        ),
        ({"quant_method": "fp8", "kv_cache_scheme": {"num_bits": 8}}, "kv_cache_scheme"),
        ({"quant_method": "awq", "bits": 3}, "bits 3"),
    ],
)
def test_quantizations_kvsim_cannot_place_are_refused_by_name(tmp_path, quant, message):
    with pytest.raises(KvsimError, match=message):
        _spec(tmp_path, quantization_config=quant)


def test_mxfp4_quantizes_only_the_experts():
    oss = MODELS["gpt-oss-20b"]
    assert oss.linear_bytes_per_param is None and oss.expert_bytes_per_param == MXFP4_BYTES_PER_PARAM
