"""The reserved allocator's decode cohort moves counters only: after any sequence of operations it gives the
breakdown that per-sequence appends give, and its growth bound is exact (members grow up to their final
length)."""

from __future__ import annotations

from allocator_ops import KV_BYTES_PER_TOKEN, TINY
from hypothesis import given, settings
from hypothesis import strategies as st

from kvsim.simulator.allocators import ReservedAllocator, ReservedConfig

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"), st.integers(1, 60), st.integers(1, 60)),
        st.tuples(st.just("append"), st.integers(0, 9), st.integers(0, 8)),
        st.tuples(st.just("free"), st.integers(0, 9), st.just(0)),
        st.tuples(st.just("swap_out"), st.integers(0, 9), st.just(0)),
        st.tuples(st.just("swap_in"), st.integers(0, 9), st.just(0)),
        st.tuples(st.just("join"), st.integers(0, 9), st.just(0)),
        st.tuples(st.just("leave"), st.integers(0, 9), st.just(0)),
        st.tuples(st.just("grow"), st.integers(0, 40), st.just(0)),
    ),
    max_size=60,
)


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
@given(ops=OPS, policy=st.sampled_from(["max", "pow2", "oracle"]), capacity_tokens=st.integers(64, 1200))
def test_cohort_matches_per_sequence_appends(ops, policy, capacity_tokens):
    plain, cohort = pair(policy, capacity_tokens)
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
            got = [alloc.allocate(next_id, a, final_num_tokens=a + b) for alloc in (plain, cohort)]
            assert (got[0] is None) == (got[1] is None)
            if got[0] is not None:
                live[next_id] = False
            next_id += 1
        elif kind == "append" and (s := pick(a, swapped=False)) is not None:
            assert plain.append_slots(s, b) == cohort.append_slots(s, b)  # a member leaves the cohort
            members.discard(s)
        elif kind == "free" and (s := pick(a)) is not None:
            plain.free(s), cohort.free(s)
            del live[s]
            members.discard(s)
        elif kind == "swap_out" and (s := pick(a, swapped=False)) is not None:
            got = plain.swap_out(s), cohort.swap_out(s)
            assert got[0] == got[1]
            live[s] = got[0] is not None
            members.discard(s)
        elif kind == "swap_in" and (s := pick(a, swapped=True)) is not None:
            got = plain.swap_in(s), cohort.swap_in(s)
            assert got[0] == got[1]
            live[s] = got[0] is None
        elif kind == "join" and (s := pick(a, swapped=False, member=False)) is not None:
            seq = cohort.seqs[s]
            if seq.num_tokens <= seq.final_num_tokens:  # a member grows to its final length
                cohort.cohort_join(s)
                members.add(s)
        elif kind == "leave" and (s := pick(a, swapped=False, member=True)) is not None:
            assert cohort.cohort_leave(s) == plain.seqs[s].num_tokens
            members.remove(s)
        elif kind == "grow":
            k = cohort.cohort_max_growth(a)
            room = min((plain.seqs[s].final_num_tokens - plain.seqs[s].num_tokens for s in members), default=a)
            assert k == max(0, min(a, room)), "the cohort's growth bound is not its members' least room"
            assert cohort.cohort_grow(k)
            for s in members:
                assert plain.append_slots(s, k)
            if k < a and members:
                assert not cohort.cohort_grow(k + 1), "one step more than the bound must not fit"
        assert plain.breakdown() == cohort.breakdown(), kind
        cohort.check_invariants()
    for s in list(live):
        plain.free(s), cohort.free(s)
    cohort.clear_blocked()
    cohort.check_invariants()
    assert cohort.breakdown().free == cohort.capacity_bytes
