"""The narrow objects between scheduler, cost model and recorder (STYLE 5)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Batch:
    """The work of one model step on one replica, as the cost model needs it.

    Decode work is given as aggregates, since its cost is linear in them and the engine keeps them as
    running sums: per layer the decode kernel reads ``decode_kv_tokens`` tokens of K and V.
    """

    prefill_q_lens: tuple[int, ...] = ()  # new tokens computed this step, per prefilling sequence
    prefill_kv_lens: tuple[int, ...] = ()  # context length after this step (cached + new), same order
    num_decode_seqs: int = 0
    decode_kv_tokens: int = 0  # Σ context lengths of the decoding sequences, tokens
    decode_kv_blocks: int = 0  # Σ ceil(context / block_size); paged kernel only, else 0
    attention_kernel: str = "paged"  # "paged" | "contiguous": which measured kernel serves this replica
    block_size: int = 16  # tokens per block for the paged kernel
    allocator_overhead_s: float = 0.0  # unhidden allocator work charged to this step (vAttention mapping)

    @property
    def num_prefill_tokens(self) -> int:
        return sum(self.prefill_q_lens)

    @property
    def num_tokens(self) -> int:
        return self.num_prefill_tokens + self.num_decode_seqs

    @property
    def num_seqs(self) -> int:
        return len(self.prefill_q_lens) + self.num_decode_seqs


@dataclass(frozen=True, slots=True)
class StepTime:
    """Duration of one step, in named parts (seconds, whole model, per replica). ``total_s`` is their sum."""

    gemm_s: float = 0.0  # QKV, O and MLP projections, all layers
    attn_prefill_s: float = 0.0
    attn_decode_s: float = 0.0
    lm_head_s: float = 0.0
    allreduce_s: float = 0.0  # tensor-parallel all-reduces
    overhead_s: float = 0.0  # per-step scheduling / launch overhead
    allocator_s: float = 0.0  # unhidden allocator work (vAttention mapping, block-table preparation)
    # Elementwise kernels, all layers (0 where the profile has no such term): RMSNorms (two per layer and the
    # final one), rotary, the MLP's activation, the residual adds, the token embedding
    rmsnorm_s: float = 0.0
    rotary_s: float = 0.0
    activation_s: float = 0.0
    residual_add_s: float = 0.0
    embedding_s: float = 0.0
    kv_write_s: float = 0.0  # new K and V written into the KV cache, all layers
    sampling_s: float = 0.0  # choosing each sequence's next token from its logits (greedy or top-p)

    @property
    def elementwise_s(self) -> float:
        """The elementwise parts' sum (a cost model caches it per token count: total_s adds it as one)."""
        return self.rmsnorm_s + self.rotary_s + self.activation_s + self.residual_add_s + self.embedding_s

    @property
    def small_kernels_s(self) -> float:
        """The elementwise parts, the KV-cache write and sampling, summed in this order (a cost model caches
        it per batch size: total_s adds it as one)."""
        return self.elementwise_s + self.kv_write_s + self.sampling_s

    @property
    def total_s(self) -> float:
        return (
            self.gemm_s
            + self.attn_prefill_s
            + self.attn_decode_s
            + self.lm_head_s
            + self.allreduce_s
            + self.overhead_s
            + self.allocator_s
            + self.small_kernels_s
        )
