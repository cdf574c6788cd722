"""PagedEviction (allocators/paged_eviction.py): every sequence stays within its block budget, evicted blocks go
back to the free queue, counts follow the closed form, and any operation sequence keeps every invariant."""

from __future__ import annotations

import pytest
from allocator_ops import KV_BYTES_PER_TOKEN, OPS, TINY, run_ops
from hypothesis import given, settings
from hypothesis import strategies as st

from kvsim.errors import KvsimError
from kvsim.simulator.allocators import EvictingPagedAllocator, PagedConfig, make_allocator


def evicting(budget_blocks=4, block_size=4, capacity_tokens=256, protected=1, swap_tokens=64):
    config = PagedConfig(
        block_size=block_size, eviction_budget_blocks=budget_blocks, eviction_protected_blocks=protected
    )
    return EvictingPagedAllocator(
        config,
        model=TINY,
        tp=1,
        capacity_bytes=capacity_tokens * KV_BYTES_PER_TOKEN,
        swap_space_bytes=swap_tokens * KV_BYTES_PER_TOKEN,
    )


def test_decode_evicts_the_oldest_block_after_the_protected_one_when_a_new_block_is_needed():
    alloc = evicting(budget_blocks=4, block_size=4)  # budget: 16 tokens
    alloc.allocate(0, 10, final_num_tokens=40)
    for _ in range(6):
        assert alloc.append_slots(0, 1)
    table = list(alloc.seqs[0].block_table)
    assert alloc.stored_tokens(0) == 16 and len(table) == 4 and alloc.evicted_tokens(0) == 0
    assert alloc.append_slots(0, 1)  # token 17 needs a 5th block: block 1 (after protected block 0) goes
    # The evicted block went back to the free queue and, on top of it, is the one the new token takes.
    assert alloc.seqs[0].block_table == [table[0], table[2], table[3], table[1]]
    assert alloc.stored_tokens(0) == 13 and alloc.evicted_tokens(0) == 4
    assert alloc.pool.num_free_blocks == alloc.pool.num_blocks - 4
    for _ in range(3):
        assert alloc.append_slots(0, 1)
    assert alloc.stored_tokens(0) == 16 and alloc.evicted_tokens(0) == 4
    alloc.check_invariants()


def test_a_prompt_over_the_budget_is_pruned_at_prefill():
    alloc = evicting(budget_blocks=4, block_size=4)
    alloc.allocate(0, 40, final_num_tokens=50)
    assert alloc.stored_tokens(0) == 16 and alloc.evicted_tokens(0) == 24
    assert alloc.append_slots(0, 1)
    assert alloc.stored_tokens(0) == 13 and alloc.evicted_tokens(0) == 28
    # Reserved: the 3 empty slots of its last block, which it will fill (final 50 > 41 tokens so far).
    assert alloc.breakdown().reserved == 3 * KV_BYTES_PER_TOKEN
    alloc.check_invariants()
    alloc.free(0)
    assert alloc.breakdown().free == alloc.capacity_bytes


def test_memory_never_exceeds_the_budget_while_decoding_long():
    alloc = evicting(budget_blocks=3, block_size=4, protected=0)
    alloc.allocate(0, 5, final_num_tokens=1000)
    for _ in range(200):
        assert alloc.append_slots(0, 1)
        assert len(alloc.seqs[0].block_table) <= 3
    assert alloc.stored_tokens(0) + alloc.evicted_tokens(0) == 205
    alloc.check_invariants()


@settings(max_examples=200, deadline=None)
@given(ops=OPS, budget=st.integers(2, 6), protected=st.integers(0, 1), capacity_tokens=st.integers(16, 300))
def test_random_operations_keep_every_invariant(ops, budget, protected, capacity_tokens):
    run_ops(evicting(budget, 4, capacity_tokens, protected), ops)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["allocate", "append", "fork", "free"]), st.integers(0, 9), st.integers(1, 40)
        ),
        max_size=40,
    ),
    budget=st.integers(2, 6),
    protected=st.integers(0, 1),
    capacity_tokens=st.integers(16, 200),
    order_seed=st.integers(0, 2**16),
)
def test_one_slot_each_answers_what_a_trial_on_a_copy_answers(
    steps, budget, protected, capacity_tokens, order_seed
):
    """``max_uniform_growth(seq_ids, 1)`` (the scheduler's question for parallel samples) replays the blocks
    that the appends would take; after random states with forked (shared) blocks, evictions and copy-on-write,
    it agrees with appending on a deep copy, for any order and subset of the sequences."""
    import copy
    import random

    alloc, live, next_id = evicting(budget, 4, capacity_tokens, protected), [], 0
    rng = random.Random(order_seed)
    for kind, pick, size in steps:
        if kind == "allocate":
            if alloc.allocate(next_id, size, final_num_tokens=size + 60) is not None:
                live.append(next_id)
            next_id += 1
        elif live and kind == "append":
            alloc.append_slots(live[pick % len(live)], size % 6)
        elif live and kind == "fork":
            alloc.fork(live[pick % len(live)], next_id)
            live.append(next_id)
            next_id += 1
        elif live and kind == "free":
            alloc.free(live.pop(pick % len(live)))
        if not live:
            continue
        seq_ids = rng.sample(live, rng.randint(1, len(live)))
        trial = copy.deepcopy(alloc)
        expected = all(trial.append_slots(s, 1) for s in seq_ids)
        assert alloc.fits_one_slot_each(seq_ids) == expected
        assert alloc.max_uniform_growth(seq_ids, 1) == int(expected)
        alloc.check_invariants()


@pytest.mark.parametrize(
    "spec, match",
    [
        ("paged:eviction_budget_blocks=1,eviction_protected_blocks=1", "leaves no block to evict"),
        ("paged:eviction_budget_blocks=8,enable_prefix_caching=true", "not modelled"),
        ("paged:eviction_budget_blocks=8,eviction_policy=value_norm", "cannot be simulated"),
        ("paged:eviction_budget_blocks=-1", ">= 0"),
    ],
)
def test_bad_eviction_specs_name_the_fix(spec, match):
    with pytest.raises(KvsimError, match=match):
        make_allocator(spec, model=TINY, tp=1, capacity_bytes=4096 * KV_BYTES_PER_TOKEN)


def test_the_spec_builds_the_evicting_allocator_and_names_it():
    alloc = make_allocator("paged:eviction_budget_blocks=8", model=TINY, tp=1, capacity_bytes=2**20)
    assert isinstance(alloc, EvictingPagedAllocator)
    assert alloc.name == "paged:block_size=16,eviction_budget_blocks=8"
