"""The paged allocator (vLLM PagedAttention), as a specification."""

from __future__ import annotations

import pytest
from allocator_ops import KV_BYTES_PER_TOKEN, OPS, TINY, run_ops
from hypothesis import HealthCheck, given, settings

from kvsim.simulator.allocators import make_allocator
from kvsim.simulator.allocators.paged import PCIE_BW_BYTES_PER_S

SLOT = KV_BYTES_PER_TOKEN  # bytes of one token slot
BLOCK = 16 * SLOT


def paged(model, num_blocks=8, spec="paged", swap_blocks=0, block_size=16):
    return make_allocator(
        spec,
        model=model,
        tp=1,
        capacity_bytes=num_blocks * block_size * SLOT,
        swap_space_bytes=swap_blocks * block_size * SLOT,
    )


def test_a_17_token_prompt_takes_2_blocks_with_15_slots_of_internal_fragmentation(tiny_model):
    alloc = paged(tiny_model)
    assert alloc.allocate(0, 17, final_num_tokens=17) is not None
    parts = alloc.breakdown()
    assert alloc.pool.num_used_blocks == 2
    assert (parts.token_states, parts.reserved, parts.internal_frag) == (17 * SLOT, 0, 15 * SLOT)
    assert parts.free == 6 * BLOCK and parts.external_frag == 0


def test_slots_the_request_will_still_fill_are_reserved_the_rest_internal_fragmentation(tiny_model):
    alloc = paged(tiny_model)
    alloc.allocate(0, 17, final_num_tokens=20)  # 3 more tokens will land in the last block
    parts = alloc.breakdown()
    assert (parts.reserved, parts.internal_frag) == (3 * SLOT, 12 * SLOT)


def test_decode_fills_the_last_block_before_taking_a_new_one(tiny_model):
    alloc = paged(tiny_model)
    alloc.allocate(0, 17, final_num_tokens=100)
    assert alloc.append_slots(0, 15) and alloc.pool.num_used_blocks == 2
    assert alloc.append_slots(0, 1) and alloc.pool.num_used_blocks == 3
    assert alloc.seqs[0].block_table == [0, 1, 2]


def test_fork_shares_every_block_and_counts_its_tokens_once(tiny_model):
    alloc = paged(tiny_model)
    alloc.allocate(0, 20, final_num_tokens=30)
    before = alloc.breakdown()
    assert alloc.fork(0, 1)
    assert alloc.seqs[1].block_table == alloc.seqs[0].block_table == [0, 1]
    assert alloc.pool.ref_cnt[:2] == [2, 2]
    assert alloc.breakdown() == before


def test_a_child_appending_to_the_shared_partial_block_copies_it(tiny_model):
    alloc = paged(tiny_model)
    alloc.allocate(0, 20, final_num_tokens=30)
    alloc.fork(0, 1)
    assert alloc.append_slots(1, 1)
    assert alloc.seqs[1].block_table == [0, 2] and alloc.seqs[0].block_table == [0, 1]
    assert alloc.pool.ref_cnt[:3] == [2, 1, 1] and alloc.num_cow_copies == 1
    assert alloc.breakdown().token_states == (20 + 5) * SLOT  # the copy holds the 4 shared tokens + 1 new
    # The parent is now the block's only holder: it appends in place.
    assert alloc.append_slots(0, 1) and alloc.seqs[0].block_table == [0, 1] and alloc.num_cow_copies == 1


def test_a_child_appending_after_a_full_shared_block_takes_a_new_block_without_copying(tiny_model):
    alloc = paged(tiny_model)
    alloc.allocate(0, 16, final_num_tokens=30)
    alloc.fork(0, 1)
    assert alloc.append_slots(1, 1) and alloc.seqs[1].block_table == [0, 1] and alloc.num_cow_copies == 0


def test_an_allocation_that_does_not_fit_returns_none_and_changes_nothing(tiny_model):
    alloc = paged(tiny_model, num_blocks=2)
    alloc.allocate(0, 17, final_num_tokens=17)
    before = alloc.breakdown()
    assert alloc.allocate(1, 1, final_num_tokens=1) is None
    assert not alloc.append_slots(0, 16)  # needs a third block
    assert alloc.breakdown() == before and list(alloc.seqs) == [0]


def test_max_uniform_growth_stops_where_the_free_blocks_run_out(tiny_model):
    alloc = paged(tiny_model, num_blocks=4)
    alloc.allocate(0, 10, final_num_tokens=100)  # block 0, 6 slots left
    alloc.allocate(1, 16, final_num_tokens=100)  # block 1, full
    # 2 free blocks: k = 22 gives seq 0 one new block and seq 1 two (ceil(38/16) = 3: 2 new) -> 3 > 2.
    assert alloc.max_uniform_growth([0, 1], 1000) == 16  # seq 0: +1 block, seq 1: +1 block
    assert alloc.max_uniform_growth([0, 1], 5) == 5
    assert alloc.max_uniform_growth([1], 1000) == 32


