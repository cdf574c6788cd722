"""The counted paged allocator is ``PagedAllocator`` without block ids: after any sequence of operations, the
two give the same answers and the same five-part breakdown; its decode cohort grows members exactly as
per-sequence appends would (DESIGN §3, §7b)."""

from __future__ import annotations

from allocator_ops import KV_BYTES_PER_TOKEN, TINY
from hypothesis import given, settings
from hypothesis import strategies as st

from kvsim.simulator.allocators import PagedAllocator, PagedConfig
from kvsim.simulator.allocators.paged_counted import CountedPagedAllocator

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"), st.integers(1, 60), st.integers(0, 60)),
        st.tuples(st.just("append"), st.integers(0, 9), st.integers(0, 24)),
        st.tuples(st.just("free"), st.integers(0, 9), st.just(0)),
        st.tuples(st.just("swap_out"), st.integers(0, 9), st.just(0)),
        st.tuples(st.just("swap_in"), st.integers(0, 9), st.just(0)),
        st.tuples(st.just("join"), st.integers(0, 9), st.just(0)),
        st.tuples(st.just("leave"), st.integers(0, 9), st.just(0)),
        st.tuples(st.just("grow"), st.integers(0, 40), st.just(0)),
    ),
    max_size=60,
)


def pair(block_size: int, capacity_tokens: int):
    kwargs = dict(model=TINY, tp=1, capacity_bytes=capacity_tokens * KV_BYTES_PER_TOKEN)
    config = PagedConfig(block_size=block_size)
    return PagedAllocator(config, swap_space_bytes=64 * KV_BYTES_PER_TOKEN, **kwargs), CountedPagedAllocator(
        config, swap_space_bytes=64 * KV_BYTES_PER_TOKEN, **kwargs
    )


@settings(max_examples=300, deadline=None)
@given(ops=OPS, block_size=st.sampled_from([1, 4, 16]), capacity_tokens=st.integers(16, 400))
def test_counted_allocator_matches_block_ids(ops, block_size, capacity_tokens):
    ids, counted = pair(block_size, capacity_tokens)
    live: dict[int, bool] = {}  # seq_id -> swapped out
    members: set[int] = set()
    next_id = 0

    def pick(i, swapped=None, member=None):
        seqs = [
            s
            for s, sw in live.items()
            if (swapped is None or sw == swapped) and (member is None or (s in members) == member)
        ]
        return seqs[i % len(seqs)] if seqs else None

    for kind, a, b in ops:
        if kind == "allocate":
            got = (
                ids.allocate(next_id, a, final_num_tokens=a + b),
                counted.allocate(next_id, a, final_num_tokens=a + b),
            )
            assert (got[0] is None) == (got[1] is None)
            if got[0] is not None:
                live[next_id] = False
            next_id += 1
        elif kind == "append" and (s := pick(a, swapped=False)) is not None:
            assert ids.append_slots(s, b) == counted.append_slots(s, b)  # a member leaves the cohort
            members.discard(s)
        elif kind == "free" and (s := pick(a)) is not None:
            ids.free(s), counted.free(s)
            del live[s]
            members.discard(s)
        elif kind == "swap_out" and (s := pick(a, swapped=False)) is not None:
            got = ids.swap_out(s), counted.swap_out(s)
            assert got[0] == got[1]
            live[s] = got[0] is not None
            members.discard(s)
        elif kind == "swap_in" and (s := pick(a, swapped=True)) is not None:
            got = ids.swap_in(s), counted.swap_in(s)
            assert got[0] == got[1]
            live[s] = got[0] is None
        elif kind == "join" and (s := pick(a, swapped=False, member=False)) is not None:
            counted.cohort_join(s)
            members.add(s)
        elif kind == "leave" and (s := pick(a, swapped=False, member=True)) is not None:
            assert counted.cohort_leave(s) == ids.seqs[s].num_tokens
            members.remove(s)
        elif kind == "grow":
            order = sorted(members)
            k = counted.cohort_max_growth(a)
            fits = ids.max_uniform_growth(order, a) if order else a
            assert k == fits, "the cohort's window bound differs from max_uniform_growth"
            if counted.cohort_grow(k):
                for s in order:
                    assert ids.append_slots(s, k)
            if k < a and order:
                assert not counted.cohort_grow(k + 1)  # exact: one more step does not fit
        assert ids.breakdown() == counted.breakdown(), kind
        assert ids.free_bytes() == counted.free_bytes()
        assert ids.take_overhead_s() == counted.take_overhead_s()
        counted.check_invariants()
    for s in list(live):
        ids.free(s), counted.free(s)
    counted.check_invariants()
    assert counted.breakdown().free == counted.capacity_bytes
    assert counted.num_free_blocks == ids.pool.num_free_blocks == counted.num_blocks


def test_cohort_step_counts_the_blocks_opened():
    """Three members at 15, 16 and 17 tokens (block 16): growing by one opens a block for the one at 16;
    by 16 steps, one block each."""
    _, counted = pair(16, 400)
    for seq_id, tokens in enumerate((15, 16, 17)):
        counted.allocate(seq_id, tokens, final_num_tokens=100)
        counted.cohort_join(seq_id)
    assert counted.cohort_blocks_needed(1) == 1
    assert counted.cohort_blocks_needed(2) == 2  # 15 -> 17 crosses too
    assert counted.cohort_blocks_needed(16) == 3
    assert counted.cohort_num_tokens() == 48
    assert counted.cohort_grow(2)
    assert counted.cohort_num_tokens() == 54 and counted.num_cohort_blocks == 2 + 2 + 2
    assert [counted.cohort_leave(s) for s in range(3)] == [17, 18, 19]
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
