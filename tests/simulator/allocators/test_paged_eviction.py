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


def _counts(alloc, seq_ids):
    """What a simulation reads of the allocator: per-sequence stored and evicted tokens and blocks, the
    free blocks, the evicted-block counter and the memory breakdown."""
    per_seq = [
        (alloc.stored_tokens(s), alloc.evicted_tokens(s), len(alloc.seqs[s].block_table)) for s in seq_ids
    ]
    return per_seq, alloc.pool.num_free_blocks, alloc.num_evicted_blocks, alloc.breakdown()


@settings(max_examples=200, deadline=None)
@given(
    prompts=st.lists(st.integers(1, 40), min_size=1, max_size=8),
    budget=st.integers(3, 6),
    protected=st.integers(0, 1),
    capacity_tokens=st.integers(100, 400),
    num_slots=st.integers(1, 40),
)
def test_appending_slots_together_counts_what_appending_them_one_by_one_counts(
    prompts, budget, protected, capacity_tokens, num_slots
):
    """A decode window's slots are appended together, possibly wrapping more often than the table has
    evictable blocks; every count a simulation reads must come out as stepping gives it."""
    import copy

    alloc = evicting(budget, 4, capacity_tokens, protected)
    seq_ids = [s for s, p in enumerate(prompts) if alloc.allocate(s, p, final_num_tokens=p + 100)]
    stepped = copy.deepcopy(alloc)
    for s in seq_ids:
        fits = alloc.append_slots(s, num_slots)
        # Stepping takes blocks only at openings below the budget (an eviction reuses its block), so it
        # runs short exactly when the slots together do; it keeps what it appended before, so stop there.
        assert fits == all(stepped.append_slots(s, 1) for _ in range(num_slots))
        if not fits:
            break
        assert _counts(alloc, seq_ids) == _counts(stepped, seq_ids)
    alloc.check_invariants()


@settings(max_examples=200, deadline=None)
@given(
    prompts=st.lists(st.tuples(st.integers(1, 40), st.integers(0, 12)), min_size=1, max_size=8),
    budget=st.integers(3, 6),
    protected=st.integers(0, 1),
    capacity_tokens=st.integers(60, 400),
    limit=st.integers(1, 40),
)
def test_a_window_plan_is_what_appending_one_slot_each_per_step_does(
    prompts, budget, protected, capacity_tokens, limit
):
    """``window_evictions`` (the scheduler's decode window) against stepping on a copy: the steps that fit,
    and each step's evicted and gained blocks."""
    import copy

    alloc = evicting(budget, 4, capacity_tokens, protected)
    seq_ids = []
    for s, (prompt, decoded) in enumerate(prompts):
        if alloc.allocate(s, prompt, final_num_tokens=prompt + 100) and all(
            alloc.append_slots(s, 1) for _ in range(decoded)
        ):
            seq_ids.append(s)
    if not seq_ids:
        return
    # The window's first step: each sequence's slot appended, as the scheduler appends it before planning.
    if not all(alloc.append_slots(s, 1) for s in seq_ids):
        return
    growth, evicted, gained = alloc.window_evictions([alloc.stored_tokens(s) for s in seq_ids], limit)
    trial = copy.deepcopy(alloc)
    steps_fit, step_evicted, step_gained = 0, [], []
    for _ in range(limit):
        blocks = sum(len(trial.seqs[s].block_table) for s in seq_ids)
        num_evicted = trial.num_evicted_blocks
        if not all(trial.append_slots(s, 1) for s in seq_ids):
            break
        steps_fit += 1
        step_evicted.append(trial.num_evicted_blocks - num_evicted)
        step_gained.append(sum(len(trial.seqs[s].block_table) for s in seq_ids) - blocks)
    assert growth == steps_fit
    assert (evicted, gained) == (step_evicted, step_gained)


def test_a_window_is_not_planned_when_only_the_last_block_is_evictable():
    # budget 3, 2 protected: slots come one by one (growth_room 0), so no window either.
    alloc = evicting(budget_blocks=3, block_size=4, protected=2)
    alloc.allocate(0, 12, final_num_tokens=40)
    assert alloc.growth_room(0) == 0
    assert alloc.window_evictions([12], 10) == (0, [], [])


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
