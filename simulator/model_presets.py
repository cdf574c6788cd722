"""Presets of the models people serve today (issue 22): ModelSpec fields by preset name, each cited to its
published ``config.json`` on the Hugging Face Hub (the repo named beside it). The older dense presets are in
``specs.py``'s ``_MODEL_SHAPES``.

What each family changes, in the fields below: Qwen3 gives ``head_dim`` (128) apart from hidden / heads; MoE
models list experts, experts per token and the expert intermediate size (Mixtral's experts use
``intermediate_size``; Qwen3-MoE's ``moe_intermediate_size``, no shared expert); DeepSeek-V3 adds MLA
(``kv_lora_rank``, ``q_lora_rank``, ``qk_nope/rope_head_dim``, ``v_head_dim``), one shared expert of
``moe_intermediate_size`` and 3 dense layers first (``first_k_dense_replace``), fp8 weights in 128 × 128 blocks;
gpt-oss alternates sliding (window 128, even layers) and full attention (odd layers: its ``layer_types``), its
experts in MXFP4 with attention, router, embedding and LM head in bf16 (``modules_to_not_convert``); Gemma 3
makes every sixth layer global (``sliding_window_pattern`` 6: layers 5, 11, ...), the others a 1,024-token
window, ties its embedding, and ships a SigLIP vision tower (``extra_params``); Mistral-7B-v0.1 has a
4,096-token window on every layer.
"""

from __future__ import annotations

from kvsim.simulator.weights import MXFP4_BYTES_PER_PARAM, fp8_bytes_per_param

_QWEN3 = dict(head_dim=128, vocab_size=151936, max_model_len=40960)  # every Qwen3 config.json
_GPT_OSS = dict(
    hidden_size=2880,
    num_heads=64,
    num_kv_heads=8,
    head_dim=64,
    intermediate_size=2880,
    moe_intermediate_size=2880,  # gpt-oss's experts use intermediate_size
    num_experts_per_tok=4,
    vocab_size=201088,
    max_model_len=131072,  # max_position_embeddings (yarn x32 of 4,096, already scaled)
    sliding_window=128,
    expert_bytes_per_param=MXFP4_BYTES_PER_PARAM,
    quantization="mxfp4 (experts; attention, router, embedding and LM head bf16)",
)
# Gemma 3's vision tower (google/gemma-3-27b-it vision_config: SigLIP, 27 layers, hidden 1152, intermediate
# 4304, 896-pixel images in 14-pixel patches) and its projector to the text model's 5,376:
# 27 × (4 × 1152² + 2 × 1152 × 4304) + (896 / 14)² × 1152 + 14 × 14 × 3 × 1152 + 1152 × 5376.
_GEMMA3_27B_VISION_PARAMS = (
    27 * (4 * 1152**2 + 2 * 1152 * 4304) + 64 * 64 * 1152 + 14 * 14 * 3 * 1152 + 1152 * 5376
)


def _alternating(num_layers: int) -> tuple[str, ...]:
    return tuple("sliding_attention" if i % 2 == 0 else "full_attention" for i in range(num_layers))


def _every_sixth_global(num_layers: int) -> tuple[str, ...]:
    return tuple("full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(num_layers))


PRESETS: dict[str, dict] = {
    # meta-llama/Llama-3.1-70B
    "llama-3.1-70b": dict(
        name="Llama-3.1-70B",
        num_layers=80,
        hidden_size=8192,
        num_heads=64,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=28672,
        vocab_size=128256,
        max_model_len=131072,
    ),
    # Qwen/Qwen3-8B
    "qwen3-8b": dict(
        name="Qwen3-8B",
        num_layers=36,
        hidden_size=4096,
        num_heads=32,
        num_kv_heads=8,
        intermediate_size=12288,
        **_QWEN3,
    ),
    # Qwen/Qwen3-32B
    "qwen3-32b": dict(
        name="Qwen3-32B",
        num_layers=64,
        hidden_size=5120,
        num_heads=64,
        num_kv_heads=8,
        intermediate_size=25600,
        **_QWEN3,
    ),
    # Qwen/Qwen3-30B-A3B (intermediate_size 6144 is unused: decoder_sparse_step 1, mlp_only_layers [])
    "qwen3-30b-a3b": dict(
        name="Qwen3-30B-A3B",
        num_layers=48,
        hidden_size=2048,
        num_heads=32,
        num_kv_heads=4,
        intermediate_size=6144,
        num_experts=128,
        num_experts_per_tok=8,
        moe_intermediate_size=768,
        **_QWEN3,
    ),
    # Qwen/Qwen3-235B-A22B
    "qwen3-235b-a22b": dict(
        name="Qwen3-235B-A22B",
        num_layers=94,
        hidden_size=4096,
        num_heads=64,
        num_kv_heads=4,
        intermediate_size=12288,
        num_experts=128,
        num_experts_per_tok=8,
        moe_intermediate_size=1536,
        **_QWEN3,
    ),
    # mistralai/Mixtral-8x7B-v0.1
    "mixtral-8x7b": dict(
        name="Mixtral-8x7B",
        num_layers=32,
        hidden_size=4096,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=14336,
        num_experts=8,
        num_experts_per_tok=2,
        moe_intermediate_size=14336,
        vocab_size=32000,
        max_model_len=32768,
    ),
    # openai/gpt-oss-20b
    "gpt-oss-20b": dict(
        name="gpt-oss-20b", num_layers=24, num_experts=32, layer_types=_alternating(24), **_GPT_OSS
    ),
    # openai/gpt-oss-120b
    "gpt-oss-120b": dict(
        name="gpt-oss-120b", num_layers=36, num_experts=128, layer_types=_alternating(36), **_GPT_OSS
    ),
    # deepseek-ai/DeepSeek-V3 (head_dim: qk_nope + qk_rope, the width of a query-key product)
    "deepseek-v3": dict(
        name="DeepSeek-V3",
        num_layers=61,
        hidden_size=7168,
        num_heads=128,
        num_kv_heads=128,
        head_dim=192,
        intermediate_size=18432,
        vocab_size=129280,
        max_model_len=163840,
        kv_lora_rank=512,
        q_lora_rank=1536,
        qk_nope_head_dim=128,
        qk_rope_head_dim=64,
        v_head_dim=128,
        num_experts=256,
        num_experts_per_tok=8,
        moe_intermediate_size=2048,
        shared_expert_intermediate_size=2048,  # n_shared_experts 1
        num_dense_layers=3,
        linear_bytes_per_param=fp8_bytes_per_param((128, 128)),
        expert_bytes_per_param=fp8_bytes_per_param((128, 128)),
        quantization="fp8 e4m3, 128x128 blocks (embedding, LM head, router bf16)",
    ),
    # google/gemma-3-27b-it (text_config; max_position_embeddings already the 128K context, as vLLM reads it)
    "gemma-3-27b": dict(
        name="Gemma-3-27B",
        num_layers=62,
        hidden_size=5376,
        num_heads=32,
        num_kv_heads=16,
        head_dim=128,
        intermediate_size=21504,
        vocab_size=262208,
        max_model_len=131072,
        sliding_window=1024,
        layer_types=_every_sixth_global(62),
        tie_word_embeddings=True,
        extra_params=_GEMMA3_27B_VISION_PARAMS,
    ),
    # mistralai/Mistral-7B-v0.1: a 4,096-token window on every layer
    "mistral-7b-v0.1": dict(
        name="Mistral-7B-v0.1",
        num_layers=32,
        hidden_size=4096,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=14336,
        vocab_size=32000,
        max_model_len=32768,
        sliding_window=4096,
    ),
}
