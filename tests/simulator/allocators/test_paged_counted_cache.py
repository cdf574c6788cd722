"""The counted prefix cache over requests' own blocks (``CountedOwnBlocksCache``) against ``PagedAllocator``
by block ids under vLLM v1: the same admissions, hits, breakdowns and counters after every operation, in
particular when allocations have evicted cached blocks that the counted twin settles only lazily."""

from __future__ import annotations

import pytest
from allocator_ops import KV_BYTES_PER_TOKEN, TINY

from kvsim.simulator.allocators import PagedAllocator, make_allocator
from kvsim.simulator.allocators.block_pool import request_block_hashes
from kvsim.simulator.allocators.paged_counted_cache import CountedOwnBlocksCache

BLOCK_SIZE = 4


def both(num_blocks: int) -> tuple[PagedAllocator, CountedOwnBlocksCache]:
    capacity = num_blocks * BLOCK_SIZE * KV_BYTES_PER_TOKEN
    by_ids = make_allocator(f"paged:block_size={BLOCK_SIZE}", model=TINY, tp=1, capacity_bytes=capacity)
    by_ids.resolve_for_scheduler("vllm")  # prefix caching on, as v1 has it
    assert isinstance(by_ids, PagedAllocator) and by_ids.caches_prefixes
    counted = CountedOwnBlocksCache(by_ids.config, model=TINY, tp=1, capacity_bytes=capacity)
    return by_ids, counted


def own(request_index: int, num_tokens: int):
    """A request's block identities without trace hashes: its own blocks only."""
    return request_block_hashes(None, num_tokens, num_tokens, BLOCK_SIZE, request_index)


def assert_same(by_ids, counted) -> None:
    assert counted.breakdown() == by_ids.breakdown()
    assert counted.prefix_cache_counts() == by_ids.prefix_cache_counts()


@pytest.mark.parametrize("look_up_first", [True, False], ids=["lookup-then-admission", "admission-alone"])
def test_a_preempted_request_hits_only_what_later_allocations_left_of_its_blocks(look_up_first):
    """12 blocks of 4 tokens. Requests 0 (3 full blocks) and 3 (4 full blocks) are preempted in that order:
    their blocks stay cached, behind 5 clean free blocks. Request 1 then takes 6 blocks: the 5 clean ones and
    request 0's last block, evicted (the head of the queue). Request 0's lookup and re-admission hit its first 2
    blocks, not 3, though the counted twin settles that eviction only when asked; the re-admission's 2 new
    blocks evict 2 of request 3's."""
    by_ids, counted = both(12)
    for alloc in (by_ids, counted):
        for seq_id, request, num_tokens in ((0, 0, 12), (3, 3, 16)):
            hashes = own(request, num_tokens + 1)
            admission = alloc.allocate(
                seq_id, num_tokens, final_num_tokens=num_tokens + 1, block_hashes=hashes
            )
            assert admission.num_cached_tokens == 0
        alloc.free(0)
        alloc.free(3)
    assert_same(by_ids, counted)
    assert counted.prefix_cache_counts()[4] == 0
    for alloc in (by_ids, counted):
        assert alloc.allocate(1, 24, final_num_tokens=25, block_hashes=own(1, 25)).num_cached_tokens == 0
    assert_same(by_ids, counted)
    assert counted.prefix_cache_counts()[4] == 1, "one cached block evicted"
    hashes = own(0, 13)
    if look_up_first:  # as the vllm scheduler does; the admission alone must find the same
        assert by_ids.lookup_prefix(hashes, 13) == counted.lookup_prefix(hashes, 13) == 2 * BLOCK_SIZE
    admissions = [
        alloc.allocate(2, 13, final_num_tokens=14, block_hashes=hashes) for alloc in (by_ids, counted)
    ]
    assert admissions[0].num_cached_tokens == admissions[1].num_cached_tokens == 2 * BLOCK_SIZE
    assert_same(by_ids, counted)
    assert counted.prefix_cache_counts()[4] == 3
    for alloc in (by_ids, counted):
        alloc.free(1)
        alloc.free(2)
    assert_same(by_ids, counted)
