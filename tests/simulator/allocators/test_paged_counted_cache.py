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


@pytest.mark.parametrize("seed", range(12))
def test_finished_requests_blocks_count_as_anonymous_and_keep_their_place_in_the_queue(seed):
    """Random admissions, decodes, finishes (``free_finished`` on the counted twin, whose finished blocks lose
    their owner and join the queue's anonymous tail) and preemptions (``free``, with re-admission later):
    the same admissions, hits, breakdowns and counters as ``PagedAllocator`` by block ids after every step,
    with finished and preempted requests' cached blocks interleaved in the LRU queue."""
    import random

    rng = random.Random(seed)
    by_ids, counted = both(40)
    running: dict[int, tuple[int, int, int]] = {}  # seq_id -> (request, tokens, final)
    preempted: list[tuple[int, int, int]] = []  # (request, tokens at preemption, final)
    next_seq, next_request = 0, 0
    saw_hit = saw_anonymous_before_owner = False
    for _ in range(300):
        op = rng.random()
        if op < 0.3:  # admit: a preempted request back (it may hit its own blocks), or a new one
            if preempted and rng.random() < 0.5:
                request, tokens, final = preempted.pop(rng.randrange(len(preempted)))
                tokens += 1  # its recompute: prompt and output so far, one token past what its KV held
            else:
                request, tokens, final = next_request, rng.randint(1, 30), 0
                final = tokens + rng.randint(1, 20)
                next_request += 1
            hashes = own(request, final)
            hits = [a.lookup_prefix(hashes, tokens) for a in (by_ids, counted)]
            assert hits[0] == hits[1]
            admissions = [
                a.allocate(next_seq, tokens, final_num_tokens=final, block_hashes=hashes)
                for a in (by_ids, counted)
            ]
            assert (admissions[0] is None) == (admissions[1] is None)
            if admissions[0] is None:
                preempted.append((request, tokens - 1, final))
            else:
                assert admissions[0].num_cached_tokens == admissions[1].num_cached_tokens
                saw_hit |= admissions[0].num_cached_tokens > 0
                running[next_seq] = (request, tokens, final)
                next_seq += 1
        elif op < 0.65 and running:  # one decode slot for a request short of its final length
            seq_id = rng.choice(sorted(running))
            request, tokens, final = running[seq_id]
            if tokens + 1 < final:
                grown = [a.append_slots(seq_id, 1) for a in (by_ids, counted)]
                assert grown[0] == grown[1]
                if grown[0]:
                    running[seq_id] = (request, tokens + 1, final)
        elif running:  # finish or preempt
            seq_id = rng.choice(sorted(running))
            request, tokens, final = running.pop(seq_id)
            if tokens == final - 1 or rng.random() < 0.6:  # done (or ended early); the others preempted
                by_ids.free(seq_id)
                counted.free_finished(seq_id)
            else:
                saw_anonymous_before_owner |= counted._tail > 0
                for a in (by_ids, counted):
                    a.free(seq_id)
                preempted.append((request, tokens, final))
        assert_same(by_ids, counted)
        counted.check_invariants()
        assert_same(by_ids, counted)
    assert saw_anonymous_before_owner and saw_hit, "the case this test is about did not come up"
