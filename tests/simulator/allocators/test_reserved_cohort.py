"""The reserved allocator's decode cohort moves counters only: after any sequence of operations it gives the
breakdown that per-sequence appends give, and its growth bound is exact (members grow up to their final
length)."""

from __future__ import annotations

from allocator_ops import COHORT_OPS, KV_BYTES_PER_TOKEN, TINY, run_twin_ops
from hypothesis import given, settings
from hypothesis import strategies as st

from kvsim.simulator.allocators import ReservedAllocator, ReservedConfig


def pair(policy: str, capacity_tokens: int):
    kwargs = dict(
        model=TINY,
        tp=1,
        capacity_bytes=capacity_tokens * KV_BYTES_PER_TOKEN,
        swap_space_bytes=128 * KV_BYTES_PER_TOKEN,
    )
    return ReservedAllocator(ReservedConfig(policy=policy), **kwargs), ReservedAllocator(
        ReservedConfig(policy=policy), **kwargs
    )


@settings(max_examples=300, deadline=None)
@given(
    ops=COHORT_OPS, policy=st.sampled_from(["max", "pow2", "oracle"]), capacity_tokens=st.integers(64, 1200)
)
def test_cohort_matches_per_sequence_appends(ops, policy, capacity_tokens):
    def least_room(plain, members, limit):  # members grow up to their final length
        room = min(
            (plain.seqs[s].final_num_tokens - plain.seqs[s].num_tokens for s in members), default=limit
        )
        return max(0, min(limit, room))

    def within_final(alloc, seq_id):
        return alloc.seqs[seq_id].num_tokens <= alloc.seqs[seq_id].final_num_tokens

    run_twin_ops(*pair(policy, capacity_tokens), ops, expected_growth=least_room, can_join=within_final)
