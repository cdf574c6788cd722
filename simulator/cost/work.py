"""The work each costed kernel does: shapes, FLOPs and bytes per launch (one layer, one TP shard).

Shared by the cost model (to predict) and by ``kvsim.calibrate`` (to turn measured shapes into the features a
profile's terms are fitted on), so both count work the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvsim.simulator.specs import ModelSpec


@dataclass(frozen=True)
class GemmShape:
    """``y[t, n] = x[t, k] @ W[k, n]`` on one TP shard, ``t`` the tokens of the step."""

    op: str  # "qkv" | "o" | "mlp_up" | "mlp_down" | "lm_head"
    k: int
    n: int


def layer_gemm_shapes(model: ModelSpec, tp: int = 1) -> tuple[GemmShape, ...]:
    """The four GEMMs of one decoder layer per TP shard (Megatron split: QKV and MLP-up by columns, O and
    MLP-down by rows). A gated MLP fuses gate and up into one GEMM of twice the width, as vLLM does."""
    q_width = model.num_heads * model.head_dim // tp
    kv_width = max(1, model.num_kv_heads // tp) * model.head_dim
    inter = model.intermediate_size // tp
    return (
        GemmShape("qkv", model.hidden_size, q_width + 2 * kv_width),
        GemmShape("o", q_width, model.hidden_size),
        GemmShape("mlp_up", model.hidden_size, (2 if model.gated_mlp else 1) * inter),
        GemmShape("mlp_down", inter, model.hidden_size),
    )


def lm_head_shape(model: ModelSpec, tp: int = 1) -> GemmShape:
    """The LM head, vocabulary split across the TP group (vLLM's ParallelLMHead)."""
    return GemmShape("lm_head", model.hidden_size, -(-model.vocab_size // tp))


def gemm_flops(num_tokens: int, shape: GemmShape) -> int:
    return 2 * num_tokens * shape.k * shape.n


def gemm_bytes(num_tokens: int, shape: GemmShape, dtype_bytes: int) -> int:
    """Weights read once, activations read and written once."""
    return dtype_bytes * (shape.k * shape.n + num_tokens * (shape.k + shape.n))


def kv_bytes_per_token_layer(model: ModelSpec, tp: int = 1) -> int:
    """KV bytes of one token in one layer on one shard, at the KV cache dtype: what decode attention reads per
    context token (K and V of this shard's KV heads, or MLA's latent: ``ModelSpec.kv_bytes_per_token_layer``)."""
    return model.kv_bytes_per_token_layer(tp)


def causal_attended_pairs(q_len: int, kv_len: int) -> int:
    """(query, key) pairs computed for ``q_len`` new tokens at the end of a ``kv_len`` context, causally."""
    return q_len * (kv_len - q_len) + q_len * (q_len + 1) // 2


def prefill_attn_flops(q_len: int, kv_len: int, num_heads: int, head_dim: int) -> int:
    """QKᵀ and PV, 2 FLOPs per multiply-add each, over the causal pairs, for ``num_heads`` query heads."""
    return 4 * num_heads * head_dim * causal_attended_pairs(q_len, kv_len)


def prefill_attn_bytes(
    q_len: int, kv_len: int, num_heads: int, num_kv_heads: int, head_dim: int, dtype_bytes: int
) -> int:
    """Q read and O written once; K and V of the whole context read once (FlashAttention's ideal)."""
    return dtype_bytes * head_dim * (2 * q_len * num_heads + 2 * kv_len * num_kv_heads)


def ring_allreduce_bytes(message_bytes: int, tp: int) -> float:
    """Bytes each GPU sends in a ring all-reduce of ``message_bytes``: 2 (tp − 1) / tp of the message."""
    return 2 * (tp - 1) / tp * message_bytes


def elementwise_bytes_per_token(model: ModelSpec, tp: int, op: str) -> int:
    """Bytes of the output tensor of elementwise kernel ``op`` (profile.LAYER_OPS) per token on one shard:
    the feature its profile term is linear in. Norms, residual adds and the embedding write the full hidden
    state (replicated across the TP group); rotary rewrites this shard's q and k heads; the activation writes
    this shard's slice of the intermediate size."""
    if op in ("rmsnorm", "residual_add", "embedding"):
        width = model.hidden_size
    elif op == "rotary":
        width = (model.num_heads // tp + max(1, model.num_kv_heads // tp)) * model.head_dim
    elif op == "activation":
        width = model.intermediate_size // tp
        if model.is_moe:  # a MoE layer activates its token's experts' and the shared experts' intermediates
            moe = (
                model.num_experts_per_tok * model.moe_intermediate_size
                + model.shared_expert_intermediate_size
            )
            width = (model.num_dense_layers * width + model.num_moe_layers * (moe // tp)) // model.num_layers
    else:
        raise AssertionError(f"unknown elementwise op {op!r}")
    return width * model.dtype_bytes


def kv_write_bytes_per_token(model: ModelSpec, tp: int = 1) -> int:
    """Bytes one new token writes into one layer's KV cache on one shard (its K and V): the feature of the
    ``kv_write_*`` terms, per token of the step."""
    return kv_bytes_per_token_layer(model, tp)


SAMPLING_LOGIT_BYTES = 4  # logits are sampled in float32 (vLLM upcasts them before the sampler)


def sampling_bytes_per_seq(model: ModelSpec) -> int:
    """Bytes of one sequence's float32 logits over the whole vocabulary: the feature of the ``sampling*``
    terms, per sampled sequence. The whole vocabulary at any TP degree: the logits are gathered to sample."""
    return model.vocab_size * SAMPLING_LOGIT_BYTES
