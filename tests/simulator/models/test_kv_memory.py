"""KV memory per layer type against vLLM 0.34's own formulas (issue 22), with the arithmetic written out.

vLLM: a full-attention layer's page is ``block_size × 2 × num_kv_heads × head_size × dtype`` (K and V; KV heads
split by TP, one per GPU below that); an MLA layer's is ``block_size × (kv_lora_rank + qk_rope_head_dim) ×
dtype`` (``MLAAttentionSpec``: one latent, ``head_size_v`` 0, the same on every GPU); ``num_blocks =
available // (layers per group × page)``; "KV cache size: N tokens" = ``int(num_blocks / blocks per request at
max_model_len × max_model_len)``, a window group taking ``cdiv(min(W − 1 + in-flight, max_len), 16) + 1``."""

from __future__ import annotations

import dataclasses

import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.kv_groups import kv_cache_layout
from kvsim.simulator.specs import GPUS, MODELS, kv_capacity_bytes, weight_bytes_per_gpu

H100, H200 = GPUS["h100-sxm"], GPUS["h200"]
IN_FLIGHT = 2 * 8192  # max_num_batched_tokens 8192, two batches in flight (0.34's async scheduling)


@pytest.mark.parametrize(
    ("name", "tp", "per_layer"),
    [
        ("llama-3.1-8b", 1, 2 * 8 * 128 * 2),  # 4,096
        ("llama-3.1-70b", 1, 2 * 8 * 128 * 2),
        ("llama-3.1-70b", 4, 2 * 2 * 128 * 2),  # 8 KV heads over 4 GPUs: 2 each
        ("qwen3-8b", 1, 2 * 8 * 128 * 2),
        ("qwen3-32b", 1, 2 * 8 * 128 * 2),
        ("qwen3-30b-a3b", 1, 2 * 4 * 128 * 2),
        ("qwen3-235b-a22b", 8, 2 * 1 * 128 * 2),  # 4 KV heads, 8 GPUs: each keeps one (replicated)
        ("mixtral-8x7b", 1, 2 * 8 * 128 * 2),
        ("gpt-oss-20b", 1, 2 * 8 * 64 * 2),
        ("gpt-oss-120b", 2, 2 * 4 * 64 * 2),
        ("deepseek-v3", 1, (512 + 64) * 2),  # the latent: kv_lora_rank + qk_rope_head_dim, no K and V
        ("deepseek-v3", 8, (512 + 64) * 2),  # not split by TP
        ("gemma-3-27b", 1, 2 * 16 * 128 * 2),
        ("mistral-7b-v0.1", 1, 2 * 8 * 128 * 2),
    ],
)
def test_kv_bytes_per_token_and_layer(name, tp, per_layer):
    model = MODELS[name]
    assert model.kv_bytes_per_token_layer(tp) == per_layer
    assert model.kv_bytes_per_token(tp) == model.num_layers * per_layer
    fp8 = dataclasses.replace(model, kv_cache_dtype_bytes=1)  # --kv-cache-dtype fp8: one byte a value
    assert fp8.kv_bytes_per_token_layer(tp) * 2 == per_layer


def test_kv_cache_tokens_of_a_dense_model_on_one_h100():
    # Llama-3.1-8B: weights 2 × (32 × (4096 × 6144 + 4096 × 4096 + 3 × 4096 × 14336) + 2 × 128256 × 4096)
    #   = 16,059,990,016 bytes; capacity int(0.9 × 80 GiB) − weights = 77,309,411,328 − 16,059,990,016
    #   = 61,249,421,312; a block 32 layers × 16 tokens × 4,096 = 2,097,152 bytes: 29,206 blocks, 467,296 tokens.
    model = MODELS["llama-3.1-8b"]
    assert weight_bytes_per_gpu(model) == 16_059_990_016
    capacity = kv_capacity_bytes(model, H100)
    assert capacity == 77_309_411_328 - 16_059_990_016
    layout = kv_cache_layout(model)
    assert (layout.block_bytes, layout.num_blocks(capacity)) == (2_097_152, 29_206)
    assert layout.kv_cache_size_tokens(capacity, model.max_model_len, IN_FLIGHT) == 29_206 * 16


