"""The buddy allocator over token slots, as a specification."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from kvsim.simulator.allocators.buddy import BuddyAllocator, aligned_pieces, fit_when_empty


def free_blocks(buddy: BuddyAllocator) -> list[tuple[int, int]]:
    """[(offset, size)] of the free blocks, by offset."""
    return sorted((off, 1 << order) for order, blocks in enumerate(buddy.free_lists) for off in blocks)


def test_an_arena_that_is_not_a_power_of_two_is_covered_largest_block_first():
    assert free_blocks(BuddyAllocator(15)) == [(0, 8), (8, 4), (12, 2), (14, 1)]


def test_a_range_splits_into_maximal_aligned_power_of_two_pieces():
    assert aligned_pieces(5, 11) == [(5, 0), (6, 1), (8, 3)]


def test_an_exact_extent_splits_its_block_and_gives_the_tail_back():
    buddy = BuddyAllocator(16)
    assert buddy.alloc(5) == 0
    assert free_blocks(buddy) == [(5, 1), (6, 2), (8, 8)]
    assert buddy.num_free_slots == 11
    buddy.check_invariants()


def test_freeing_everything_coalesces_back_to_the_initial_blocks():
    buddy = BuddyAllocator(16)
    offsets = [buddy.alloc(n) for n in (5, 3, 1, 4)]
    for off in offsets:
        buddy.free(off)
    assert free_blocks(buddy) == [(0, 16)]


def test_free_slots_that_are_not_one_block_cannot_serve_a_larger_extent():
    buddy = BuddyAllocator(16)
    offsets = [buddy.alloc(4) for _ in range(4)]
    assert sorted(offsets) == [0, 4, 8, 12]
    buddy.free(0)
    buddy.free(8)
    assert buddy.num_free_slots == 8 and buddy.largest_free_block() == 4
    assert buddy.alloc(8) is None and buddy.num_free_slots == 8
    buddy.free(4)  # 0..8 merges into one block
    assert buddy.largest_free_block() == 8 and buddy.alloc(8) == 0


@settings(max_examples=80, deadline=None)
@given(num_slots=st.integers(1, 300), ops=st.lists(st.tuples(st.booleans(), st.integers(1, 70)), max_size=40))
def test_random_allocations_and_frees_never_overlap_and_coalesce_fully(num_slots, ops):
    buddy = BuddyAllocator(num_slots)
    initial = free_blocks(buddy)
    live: list[int] = []
    for is_alloc, n in ops:
        if is_alloc or not live:
            before = (free_blocks(buddy), dict(buddy.allocated))
            offset = buddy.alloc(n)
            if offset is None:
                assert (free_blocks(buddy), buddy.allocated) == before
                assert buddy.largest_free_block() < n
            else:
                live.append(offset)
        else:
            buddy.free(live.pop(n % len(live)))
        buddy.check_invariants()
    for offset in live:
        buddy.free(offset)
    assert free_blocks(buddy) == initial and buddy.num_free_slots == num_slots


@settings(max_examples=300, deadline=None)
@given(num_slots=st.integers(1, 300), extents=st.lists(st.integers(1, 300), min_size=1, max_size=5))
def test_extents_fit_an_empty_heap_largest_first_whenever_they_fit_in_any_order(num_slots, extents):
    def fit_in_order(order):
        arena = BuddyAllocator(num_slots)
        return all(arena.alloc(n) is not None for n in order)

    assert fit_when_empty(num_slots, tuple(extents)) == any(
        fit_in_order(order) for order in itertools.permutations(extents)
    )


def test_three_regions_of_128_and_one_of_64_fill_448_slots_but_not_447():
    assert fit_when_empty(448, (128, 128, 128, 64))  # 256 + 128 + 64: the 256 holds two regions
    assert not fit_when_empty(447, (128, 128, 128, 64))
