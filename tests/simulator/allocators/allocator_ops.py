"""Helpers for allocator tests: a tiny model, and a random-operation driver for property tests."""

from __future__ import annotations

import copy
import pickle

from hypothesis import strategies as st

from kvsim.simulator.specs import ModelSpec

# 2 layers × 4 KV heads × head_dim 16 × 2 bytes × (K and V) = 512 bytes per token; one layer's K: 128 bytes.
TINY = ModelSpec(
    name="tiny",
    num_layers=2,
    hidden_size=64,
    num_heads=4,
    num_kv_heads=4,
    head_dim=16,
    intermediate_size=128,
    vocab_size=100,
    max_model_len=256,
)
KV_BYTES_PER_TOKEN = 512


# One operation: (kind, a, b, c); indices pick a live sequence modulo their number.
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"), st.integers(1, 60), st.integers(0, 60), st.integers(0, 3)),
        st.tuples(st.just("append"), st.integers(0, 9), st.integers(0, 24), st.just(0)),
        st.tuples(st.just("fork"), st.integers(0, 9), st.integers(0, 30), st.just(0)),
        st.tuples(st.just("free"), st.integers(0, 9), st.just(0), st.just(0)),
        st.tuples(st.just("swap_out"), st.integers(0, 9), st.just(0), st.just(0)),
        st.tuples(st.just("swap_in"), st.integers(0, 9), st.just(0), st.just(0)),
        st.tuples(st.just("growth"), st.integers(0, 9), st.integers(0, 3), st.integers(0, 40)),
    ),
    max_size=40,
)

# Prompts 0 and 1 share their first 512-token chunk; 2 shares nothing; 3 is prompt 0 again.
PREFIXES = [(11, 12), (11, 13), (21, 22), (11, 12)]


def _state(alloc) -> bytes:
    """Everything an allocator holds, except the blocked-allocation record a failed allocate may set."""
    state = {k: v for k, v in vars(alloc).items() if not k.startswith("_blocked")}
    return pickle.dumps(state)


def run_ops(alloc, ops) -> None:
    """Apply random operations; after each, every invariant holds, and a failed call changed nothing.
    Finally free everything: no memory may leak."""
    live: dict[int, bool] = {}  # seq_id -> swapped out
    next_id = 0

    def pick(i: int, swapped: bool | None = None) -> int | None:
        ids = [s for s, sw in live.items() if swapped is None or sw == swapped]
        return ids[i % len(ids)] if ids else None

    for kind, a, b, c in ops:
        before = _state(alloc)
        if kind == "allocate":
            # The prompt may be longer than the first allocation (chunked prefill): later appends fill it.
            ok = (
                alloc.allocate(
                    next_id,
                    a,
                    final_num_tokens=a + b,
                    prefix_block_hashes=PREFIXES[c],
                    num_prompt_tokens=a + b // 2,
                )
                is not None
            )
            if ok:
                live[next_id] = False
            next_id += 1
        elif kind == "append" and (s := pick(a, swapped=False)) is not None:
            ok = alloc.append_slots(s, b)
        elif kind == "fork" and (s := pick(a, swapped=False)) is not None:
            ok = alloc.fork(s, next_id)
            if ok:
                live[next_id] = False
            next_id += 1
        elif kind == "free" and (s := pick(a)) is not None:
            alloc.free(s)
            del live[s]
            ok = True
        elif kind == "swap_out" and (s := pick(a, swapped=False)) is not None:
            ok = alloc.swap_out(s) is not None
            live[s] = live[s] or ok
        elif kind == "swap_in" and (s := pick(a, swapped=True)) is not None:
            ok = alloc.swap_in(s) is not None
            live[s] = not ok
        elif kind == "growth":
            running = [s for s, sw in live.items() if not sw]
            seq_ids = running[a % max(1, len(running)) :][: b + 1]
            k = alloc.max_uniform_growth(seq_ids, c)
            assert 0 <= k <= c
            if k < c and seq_ids:  # exact: one more token for all of them must fail somewhere
                trial = copy.deepcopy(alloc)
                assert not all(trial.append_slots(s, k + 1) for s in seq_ids), (
                    "max_uniform_growth not maximal"
                )
            assert all(alloc.append_slots(s, k) for s in seq_ids), "max_uniform_growth promised too much"
            ok = True
        else:
            continue
        if not ok:
            assert _state(alloc) == before, f"failed {kind} changed the allocator"
        alloc.take_overhead_s()
        alloc.check_invariants()
    for s in list(live):
        alloc.free(s)
    alloc.clear_blocked()
    alloc.check_invariants()
    parts = alloc.breakdown()
    assert parts.free == alloc.capacity_bytes, f"memory leaked after freeing everything: {parts}"
    assert parts.token_states == parts.reserved == parts.internal_frag == parts.external_frag == 0


# Operations for a cohort allocator and its per-sequence twin: (kind, a, b); indices pick a live sequence.
COHORT_OPS = st.lists(
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


def run_twin_ops(plain, cohort, ops, *, expected_growth, can_join=lambda alloc, seq_id: True) -> None:
    """Apply ``ops`` to both allocators: the cohort ops (join, leave, grow) to ``cohort`` only, its members'
    growth as ``append_slots`` to ``plain``. After each: the same answers, the same breakdown, every
    invariant; ``cohort_max_growth`` equals ``expected_growth(plain, members, limit)`` and one step more
    does not fit. Finally everything is freed: no memory may leak."""
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
            if can_join(cohort, s):
                cohort.cohort_join(s)
                members.add(s)
        elif kind == "leave" and (s := pick(a, swapped=False, member=True)) is not None:
            assert cohort.cohort_leave(s) == plain.seqs[s].num_tokens
            members.remove(s)
        elif kind == "grow":
            k = cohort.cohort_max_growth(a)
            assert k == expected_growth(plain, sorted(members), a), "the cohort's growth bound is off"
            assert cohort.cohort_grow(k)
            for s in sorted(members):
                assert plain.append_slots(s, k)
            if k < a and members:
                assert not cohort.cohort_grow(k + 1), "one step more than the bound must not fit"
        assert plain.breakdown() == cohort.breakdown(), kind
        assert plain.free_bytes() == cohort.free_bytes()
        assert plain.take_overhead_s() == cohort.take_overhead_s()
        cohort.check_invariants()
    for s in list(live):
        plain.free(s), cohort.free(s)
    cohort.clear_blocked()
    cohort.check_invariants()
    assert cohort.breakdown().free == cohort.capacity_bytes, "memory leaked after freeing everything"