def test_gpt_oss_120b_fits_one_h100_in_two_groups_of_18_layers():
    # weights 65,168,179,200 bytes (60.7 GiB): capacity 77,309,411,328 − 65,168,179,200 = 12,141,232,128.
    # Groups: 18 sliding (window 128) + 18 full layers; a block 18 × 16 × 2,048 = 589,824 bytes: 20,584 blocks.
    # A 131,072-token request: full 131,072 / 16 = 8,192 blocks + window cdiv(127 + 16,384, 16) + 1 = 1,033:
    # 9,225 blocks; 20,584 / 9,225 × 131,072 = 292,464 tokens.
    model = MODELS["gpt-oss-120b"]
    capacity = kv_capacity_bytes(model, H100)
    assert capacity == 12_141_232_128
    layout = kv_cache_layout(model)
    assert [(g.layer_type, g.num_layers) for g in layout.groups] == [
        ("sliding_attention", 18),
        ("full_attention", 18),
    ]
    assert (layout.block_bytes, layout.num_blocks(capacity)) == (589_824, 20_584)
    assert layout.blocks_per_request(131_072, IN_FLIGHT) == 8_192 + 1_033
    assert layout.kv_cache_size_tokens(capacity, 131_072, IN_FLIGHT) == 292_464


def test_gemma_3_pads_its_windowed_layers_into_groups_of_ten():
    # 10 global layers set the group size; 52 windowed layers make cdiv(52, 10) = 6 groups: 8 padding slots.
    layout = kv_cache_layout(MODELS["gemma-3-27b"])
    assert [g.num_layers for g in layout.groups] == [9, 9, 9, 9, 8, 8, 10]
    assert layout.num_padding_layers == 8 and layout.block_bytes == 10 * 16 * 8192


def test_mla_latent_is_the_same_on_every_gpu_of_deepseek_v3_at_tp8_on_h200():
    # a block: 61 layers × 16 × 1,152 = 1,124,352 bytes, whatever the TP degree
    model = MODELS["deepseek-v3"]
    assert kv_cache_layout(model, tp=8).block_bytes == kv_cache_layout(model, tp=1).block_bytes == 1_124_352
    capacity = kv_capacity_bytes(model, H200, tp=8)
    assert capacity == int(141e9 * 0.9) - weight_bytes_per_gpu(model, tp=8)


def test_qwen3_235b_in_bf16_does_not_fit_one_h100_and_the_error_says_by_how_much():
    # weights 235.09B × 2 bytes = 437.9 GiB against 0.9 × 80 GiB = 72 GiB: 365.9 GiB over
    with pytest.raises(KvsimError, match=r"Qwen3-235B-A22B does not fit on H100-SXM .* by 365\.9 GiB"):
        kv_capacity_bytes(MODELS["qwen3-235b-a22b"], H100)


@pytest.mark.parametrize(
    "name", ["llama-3.1-8b", "qwen3-30b-a3b", "deepseek-v3", "gpt-oss-120b", "gemma-3-27b"]
)
def test_fp8_kv_doubles_the_tokens_that_fit(name):
    model = MODELS[name]
    gpu, tp = (H200, 8) if name == "deepseek-v3" else (H100, 1)
    capacity = kv_capacity_bytes(model, gpu, tp)
    auto = kv_cache_layout(model, tp).kv_cache_size_tokens(capacity, model.max_model_len, IN_FLIGHT)
    fp8 = kv_cache_layout(dataclasses.replace(model, kv_cache_dtype_bytes=1), tp)
    tokens = fp8.kv_cache_size_tokens(capacity, model.max_model_len, IN_FLIGHT)
    assert tokens == pytest.approx(2 * auto, rel=2e-4)  # block rounding only


def test_kv_cache_dtype_fp8_reaches_the_run_and_doubles_its_kv_cache_tokens():
    from simtools import make_trace

    from kvsim.simulator import SimConfig, simulate

    trace = make_trace([(0.0, 100, 5), (0.1, 200, 5)])
    runs = {
        dtype: simulate(SimConfig(model="llama-3.1-8b", gpu="h100-sxm", kv_cache_dtype=dtype), trace).resolved
        for dtype in ("auto", "fp8")
    }
    assert runs["fp8"]["model_spec"]["kv_cache_dtype_bytes"] == 1
    # 467,296: test_kv_cache_tokens_of_a_dense_model_on_one_h100
    assert runs["auto"]["kv_cache_size_tokens"] == 467_296
    assert runs["fp8"]["kv_cache_size_tokens"] == 2 * 467_296
    with pytest.raises(KvsimError, match="unknown kv_cache_dtype 'fp16'; choose one of auto, fp8"):
        SimConfig(kv_cache_dtype="fp16")