def test_prefix_caching_reuses_full_prompt_blocks_but_never_the_last_prompt_token(tiny_model):
    alloc = paged(tiny_model, spec="paged:enable_prefix_caching=true")
    assert alloc.allocate(0, 40, final_num_tokens=50, prefix_block_hashes=[7]).num_cached_tokens == 0
    admission = alloc.allocate(1, 40, final_num_tokens=50, prefix_block_hashes=[7])
    assert admission.num_cached_tokens == 32  # blocks 0 and 1 of 2 full ones
    assert alloc.seqs[1].block_table[:2] == alloc.seqs[0].block_table[:2]
    # A 32-token prompt is 2 full blocks, but its last token must be computed: only block 0 hits.
    assert alloc.allocate(2, 32, final_num_tokens=33, prefix_block_hashes=[7]).num_cached_tokens == 16
    # A different first chunk shares nothing.
    assert alloc.allocate(3, 40, final_num_tokens=50, prefix_block_hashes=[8]).num_cached_tokens == 0


def test_prompt_blocks_filled_by_later_prefill_chunks_enter_the_prefix_cache(tiny_model):
    alloc = paged(tiny_model, spec="paged:enable_prefix_caching=true")
    alloc.allocate(0, 20, final_num_tokens=50, prefix_block_hashes=[7], num_prompt_tokens=40)
    assert alloc.append_slots(0, 12)  # block 1 full: the second chunk completes it
    assert alloc.append_slots(0, 8)  # the prompt's last 8 tokens: block 2 stays partial
    admission = alloc.allocate(1, 40, final_num_tokens=50, prefix_block_hashes=[7])
    assert admission.num_cached_tokens == 32


def test_freed_cached_blocks_count_as_free_and_cached_and_are_evicted_least_recently_used(tiny_model):
    alloc = paged(tiny_model, num_blocks=4, spec="paged:enable_prefix_caching=true")
    alloc.allocate(0, 33, final_num_tokens=33, prefix_block_hashes=[7])  # blocks 0, 1 cached; 2 partial
    alloc.free(0)
    parts = alloc.breakdown()
    assert parts.free == 4 * BLOCK and parts.cached_bytes == 2 * BLOCK
    # Clean blocks go first (blocks 2 and 3), then the least recently freed cached block: block 1, since a
    # sequence frees its last block first.
    alloc.allocate(1, 48, final_num_tokens=48, prefix_block_hashes=[9])
    assert alloc.seqs[1].block_table == [2, 3, 1] and alloc.pool.num_evictions == 1
    assert alloc.pool.lookup(alloc.pool.block_hash[0]) == 0  # block 0 still cached


def test_a_hit_on_a_free_cached_block_takes_it_out_of_the_free_pool(tiny_model):
    alloc = paged(tiny_model, num_blocks=3, spec="paged:enable_prefix_caching=true")
    alloc.allocate(0, 33, final_num_tokens=33, prefix_block_hashes=[7])
    alloc.free(0)  # 3 free blocks, 2 of them cached
    # 40 tokens with 2 hits need 1 new block, but reviving the hits leaves only 1 free: fits exactly.
    assert alloc.allocate(1, 40, final_num_tokens=40, prefix_block_hashes=[7]).num_cached_tokens == 32
    alloc.free(1)
    # 49 tokens with 2 hits need 2 new blocks; only 1 is left once the hits are revived: does not fit.
    before = alloc.breakdown()
    assert alloc.allocate(2, 49, final_num_tokens=49, prefix_block_hashes=[7]) is None
    assert alloc.breakdown() == before


def test_swap_moves_whole_block_tables_and_charges_pcie_time(tiny_model):
    alloc = paged(tiny_model, num_blocks=4, swap_blocks=2)
    alloc.allocate(0, 20, final_num_tokens=30)
    assert alloc.swap_out(0) == 2 * BLOCK
    assert alloc.breakdown().free == 4 * BLOCK
    assert alloc.take_overhead_s() == pytest.approx(2 * BLOCK / PCIE_BW_BYTES_PER_S)
    assert alloc.take_overhead_s() == 0.0
    assert alloc.swap_in(0) == 2 * BLOCK and alloc.breakdown().token_states == 20 * SLOT


def test_swap_out_without_swap_space_fails(tiny_model):
    alloc = paged(tiny_model)
    alloc.allocate(0, 20, final_num_tokens=30)
    assert alloc.swap_out(0) is None


def test_requests_that_can_never_fit_are_rejected_with_a_reason(tiny_model):
    alloc = paged(tiny_model, num_blocks=4)
    assert alloc.rejection_reason(60, 4) is None
    assert "max_model_len 256" in alloc.rejection_reason(200, 100)
    assert "only 4" in alloc.rejection_reason(60, 5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_random_operations_keep_every_invariant(ops):
    run_ops(paged(TINY, num_blocks=12, swap_blocks=6, block_size=8, spec="paged:block_size=8"), ops)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_random_operations_with_prefix_caching_keep_every_invariant(ops):
    spec = "paged:block_size=4,enable_prefix_caching=true"
    run_ops(paged(TINY, num_blocks=30, swap_blocks=10, block_size=4, spec=spec), ops)
