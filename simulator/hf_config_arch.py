"""The parts of a Hugging Face ``config.json`` beyond a dense decoder: experts, latent attention, quantized
weights. Each reader takes ``hf_config._Reader`` (which remembers the keys read) and returns ``ModelSpec`` fields;
a value kvsim cannot model is refused by name.

Experts (``_Family.moe``):
- ``mixtral``: ``num_local_experts``, ``num_experts_per_tok``; each expert is ``intermediate_size`` wide.
- ``qwen_moe`` (qwen2_moe, qwen3_moe): ``num_experts``, ``num_experts_per_tok``, ``moe_intermediate_size``;
  ``shared_expert_intermediate_size`` (Qwen2-MoE's one shared expert; Qwen3-MoE has none). Every layer sparse:
  ``decoder_sparse_step`` other than 1 and a non-empty ``mlp_only_layers`` are refused.
- ``deepseek`` (deepseek_v2/v3): ``n_routed_experts``, ``num_experts_per_tok``, ``moe_intermediate_size``,
  ``n_shared_experts`` shared experts of that size, the first ``first_k_dense_replace`` layers dense
  (``intermediate_size``); ``moe_layer_freq`` other than 1 refused. Group-limited routing (``n_group``,
  ``topk_group``, ``topk_method``, ``scoring_func``, ``routed_scaling_factor``) chooses which experts, not how
  many: noted as ignored. ``num_nextn_predict_layers`` (the MTP module) is not loaded by vLLM unless it serves
  speculative decoding: noted, its weights not counted.
- ``gpt_oss``: ``num_local_experts``, ``num_experts_per_tok`` (or ``experts_per_token``); experts
  ``intermediate_size`` wide.
Latent attention (deepseek): ``kv_lora_rank``, ``q_lora_rank`` (null: queries straight from the hidden state),
``qk_nope_head_dim``, ``qk_rope_head_dim``, ``v_head_dim``; ``head_dim`` is qk_nope + qk_rope.
Quantization (``quantization_config.quant_method``), bytes per weight with scales (``weights.py``):
- ``fp8``: 1 byte, + a float32 scale per ``weight_block_size`` block; every decoder linear and expert.
- ``awq``: ``bits`` (4) / 8, + per ``group_size`` a float16 scale and (``zero_point``, default true) a packed
  zero; ``gptq``: the same with ``bits`` 4 or 8 and zeros always stored.
- ``mxfp4``: 0.5 + 1/32; the experts only (vLLM's Mxfp4Config quantizes FusedMoE layers, other linears stay
  unquantized), so a model without experts is refused.
- ``modules_to_not_convert`` / ``ignored_layers``: the embedding, LM head and router are kept in 16 bits in any
  case; attention kept in 16 bits is modelled for MoE models (the experts alone quantized); any other pattern is
  refused by name. Any other method (bitsandbytes, compressed-tensors, ...) and a ``kv_cache_scheme`` are
  refused. The GEMMs' cost reads the quantized bytes and computes at the 16-bit FLOP rate (no fp8 or int4
  tensor-core speed-up is assumed; cost/roofline.py).
"""

from __future__ import annotations

from typing import Any

from kvsim.simulator.weights import MXFP4_BYTES_PER_PARAM, fp8_bytes_per_param, int_bytes_per_param

# Keys of expert routing that choose which experts a token takes, not how many: no memory, and the cost model
# assumes uniform routing (cost/moe.py), so they are named as ignored.
ROUTING_KEYS = (
    "n_group",
    "topk_group",
    "topk_method",
    "scoring_func",
    "routed_scaling_factor",
    "norm_topk_prob",
    "aux_loss_alpha",
    "seq_aux",
    "ep_size",
    "router_aux_loss_coef",
    "output_router_logits",
    "router_jitter_noise",
)


def read_experts(reader: Any, style: str, num_layers: int) -> dict[str, int]:
    """MoE fields of ``ModelSpec`` for one ``_Family.moe`` style (module docstring)."""
    routing = [f"{key} {reader.config[key]!r}" for key in ROUTING_KEYS if reader.config.get(key) is not None]
    reader.used.update(ROUTING_KEYS)
    if routing:
        reader.notes.append(f"routing policy, ignored (uniform routing assumed): {', '.join(routing)}")
    shared = num_dense = 0
    if style == "mixtral":
        num_experts, inter = reader.integer("num_local_experts"), reader.integer("intermediate_size")
        top_k = reader.integer("num_experts_per_tok")
    elif style == "gpt_oss":
        num_experts, inter = reader.integer("num_local_experts"), reader.integer("intermediate_size")
        top_k = reader.integer("num_experts_per_tok", 0) or reader.integer("experts_per_token")
        reader.used.add("experts_per_token")
    elif style == "qwen_moe":
        num_experts, inter = reader.integer("num_experts"), reader.integer("moe_intermediate_size")
        top_k = reader.integer("num_experts_per_tok")
        shared = reader.get("shared_expert_intermediate_size") or 0
        step, dense_layers = reader.get("decoder_sparse_step", 1), reader.get("mlp_only_layers") or []
        if step != 1 or dense_layers:
            raise reader.error(
                f"decoder_sparse_step {step!r}, mlp_only_layers {dense_layers!r}: dense MLP layers between the "
                "sparse ones are not modelled (every layer sparse: step 1, no mlp_only_layers)"
            )
    elif style == "deepseek":
        num_experts, inter = reader.integer("n_routed_experts"), reader.integer("moe_intermediate_size")
        top_k = reader.integer("num_experts_per_tok")
        shared = (reader.get("n_shared_experts") or 0) * inter
        num_dense = reader.get("first_k_dense_replace") or 0
        freq = reader.get("moe_layer_freq", 1)
        if freq != 1:
            raise reader.error(f"moe_layer_freq {freq!r}: MoE on every layer after the dense ones only (1)")
        mtp = reader.get("num_nextn_predict_layers")
        if mtp:
            reader.notes.append(
                f"num_nextn_predict_layers {mtp}: the MTP module is loaded by vLLM only for speculative "
                "decoding (not simulated); its weights are not counted"
            )
    else:
        raise AssertionError(f"unknown MoE style {style!r}")
    if not isinstance(shared, int) or isinstance(shared, bool) or shared < 0:
        raise reader.error(f"shared experts' size must be a non-negative integer, got {shared!r}")
    if not isinstance(num_dense, int) or isinstance(num_dense, bool) or not 0 <= num_dense < num_layers:
        raise reader.error(
            f"first_k_dense_replace must be an integer in [0, {num_layers}), got {num_dense!r}"
        )
    return dict(
        num_experts=num_experts,
        num_experts_per_tok=top_k,
        moe_intermediate_size=inter,
        shared_expert_intermediate_size=shared,
        num_dense_layers=num_dense,
    )


