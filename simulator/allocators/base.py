"""The ``KVAllocator`` seam (DESIGN §3) and the five-part memory accounting every allocator keeps.

Sequences are identified by an int ``seq_id`` chosen by the scheduler (a request with ``n`` samples or a
beam has one seq_id per sample/beam; forks share KV copy-on-write where the allocator supports it).
Sizes are per GPU of a tensor-parallel group, in bytes or token slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MemoryBreakdown:
    """KV memory of one GPU at one instant, in bytes (DESIGN §3). The five parts sum to ``capacity_bytes``.

    ``cached_bytes`` (memory held for reuse by no live request: unreferenced prefix-cache blocks, vAttention
    pages kept mapped) is already inside ``free``; it is reported on its own, not a sixth part.
    """

    token_states: int  # KV of tokens already computed and stored
    reserved: int  # allocated slots the request will fill later (up to its true final length)
    internal_frag: int  # allocated slots the request will never fill (over-reservation, rounding)
    external_frag: int  # free but unusable for the blocked head-of-queue allocation (0 unless blocked)
    free: int
    cached_bytes: int = 0

    @property
    def capacity_bytes(self) -> int:
        return self.token_states + self.reserved + self.internal_frag + self.external_frag + self.free

    def as_dict(self) -> dict[str, int]:
        return {
            "token_states": self.token_states,
            "reserved": self.reserved,
            "internal_frag": self.internal_frag,
            "external_frag": self.external_frag,
            "free": self.free,
            "cached_bytes": self.cached_bytes,
        }


def over_context(num_prompt_tokens: int, num_output_tokens: int, max_model_len: int) -> str | None:
    """Every allocator's first rejection: prompt + output longer than the model's context."""
    if num_prompt_tokens + num_output_tokens > max_model_len:
        return (
            f"prompt {num_prompt_tokens} + output {num_output_tokens} tokens exceed max_model_len "
            f"{max_model_len}"
        )
    return None


def largest_fitting(limit: int, fits) -> int:
    """The largest k in [0, limit] with ``fits(k)``, for a monotone ``fits`` (true up to some k, then false)
    with ``fits(0)`` true: the binary search behind every allocator's ``max_uniform_growth``."""
    if limit <= 0 or fits(limit):
        return max(0, limit)
    lo, hi = 0, limit - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True, slots=True)
class Admission:
    """What ``allocate`` did: how many leading prompt tokens were found in the prefix cache (their
    compute is skipped) and how much mapping work it caused."""

    num_cached_tokens: int = 0


class KVAllocator(Protocol):
    """Owns the KV memory of one replica (per GPU). Every method either succeeds or returns a falsy value
    and changes nothing: a failed allocation never leaves a partial one behind.

    ``final_num_tokens`` (prompt + true output length) is passed at admission for *accounting* (to split
    allocated-but-unfilled slots into ``reserved`` and ``internal_frag``). Only an ``oracle`` sizing policy
    may use it to size an allocation.
    """

    name: str  # the spec it was built from, e.g. "paged:block_size=16", "reserved:pow2"
    capacity_bytes: int
    kv_bytes_per_token: int
    attention_kernel: str  # "paged" | "contiguous": which attention kernel's cost applies
    block_size: int  # tokens per block-table entry for the paged kernel's cost; 0 for contiguous kernels

    def rejection_reason(
        self, num_prompt_tokens: int, num_output_tokens: int, num_seqs: int = 1
    ) -> str | None:
        """Why a request of this size can never be served on an empty replica (too long for the context or
        the memory), or None if it can. ``num_seqs`` sequences (parallel samples, beams) grow together to
        the final length, each holding its own KV beyond what forks share: all of it must fit at once."""

    def allocate(
        self,
        seq_id: int,
        num_tokens: int,
        *,
        final_num_tokens: int,
        prefix_block_hashes: Sequence[int] | None = None,
        num_prompt_tokens: int | None = None,
    ) -> Admission | None:
        """Admit a new sequence with slots for its first ``num_tokens`` tokens (its prompt, its first
        prefill chunk, or prompt + generated tokens when a recompute-preempted sequence comes back). None if
        it does not fit now; then the allocator records the shortfall so that ``breakdown`` can report
        external fragmentation while the head of the queue is blocked.

        ``num_prompt_tokens`` (extension; default ``num_tokens``) bounds which tokens ``prefix_block_hashes``
        describe, so that prefix caching never hashes generated tokens: pass it with chunked prefill and when
        re-admitting a recompute-preempted sequence."""

    def append_slots(self, seq_id: int, num_new_tokens: int) -> bool:
        """Grow a sequence by ``num_new_tokens`` slots (decode tokens or the next prefill chunk). False if
        memory is short; the scheduler then preempts."""

    def max_uniform_growth(self, seq_ids: Sequence[int], limit: int) -> int:
        """The largest k <= limit such that ``append_slots(s, k)`` would succeed for every listed sequence
        together with the memory free now (fast-forwarding: decode k steps without any allocation failing)."""

    def fork(self, parent_seq_id: int, child_seq_id: int, *, final_num_tokens: int | None = None) -> bool:
        """Make a child share all of the parent's KV (copy-on-write where supported; a copy otherwise).

        Extension: returns False (changing nothing) when a copying allocator has no room for the copy;
        ``final_num_tokens`` is the child's true final length for accounting (default: the parent's)."""

    def free(self, seq_id: int) -> None:
        """Release a finished or recompute-preempted sequence's memory."""

    def swap_out(self, seq_id: int) -> int | None:
        """Move a sequence's KV to CPU swap space. Bytes moved, or None if swap space is short or absent."""

    def swap_in(self, seq_id: int) -> int | None:
        """Bring a swapped sequence back. Bytes moved, or None if GPU memory is short."""

    def take_overhead_s(self, previous_step_s: float = 0.0) -> float:
        """Seconds of allocator work (vAttention page mapping, swap transfers) done since the last call and
        not hidden behind compute; the engine charges it to the step that caused it.

        Extension: ``previous_step_s`` is the duration of the step before the one being charged. An
        allocator whose work can overlap that step (vAttention with ``mapping="overlapped"``) returns only
        the part that exceeds it; every other allocator ignores it. Called without it, the full work is
        returned (the synchronous, conservative cost)."""

    def breakdown(self) -> MemoryBreakdown:
        """The five-part accounting now, computed from running counters (O(1) or O(live sequences))."""

    def clear_blocked(self) -> None:
        """The head-of-queue request is no longer blocked (admitted, rejected or withdrawn)."""

    def check_invariants(self) -> None:
        """Extension, for tests only (O(blocks + sequences)): assert every invariant of DESIGN §3."""


def append_then_room(alloc, seq_id: int, num_new_tokens: int) -> int:
    """``append_decode_slots`` for an allocator with ``growth_room`` and no inlined version of its own (assign
    it in the class body): ``append_slots``, then ``growth_room``; -1 (and nothing appended) when no memory."""
    if not alloc.append_slots(seq_id, num_new_tokens):
        return -1
    return alloc.growth_room(seq_id)
