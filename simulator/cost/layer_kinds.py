"""The work of the layers beyond a dense decoder (issue 22; DESIGN §5): mixture-of-experts MLPs, latent
attention's projections, sliding-window attention. Each is timed with the profile's own GEMM and attention
terms, so a measured profile times them where its fits hold and the roofline where it stands in; no term here
is fitted on MoE, MLA or windowed kernels yet (until the calibration sweeps time them, their cost is the
pooled GEMM fit or the roofline, and says so in the cost model's description).

MoE layer, for ``t`` tokens on one TP shard (vLLM's fused MoE without expert parallelism: every GPU holds a
``moe_intermediate / tp`` slice of every expert):
- the router, a ``hidden × num_experts`` GEMM at the model's dtype;
- the experts' gate-up and down GEMMs, each one launch over all experts: FLOPs for ``t × k`` token-expert
  pairs, ``2 · t·k · hidden · 2·inter`` and ``2 · t·k · inter · hidden``; bytes read: the weights of the
  experts touched (at their stored precision) plus each pair's activations. Experts touched: with each token
  choosing ``k`` of ``E`` experts uniformly at random (the assumption: real routers are skewed, and touch
  fewer), the expected number of distinct experts is ``E · (1 − (1 − k/E)^t)``: ``k`` for one token, all
  ``E`` for large batches, so small decode batches read a fraction of the experts' weights;
- shared experts, a dense gated MLP of ``shared_expert_intermediate_size`` for every token.
Latent attention (DeepSeek): the projections ``q_a`` (hidden × q_lora), ``q_b`` (q_lora × heads·(nope+rope)),
``kv_a`` (hidden × (kv_lora + rope)), ``kv_b`` (kv_lora × heads·(nope+v)) and ``o`` (heads·v × hidden) as
GEMMs (the absorbed decode form does the same multiply-adds per token, to within the ``kv_b`` weights read
once either way); decode attention reads the latent, ``kv_lora + rope`` values per token and layer.
Sliding-window layers: prefill pairs a query only with the ``window`` keys before it (``windowed_pairs``) and
reads at most ``q_len + window − 1`` keys; decode reads ``min(context, window)`` per sequence, bounded per step
by ``min(Σ context, sequences × window)`` (the batch carries the sum of contexts only: exact when every
decoding sequence is past the window, or none is).
"""

from __future__ import annotations

from kvsim.simulator.cost.profile import Term
from kvsim.simulator.cost.work import GemmShape
from kvsim.simulator.specs import ModelSpec


def expected_experts_touched(num_tokens: int, num_experts: int, experts_per_tok: int) -> float:
    """Distinct experts ``num_tokens`` tokens reach, each choosing ``experts_per_tok`` of ``num_experts``
    uniformly: ``E · (1 − (1 − k/E)^t)`` (an expert is missed by one token with probability 1 − k/E)."""
    return num_experts * (1.0 - (1.0 - experts_per_tok / num_experts) ** num_tokens)


def windowed_pairs(q_len: int, kv_len: int, window: int) -> int:
    """(query, key) pairs of ``q_len`` new tokens at the end of a ``kv_len`` context when each query sees
    itself and the ``window − 1`` keys before it: ``f(kv_len) − f(kv_len − q_len)``, ``f(n) = Σ_{p<n}
    min(p + 1, window)``."""

    def f(n: int) -> int:
        if n <= window:
            return n * (n + 1) // 2
        return window * (window + 1) // 2 + (n - window) * window

    return f(kv_len) - f(kv_len - q_len)


def mla_gemm_shapes(model: ModelSpec, tp: int = 1) -> tuple[GemmShape, ...]:
    """Latent attention's projections on one TP shard (q_a and kv_a replicated, the rest split by heads)."""
    h, heads = model.hidden_size, model.num_heads // tp
    qk_head = model.qk_nope_head_dim + model.qk_rope_head_dim
    shapes = [GemmShape("qkv", h, model.kv_lora_rank + model.qk_rope_head_dim)]  # kv_a
    if model.q_lora_rank:
        shapes += [
            GemmShape("qkv", h, model.q_lora_rank),
            GemmShape("qkv", model.q_lora_rank, heads * qk_head),
        ]
    else:
        shapes.append(GemmShape("qkv", h, heads * qk_head))
    shapes.append(GemmShape("qkv", model.kv_lora_rank, heads * (model.qk_nope_head_dim + model.v_head_dim)))
    shapes.append(GemmShape("o", heads * model.v_head_dim, h))
    return tuple(shapes)


class LinearGemm:
    """One GEMM's cost in the step's tokens ``t``: ``const + max(flop_s·t, byte0_s + byte_s·t)``, the weights
    read once a step at ``weight_bytes`` a parameter, activations at ``dtype_bytes``."""

    __slots__ = ("byte0_s", "byte_s", "const_s", "flop_s")

    def __init__(self, term: Term, shape: GemmShape, dtype_bytes: int, weight_bytes: float) -> None:
        p = term.params
        self.const_s = p["const_s"]
        self.flop_s = p["s_per_flop"] * (2 * shape.k * shape.n)
        self.byte0_s = p["s_per_byte"] * (weight_bytes * shape.k * shape.n)
        self.byte_s = p["s_per_byte"] * (dtype_bytes * (shape.k + shape.n))

    def __call__(self, num_tokens: int) -> float:
        return self.const_s + max(self.flop_s * num_tokens, self.byte0_s + self.byte_s * num_tokens)