def read_latent_attention(reader: Any) -> dict[str, int]:
    """MLA fields of ``ModelSpec`` (DeepSeek-V2/V3)."""
    nope, rope = reader.integer("qk_nope_head_dim"), reader.integer("qk_rope_head_dim")
    q_lora = reader.get("q_lora_rank")
    if q_lora is not None and (not isinstance(q_lora, int) or isinstance(q_lora, bool) or q_lora < 1):
        raise reader.error(f"'q_lora_rank' must be a positive integer or null, got {q_lora!r}")
    return dict(
        kv_lora_rank=reader.integer("kv_lora_rank"),
        q_lora_rank=q_lora or 0,
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope,
        v_head_dim=reader.integer("v_head_dim"),
        head_dim=nope + rope,
    )


def read_quantization(reader: Any, *, has_experts: bool) -> dict[str, Any]:
    """Weight precision fields of ``ModelSpec`` from ``quantization_config`` (module docstring); {} if none."""
    quant = reader.get("quantization_config")
    if quant is None:
        return {}
    if not isinstance(quant, dict):
        raise reader.error(f"'quantization_config' must be an object, got {quant!r}")
    method = quant.get("quant_method")
    if quant.get("kv_cache_scheme") is not None:
        raise reader.error(
            "quantization_config.kv_cache_scheme: a KV-cache quantization carried by the checkpoint is not "
            "modelled; give --kv-cache-dtype fp8 instead"
        )
    attention_kept = _attention_kept(reader, quant, method)
    if method == "fp8":
        block = quant.get("weight_block_size")
        if block is not None and not (
            isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block)
        ):
            raise reader.error(f"quantization_config.weight_block_size must be [k, n] or null, got {block!r}")
        per_param = fp8_bytes_per_param(tuple(block) if block else None)
        label = f"fp8{f' block {block[0]}x{block[1]}' if block else ''}"
        formula = f"1 byte a weight{f' + 4 bytes per {block[0]}x{block[1]} block' if block else ''}"
    elif method in ("awq", "gptq"):
        bits, group = quant.get("bits", 4), quant.get("group_size", 128)
        zero_point = quant.get("zero_point", True) if method == "awq" else True
        if bits not in ((4,) if method == "awq" else (4, 8)) or not isinstance(group, int) or group == 0:
            raise reader.error(
                f"quantization_config {method}: bits {bits!r}, group_size {group!r} not modelled"
            )
        per_param = int_bytes_per_param(bits, group, bool(zero_point))
        label = f"{method} int{bits} g{group}"
        formula = f"{bits}/8 bytes a weight + per {group} weights a 2-byte scale" + (
            f" and a {bits}-bit zero" if zero_point else ""
        )
    elif method == "mxfp4":
        if not has_experts:
            raise reader.error("quant_method 'mxfp4' quantizes experts only (vLLM), and this model has none")
        per_param, label, formula = (
            MXFP4_BYTES_PER_PARAM,
            "mxfp4 (experts)",
            "0.5 byte a weight + 1 byte per 32",
        )
        attention_kept = True
    else:
        raise reader.error(
            f"quantization_config quant_method {method!r} is not modelled; kvsim models fp8, awq, gptq and mxfp4"
        )
    if attention_kept and not has_experts:
        raise reader.error(
            f"quantization_config ({method}) keeps attention unquantized in a model without experts: a dense "
            "MLP quantized beside 16-bit attention is not modelled"
        )
    reader.notes.append(
        f"quantized weights ({label}): {per_param:.5g} bytes a parameter ({formula}); GEMMs read them at that "
        "size and are costed at the 16-bit FLOP rate"
    )
    return dict(
        linear_bytes_per_param=None if attention_kept else per_param,
        expert_bytes_per_param=per_param if has_experts else None,
        quantization=label,
    )


_ALWAYS_16_BIT = ("embed_tokens", "lm_head", "router", "mlp.gate", "shared_expert_gate")


def _attention_kept(reader: Any, quant: dict[str, Any], method: Any) -> bool:
    """Whether ``modules_to_not_convert`` / ``ignored_layers`` keep attention in 16 bits; other patterns that
    kvsim cannot place are refused by name."""
    patterns = [*(quant.get("modules_to_not_convert") or []), *(quant.get("ignored_layers") or [])]
    attention_kept = False
    for pattern in patterns:
        text = str(pattern)
        if "self_attn" in text:
            attention_kept = True
        elif not any(part in text for part in _ALWAYS_16_BIT):
            raise reader.error(
                f"quantization_config ({method}) keeps {text!r} unquantized: kvsim models the embedding, LM "
                "head, router and (MoE models) attention kept in 16 bits, nothing else"
            )
    return attention_kept
