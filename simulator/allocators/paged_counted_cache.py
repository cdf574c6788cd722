"""The counted twin of ``PagedAllocator`` with vLLM v1's prefix cache, when no two requests share a block
(DESIGN §7b): every block holds the request's own tokens (a trace without prefix hashes, one sequence per
request), so the cache can only serve a request its own blocks back after a preemption.

Why counts suffice. v1 hashes every full block, and a request frees its blocks last block first, the uncached
partial last block to the front of the free queue and its full (cached) blocks to the back (``block_pool.py``).
Uncached free blocks are always taken before any cached one, and cached ones go from the front, so a freed
request's cached blocks are a *run* in the queue that is evicted from its last block backwards: what survives of
it is always its first ``count`` blocks. A preempted request comes back with a hit of exactly those (its hit cap,
``(num_tokens - 1) // block_size`` blocks, is never below its full blocks at preemption), which takes the whole
run out of the queue. So the queue is an ordered map owner -> surviving count, evicted from its head; clean free
blocks are ``num_free_blocks`` minus the cached ones, and the evictions that allocations made since the last look
are settled lazily (they only ever take blocks from the head). ``run.py`` picks this allocator where it applies;
the tests run it beside ``PagedAllocator``.

Finished requests. A finished request's blocks stay cached (and take their place in the LRU queue), but no
request can ever hit them: their identities are its own. So they need no owner: they are counted as
*anonymous* blocks, and the anonymous blocks freed after the last owner's run are one number, ``_tail``, at the
end of the queue; an owner's run that comes after them first closes them into an anonymous entry of the map
(keys below zero; owners are above 2**64). With no preempted request's run in the queue (the common case), the
map is empty and a finish or a settling is arithmetic. The scheduler says which frees are finishes
(``free_finished``); any other free (preemption, a dropped request) keeps its owner.

How lazily. Between two frees, allocations only take free blocks, clean ones first, so the cached blocks that
survive are ``min(Σ runs, num_free_blocks)`` and the evictions since the last settling ``max(0, Σ runs -
num_free_blocks)``: the breakdown (``CountedPagedAllocator.breakdown_parts`` reads ``_num_cached``) and the
counters read those numbers without touching the map (a timeline row each). The map itself is settled before a free (which adds a clean block the count would otherwise take for an
eviction) and before a lookup or admission of an owner that has a run (whose survival it must know); an owner
without a run hits nothing either way.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence

from kvsim.simulator.allocators.base import Admission, MemoryBreakdown
from kvsim.simulator.allocators.paged import PagedConfig
from kvsim.simulator.allocators.paged_counted import NO_CACHE_HIT, CountedPagedAllocator
from kvsim.simulator.specs import ModelSpec


class CountedOwnBlocksCache(CountedPagedAllocator):
    """Invariant: ``_num_cached`` = Σ ``_runs`` <= ``num_free_blocks`` after ``_settle``; an owner (a request's
    first own block identity) has at most one run, and no run while it holds blocks."""

    def __init__(
        self,
        config: PagedConfig,
        *,
        model: ModelSpec,
        tp: int,
        capacity_bytes: int,
        swap_space_bytes: int = 0,
    ) -> None:
        super().__init__(
            dataclasses.replace(config, enable_prefix_caching=False),
            model=model,
            tp=tp,
            capacity_bytes=capacity_bytes,
            swap_space_bytes=swap_space_bytes,
        )
        self.config = config
        # owner -> its surviving cached blocks, LRU first; keys below 0: anonymous blocks (finished requests')
        self._runs: OrderedDict[int, int] = OrderedDict()
        self._tail = 0  # anonymous cached blocks after the map's last entry: the end of the queue
        self._next_anonymous = -1
        self._num_cached = 0  # Σ _runs + _tail
        self._owner: dict[int, int] = {}  # seq_id -> owner
        self.num_evictions = 0
        self.num_prefix_query_tokens = self.num_prefix_hit_tokens = 0
        self.num_prefix_query_blocks = self.num_prefix_hit_blocks = 0

    caches_prefixes = True

    def _settle(self) -> None:
        """Evict, from the head of the queue, what allocations since the last call took beyond the clean blocks
        (callers check that some did: ``_num_cached > num_free_blocks``)."""
        excess = self._num_cached - self.num_free_blocks
        runs = self._runs
        self._num_cached -= excess
        self.num_evictions += excess
        while excess and runs:
            owner, count = runs.popitem(last=False)
            if count > excess:
                runs[owner] = count - excess
                runs.move_to_end(owner, last=False)
                return
            excess -= count
        self._tail -= excess  # what the map did not hold: from the tail

    def lookup_prefix(self, block_hashes: Sequence[int], num_tokens: int) -> int:
        assert isinstance(block_hashes, range), "own block identities only"
        count = self._runs.get(block_hashes.start)
        if count is None:
            return 0
        if self._num_cached > self.num_free_blocks:
            self._settle()
            count = self._runs.get(block_hashes.start, 0)
        return min(count, (num_tokens - 1) // self.block_size) * self.block_size

    def allocate(
        self,
        seq_id: int,
        num_tokens: int,
        *,
        final_num_tokens: int,
        prefix_block_hashes: Sequence[int] | None = None,
        num_prompt_tokens: int | None = None,
        block_hashes: Sequence[int] | None = None,
        num_full_tokens: int | None = None,
        num_watermark_blocks: int = 0,
    ) -> Admission | None:
        assert isinstance(block_hashes, range), "own block identities only"
        bs, owner = self.block_size, block_hashes.start
        num_query_tokens = num_full_tokens or num_tokens
        hits = self._runs.get(owner, 0)
        if hits and self._num_cached > self.num_free_blocks:
            self._settle()
            hits = self._runs.get(owner, 0)
        assert hits <= (num_query_tokens - 1) // bs, "a run longer than its owner's hit cap"
        # The revived blocks are free now and in use after: counted in the need (PagedAllocator's), as the
        # counted allocator's own check counts every block of the request.
        if not self._admit(seq_id, num_tokens, final_num_tokens, num_full_tokens, num_watermark_blocks):
            return None
        self._owner[seq_id] = owner
        self.num_prefix_query_tokens += num_query_tokens
        self.num_prefix_query_blocks += num_query_tokens // bs
        if not hits:
            return NO_CACHE_HIT
        del self._runs[owner]
        self._num_cached -= hits
        self.num_prefix_hit_tokens += hits * bs
        self.num_prefix_hit_blocks += hits
        return Admission(num_cached_tokens=hits * bs)

    def _free_own(self, seq_id: int) -> tuple[int, int]:
        """Free ``seq_id``'s blocks (settling first: the free adds clean blocks); its owner and full blocks."""
        if self._num_cached > self.num_free_blocks:
            self._settle()
        num_full = CountedPagedAllocator.free(self, seq_id) // self.block_size
        return self._owner.pop(seq_id), num_full

    def free(self, seq_id: int) -> None:
        owner, num_full = self._free_own(seq_id)
        if num_full:
            assert owner not in self._runs
            if self._tail:  # the anonymous blocks before this run become an entry of their own
                self._runs[self._next_anonymous] = self._tail
                self._next_anonymous -= 1
                self._tail = 0
            self._runs[owner] = num_full
            self._num_cached += num_full

    def free_finished(self, seq_id: int) -> None:
        """``free`` for a request that finished: its full blocks join the queue's anonymous tail (module
        docstring), as cached blocks no lookup can hit."""
        num_full = self._free_own(seq_id)[1]
        self._tail += num_full
        self._num_cached += num_full

    def swap_out(self, seq_id: int) -> int | None:
        raise AssertionError("vLLM v1 preempts by recompute only")

    def breakdown(self) -> MemoryBreakdown:
        return MemoryBreakdown(*self.breakdown_parts())

    def prefix_cache_counts(self) -> tuple[int, int, int, int, int]:
        """As ``PagedAllocator.prefix_cache_counts``; the evictions as settled now (module docstring)."""
        unsettled = self._num_cached - self.num_free_blocks
        return (
            self.num_prefix_query_tokens,
            self.num_prefix_hit_tokens,
            self.num_prefix_query_blocks,
            self.num_prefix_hit_blocks,
            self.num_evictions + unsettled if unsettled > 0 else self.num_evictions,
        )

    def check_invariants(self) -> None:
        super().check_invariants()
        if self._num_cached > self.num_free_blocks:
            self._settle()
        assert self._num_cached == sum(self._runs.values()) + self._tail <= self.num_free_blocks
        assert self._tail >= 0 and all(count > 0 for count in self._runs.values())
        assert not set(self._runs) & set(self._owner.values()), "a run for an owner holding blocks"