class MoeMlp:
    """One MoE layer's MLP for ``t`` tokens on one shard (module docstring): router, experts, shared experts."""

    def __init__(self, term: Term, model: ModelSpec, tp: int) -> None:
        p = term.params
        self.const_s, self.s_flop, self.s_byte = p["const_s"], p["s_per_flop"], p["s_per_byte"]
        h, inter = model.hidden_size, model.moe_intermediate_size // tp
        self.num_experts, self.top_k = model.num_experts, model.num_experts_per_tok
        expert_bytes = model.expert_bytes_per_param or model.linear_bytes_per_param or model.dtype_bytes
        self.up_weight_bytes = expert_bytes * h * 2 * inter  # gate and up of one expert
        self.down_weight_bytes = expert_bytes * inter * h
        self.up_flops, self.down_flops = 2 * h * 2 * inter, 2 * inter * h  # per token-expert pair
        act = model.dtype_bytes
        self.up_act_bytes, self.down_act_bytes = act * (h + 2 * inter), act * (inter + h)
        self.router = LinearGemm(term, GemmShape("router", h, model.num_experts), act, act)
        shared = model.shared_expert_intermediate_size // tp
        linear_bytes = model.linear_bytes_per_param or model.dtype_bytes
        self.shared = (
            (
                LinearGemm(term, GemmShape("shared_up", h, 2 * shared), act, linear_bytes),
                LinearGemm(term, GemmShape("shared_down", shared, h), act, linear_bytes),
            )
            if shared
            else ()
        )

    def __call__(self, num_tokens: int) -> float:
        pairs = num_tokens * self.top_k
        touched = expected_experts_touched(num_tokens, self.num_experts, self.top_k)
        up = self.const_s + max(
            self.s_flop * self.up_flops * pairs,
            self.s_byte * (touched * self.up_weight_bytes + pairs * self.up_act_bytes),
        )
        down = self.const_s + max(
            self.s_flop * self.down_flops * pairs,
            self.s_byte * (touched * self.down_weight_bytes + pairs * self.down_act_bytes),
        )
        return self.router(num_tokens) + up + down + sum(gemm(num_tokens) for gemm in self.shared)


class ArchitectureGemms:
    """All layers' GEMMs of a model with MoE layers or latent attention, for ``t`` tokens (one shard)."""

    def __init__(self, term_of, model: ModelSpec, tp: int, dense_shapes: tuple[GemmShape, ...]) -> None:
        """``term_of(op)``: the profile's GEMM term for ``op``; ``dense_shapes``: work.layer_gemm_shapes."""
        act = model.dtype_bytes
        linear_bytes = model.linear_bytes_per_param or act
        qkv, o, up, down = dense_shapes
        attention = mla_gemm_shapes(model, tp) if model.is_mla else (qkv, o)
        self.attention = tuple(LinearGemm(term_of(s.op), s, act, linear_bytes) for s in attention)
        self.dense_mlp = (
            LinearGemm(term_of("mlp_up"), up, act, linear_bytes),
            LinearGemm(term_of("mlp_down"), down, act, linear_bytes),
        )
        self.num_layers = model.num_layers
        self.num_moe_layers = model.num_moe_layers
        self.moe = MoeMlp(term_of("mlp_up"), model, tp) if model.is_moe else None

    def __call__(self, num_tokens: int) -> float:
        attention_s = sum(gemm(num_tokens) for gemm in self.attention)
        dense_s = sum(gemm(num_tokens) for gemm in self.dense_mlp)
        gemm_s = self.num_layers * attention_s + (self.num_layers - self.num_moe_layers) * dense_s
        if self.moe is not None:
            gemm_s += self.num_moe_layers * self.moe(num_tokens)
        return gemm_s


def windowed_prefill_layer_s(prefill: tuple[float, float, float, float], q_lens, kv_lens, cost) -> float:
    """One windowed layer's prefill attention for the step's prefilling sequences: ``prefill`` is the kernel's
    (const_s, s/FLOP, s/byte, s/seq); each sequence's FLOPs over ``windowed_pairs`` and bytes over the keys
    its queries can see (``q_len + window − 1`` at most). ``cost``: the ProfileCostModel (heads, model)."""
    const_s, s_flop, s_byte, s_seq = prefill
    model, window = cost.model, cost._window
    heads, kv_heads, head_dim = cost._heads, cost._kv_heads, model.head_dim
    total_s = const_s
    for q_len, kv_len in zip(q_lens, kv_lens):
        flops = 4 * heads * head_dim * windowed_pairs(q_len, kv_len, window)
        keys = min(kv_len, q_len + window - 1)
        nbytes = model.dtype_bytes * head_dim * (2 * q_len * heads + 2 * keys * kv_heads)
        total_s += s_flop * flops + s_byte * nbytes + s_seq
    return total_s
