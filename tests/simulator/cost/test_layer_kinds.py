"""Cost of MoE layers, latent attention and sliding-window attention (issue 22; cost/layer_kinds.py)."""

from __future__ import annotations

import pytest

from kvsim.simulator.batch import Batch
from kvsim.simulator.cost import make_cost_model
from kvsim.simulator.cost.layer_kinds import MoeMlp, expected_experts_touched, windowed_pairs
from kvsim.simulator.cost.roofline import roofline_profile
from kvsim.simulator.cost.work import causal_attended_pairs
from kvsim.simulator.specs import GPUS, MODELS

H100 = GPUS["h100-sxm"]


def test_experts_touched_by_uniform_routing():
    assert expected_experts_touched(1, 128, 8) == pytest.approx(8)  # one token: its k experts
    assert expected_experts_touched(2, 128, 8) == pytest.approx(128 * (1 - (120 / 128) ** 2))  # 15.5
    assert expected_experts_touched(512, 128, 8) == pytest.approx(128)  # a big batch touches all of them


def test_a_one_token_moe_step_reads_only_its_experts_weights():
    """Qwen3-30B-A3B, roofline, one token: the experts' GEMMs are bandwidth bound, reading k = 8 experts of
    2048 × 2 × 768 (gate, up) and 768 × 2048 (down) bf16 weights, not all 128."""
    model = MODELS["qwen3-30b-a3b"]
    term = roofline_profile(H100).terms["gemm"]
    moe = MoeMlp(term, model, 1)
    p = term.params
    up = p["const_s"] + p["s_per_byte"] * (8 * 2 * 2048 * 1536 + 8 * 2 * (2048 + 1536))
    down = p["const_s"] + p["s_per_byte"] * (8 * 2 * 768 * 2048 + 8 * 2 * (768 + 2048))
    assert moe(1) == pytest.approx(moe.router(1) + up + down, rel=1e-12)
    all_experts = 128 * 3 * 2048 * 768 * 2 * p["s_per_byte"]
    assert moe(1) < all_experts / 10 and moe(4096) > all_experts  # large batches read every expert


def test_moe_decode_gets_dearer_with_the_batch_as_more_experts_are_touched():
    cost = make_cost_model(MODELS["gpt-oss-120b"], "h100-sxm", profile="roofline")
    gemm = [cost.step_time(Batch(num_decode_seqs=n, decode_kv_tokens=n * 1000)).gemm_s for n in (1, 8, 64)]
    assert gemm[0] < gemm[1] < gemm[2]
    dense = make_cost_model(MODELS["llama-3.1-8b"], "h100-sxm", profile="roofline")
    flat = [dense.step_time(Batch(num_decode_seqs=n, decode_kv_tokens=n * 1000)).gemm_s for n in (1, 8)]
    assert flat[1] / flat[0] < 1.05 < gemm[1] / gemm[0]  # a dense model's weights are read whole at any batch


def test_mla_decode_reads_the_latent():
    """DeepSeek-V3 at TP 8: decode attention reads (512 + 64) × 2 bytes per token and layer on every GPU."""
    cost = make_cost_model(MODELS["deepseek-v3"], "h200", 8, profile="roofline")
    p = roofline_profile(GPUS["h200"]).terms["attn_decode_paged"].params
    step = cost.step_time(Batch(num_decode_seqs=4, decode_kv_tokens=40_000, decode_kv_blocks=2_500))
    assert step.attn_decode_s == pytest.approx(61 * (p["const_s"] + p["kv_bytes"] * 40_000 * 1152), rel=1e-12)


def test_windowed_pairs_count_each_query_with_at_most_the_window():
    for q_len, kv_len, window in [(10, 10, 4), (5, 100, 8), (100, 100, 1000), (7, 20, 20)]:
        brute = sum(min(p + 1, window) for p in range(kv_len - q_len, kv_len))
        assert windowed_pairs(q_len, kv_len, window) == brute
    assert windowed_pairs(300, 300, 10_000) == causal_attended_pairs(300, 300)


def test_windowed_layers_read_at_most_the_window_in_decode_and_prefill():
    """gpt-oss-120b: 18 of 36 layers see a 128-token window. Four sequences of 10,000 tokens: the full layers
    read 40,000 tokens, the windowed ones 4 × 128 = 512."""
    oss = make_cost_model(MODELS["gpt-oss-120b"], "h100-sxm", profile="roofline")
    p = roofline_profile(H100).terms["attn_decode_paged"].params
    per_token = 2 * 8 * 64 * 2
    step = oss.step_time(Batch(num_decode_seqs=4, decode_kv_tokens=40_000))
    expected = 18 * (p["const_s"] + p["kv_bytes"] * per_token * 40_000)
    expected += 18 * (p["const_s"] + p["kv_bytes"] * per_token * 512)
    assert step.attn_decode_s == pytest.approx(expected, rel=1e-12)
    assert oss.step_total_s(Batch(num_decode_seqs=4, decode_kv_tokens=40_000)) == step.total_s
    # a 16K-token prompt: windowed layers pair each query with at most 128 keys
    long = Batch(prefill_q_lens=(16384,), prefill_kv_lens=(16384,))
    full_only = make_cost_model(MODELS["llama-3.1-8b"], "h100-sxm", profile="roofline")
    assert oss.step_time(long).attn_prefill_s < 0.6 * 36 / 32 * full_only.step_time(long).attn_prefill_s


def test_the_description_says_what_is_not_calibrated():
    cost = make_cost_model(MODELS["gpt-oss-20b"], "h100-sxm")
    assert "MoE experts (uniform routing assumed)" in cost.description
    assert "sliding-window attention" in cost.description and "not calibrated on them" in cost.description
    assert "not calibrated" not in make_cost_model(MODELS["llama-3.1-8b"], "h100-sxm").description
