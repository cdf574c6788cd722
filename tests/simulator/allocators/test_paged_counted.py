"""The counted paged allocator is ``PagedAllocator`` without block ids: after any sequence of operations, the
two give the same answers and the same five-part breakdown; its decode cohort grows members exactly as
per-sequence appends would (DESIGN §3, §7b)."""

from __future__ import annotations

import copy

from allocator_ops import COHORT_OPS, KV_BYTES_PER_TOKEN, TINY, run_twin_ops
from hypothesis import given, settings
from hypothesis import strategies as st

from kvsim.simulator.allocators import PagedAllocator, PagedConfig
from kvsim.simulator.allocators.paged_counted import CountedPagedAllocator


def pair(block_size: int, capacity_tokens: int):
    kwargs = dict(model=TINY, tp=1, capacity_bytes=capacity_tokens * KV_BYTES_PER_TOKEN)
    config = PagedConfig(block_size=block_size)
    return PagedAllocator(config, swap_space_bytes=64 * KV_BYTES_PER_TOKEN, **kwargs), CountedPagedAllocator(
        config, swap_space_bytes=64 * KV_BYTES_PER_TOKEN, **kwargs
    )


@settings(max_examples=300, deadline=None)
@given(ops=COHORT_OPS, block_size=st.sampled_from([1, 4, 16]), capacity_tokens=st.integers(16, 400))
def test_counted_allocator_matches_block_ids(ops, block_size, capacity_tokens):
    ids, counted = pair(block_size, capacity_tokens)

    def block_bound(plain, members, limit):  # what the id-tracking allocator says of the same sequences
        return plain.max_uniform_growth(members, limit) if members else limit

    run_twin_ops(ids, counted, ops, expected_growth=block_bound)
    assert counted.num_free_blocks == ids.pool.num_free_blocks == counted.num_blocks


def test_cohort_step_counts_the_blocks_opened():
    """Three members at 15, 16 and 17 tokens (block 16): growing by one opens a block for the one at 16;
    by 16 steps, one block each."""
    _, counted = pair(16, 400)
    for seq_id, tokens in enumerate((15, 16, 17)):
        counted.allocate(seq_id, tokens, final_num_tokens=100)
        counted.cohort_join(seq_id)
    free = counted.num_free_blocks
    assert counted.cohort_num_tokens() == 48
    assert counted.cohort_grow(1) and counted.num_free_blocks == free - 1
    counted.check_invariants()
    assert counted.cohort_grow(1) and counted.num_free_blocks == free - 2  # 15 -> 17 crosses too
    assert counted.cohort_num_tokens() == 54 and counted.num_cohort_blocks == 2 + 2 + 2
    counted.check_invariants()
    assert counted.cohort_grow(16) and counted.num_free_blocks == free - 5  # one block each
    counted.check_invariants()
    growth = counted.cohort_max_growth(1000)
    assert copy.deepcopy(counted).cohort_grow(growth) and not copy.deepcopy(counted).cohort_grow(growth + 1)
    assert [counted.cohort_leave(s) for s in range(3)] == [33, 34, 35]
    counted.check_invariants()


def test_counted_allocator_refuses_what_it_cannot_model():
    import pytest

    from kvsim.errors import KvsimError

    with pytest.raises(KvsimError, match="prefix"):
        CountedPagedAllocator(
            PagedConfig(enable_prefix_caching=True), model=TINY, tp=1, capacity_bytes=4096 * 512
        )
    _, counted = pair(16, 400)
    counted.allocate(0, 10, final_num_tokens=20)
    with pytest.raises(AssertionError, match="forks"):
        counted.fork(0, 1)
