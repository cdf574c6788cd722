"""Weights of a model: parameters per part, and the bytes one GPU of a tensor-parallel group holds (DESIGN §3).

Counted (norms, biases, OPT's learned position embeddings and gpt-oss's attention sinks left out: each under
0.2% of the weights):
- attention, grouped-query: Q, K, V and O, ``hidden × (heads + 2 × kv_heads) × head_dim + heads × head_dim ×
  hidden``; per GPU the heads are split and K, V are kept for ``max(1, kv_heads / tp)`` heads (vLLM replicates a
  KV head's projection on every GPU that shares it);
- attention, MLA (DeepSeek-V2/V3): ``q_a`` (hidden × q_lora_rank) and ``kv_a`` (hidden × (kv_lora_rank +
  qk_rope_head_dim)) replicated on every GPU (vLLM's ReplicatedLinear), ``q_b`` (q_lora_rank, or hidden without
  it, × heads × (qk_nope + qk_rope)), ``kv_b`` (kv_lora_rank × heads × (qk_nope + v_head)) and ``o`` (heads ×
  v_head × hidden) split by heads;
- MLP: dense, ``(3 gated | 2) × hidden × intermediate``; MoE, every expert resident: ``num_experts × 3 × hidden
  × moe_intermediate`` plus shared experts ``3 × hidden × shared_intermediate``, each split by TP along its
  intermediate size (vLLM's fused MoE without expert parallelism), and the router ``hidden × num_experts``
  replicated;
- embedding and LM head ``vocab × hidden`` (once when tied), split by vocabulary; a multimodal model's
  ``extra_params`` (its vision tower) split by TP.

Precision: embedding, LM head, router and ``extra_params`` at ``dtype_bytes``; the attention and dense-MLP
linears at ``linear_bytes_per_param``, the experts at ``expert_bytes_per_param`` (each ``dtype_bytes`` when
None). Those values, scales included, come from ``quantization_config`` (``hf_config_quant.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvsim.simulator.specs import ModelSpec


@dataclass(frozen=True)
class WeightParams:
    """Parameters one GPU holds, by the precision they are stored at."""

    linear: int  # attention and dense-MLP linears (and shared experts)
    experts: int  # routed experts
    other: int  # embedding, LM head, router, extra_params: always dtype_bytes

    @property
    def total(self) -> int:
        return self.linear + self.experts + self.other


def attention_params(model: ModelSpec, tp: int = 1) -> tuple[int, int]:
    """(split across TP on this GPU, replicated on every GPU) parameters of one attention layer."""
    h, heads = model.hidden_size, model.num_heads // tp
    if model.is_mla:
        qk_head = model.qk_nope_head_dim + model.qk_rope_head_dim
        q_in = model.q_lora_rank or h
        split = q_in * heads * qk_head
        split += model.kv_lora_rank * heads * (model.qk_nope_head_dim + model.v_head_dim)
        split += heads * model.v_head_dim * h
        replicated = h * (model.kv_lora_rank + model.qk_rope_head_dim) + h * model.q_lora_rank
        return split, replicated
    kv_heads = max(1, model.num_kv_heads // tp)
    return h * (heads + 2 * kv_heads) * model.head_dim + heads * model.head_dim * h, 0


def weight_params(model: ModelSpec, tp: int = 1) -> WeightParams:
    """Parameters on one GPU of a ``tp`` group (the module docstring says what is split and what is not)."""
    h = model.hidden_size
    split, replicated = attention_params(model, tp)
    linear = model.num_layers * (split + replicated)
    dense_mlp = (3 if model.gated_mlp else 2) * h * (model.intermediate_size // tp)
    num_dense = model.num_layers - model.num_moe_layers
    linear += num_dense * dense_mlp
    experts = other = 0
    if model.is_moe:
        per_expert = 3 * h * (model.moe_intermediate_size // tp)
        experts = model.num_moe_layers * model.num_experts * per_expert
        linear += model.num_moe_layers * 3 * h * (model.shared_expert_intermediate_size // tp)
        other += model.num_moe_layers * h * model.num_experts  # the router, replicated
    num_embedding_matrices = 1 if model.tie_word_embeddings else 2
    other += num_embedding_matrices * -(-model.vocab_size // tp) * h
    other += model.extra_params // tp
    return WeightParams(linear=linear, experts=experts, other=other)


def model_num_params(model: ModelSpec) -> int:
    """Parameters of the whole model (one GPU holding all of them)."""
    return weight_params(model, 1).total


def weight_bytes_per_gpu(model: ModelSpec, tp: int = 1) -> int:
    """Bytes of weights one GPU of a ``tp`` group holds, each part at its own precision."""
    params = weight_params(model, tp)
    linear_bytes = model.linear_bytes_per_param or model.dtype_bytes
    expert_bytes = model.expert_bytes_per_param or linear_bytes
    return round(
        params.linear * linear_bytes + params.experts * expert_bytes + params.other * model.dtype_bytes
    )


# Bytes per parameter of quantized weights, scales included (stored per output channel block or group):
def fp8_bytes_per_param(weight_block_size: tuple[int, int] | None) -> float:
    """fp8 (e4m3): 1 byte a weight, plus one float32 scale per ``weight_block_size`` block (DeepSeek-V3's
    128 × 128: 1 + 4 / 16384 bytes); per-tensor or per-channel scales (no block size) add under 0.01%."""
    if weight_block_size is None:
        return 1.0
    block_k, block_n = weight_block_size
    return 1.0 + 4.0 / (block_k * block_n)


def int_bytes_per_param(bits: int, group_size: int, zero_point: bool) -> float:
    """AWQ/GPTQ integer weights: ``bits / 8`` bytes a weight, plus per group of ``group_size`` weights one
    float16 scale (2 bytes) and, with zero points, one packed ``bits``-wide zero (``bits / 8`` bytes). Group
    size -1 (one group per output channel): the scales add under 0.1%, left out."""
    per_weight = bits / 8
    if group_size <= 0:
        return per_weight
    return per_weight + (2 + (bits / 8 if zero_point else 0)) / group_size


# MXFP4 (OCP Microscaling): 4-bit e2m1 values in blocks of 32 sharing one 8-bit e8m0 scale: 0.5 + 1/32 bytes.
MXFP4_BYTES_PER_PARAM = 0.5 + 1 / 32
