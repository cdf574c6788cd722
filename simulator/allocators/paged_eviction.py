"""PagedEviction: block-wise KV pruning on top of the paged allocator (Chitty-Venkata et al., "PagedEviction:
Structured Block-wise KV Cache Pruning for Efficient Large Language Model Inference", arXiv 2509.04377,
Findings of EACL 2026).

Each sequence's KV is capped at ``eviction_budget_blocks`` blocks (the paper's cache budget C, in tokens
C = budget × block_size). At prefill a prompt longer than C is pruned to C tokens; in decode, when a sequence
needs a new block and already holds the budget, one whole full block is evicted first (the paper: "one block
of tokens is evicted once the recent block becomes full"), so it never holds more than the budget. Which block:
the paper scores blocks by the L2 norm of their values over that of their keys; a simulator has no values, so
kvsim evicts by a named policy, ``oldest``: the oldest full block after ``eviction_protected_blocks`` leading
blocks that are never evicted (the attention sink). Only counts matter to memory and cost, so the policy
changes no number here; it says what a run stands for.

What this changes: memory per request is bounded, so batches grow; decode attention reads only the stored
tokens, so steps get cheaper (the scheduler times decode from ``stored_tokens``). What it cannot show: answer
quality. Each finished request reports the fraction of its context evicted (``evicted_tokens``) for the user
to judge. A sequence of logical length L that started from a (re)prefill of P0 tokens stores
``min(L, C)`` tokens while L <= max(P0, C) and ``(budget - 1) × block_size + ((L - max(P0, C) - 1) mod
block_size) + 1`` after: the budget's full blocks but one, plus the newest block.

Accounting (DESIGN §3): evicted tokens are neither token states nor reserved; a sequence's final length for
the reserved / internal-fragmentation split is lowered by what it evicted, so ``reserved`` still counts the
slots of its last block it will fill.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from kvsim.simulator.allocators.base import Admission, append_then_room, over_context
from kvsim.simulator.allocators.paged import PagedAllocator, PagedConfig
from kvsim.simulator.specs import ModelSpec


class EvictingPagedAllocator(PagedAllocator):
    """``PagedAllocator`` with a per-sequence budget of blocks (module docstring). Invariant: every sequence
    holds at most ``eviction_budget_blocks`` blocks; an evicted block's reference is dropped at once (a block
    no other table holds goes back to the free queue)."""

    # A decode slot evicts only when it opens a block (the stored length wraps exactly at a block boundary), so
    # the slots inside the last block may be deferred as paged's are (growth_room); the decode sums count them
    # (SchedulerBase._count_stored_tokens). The crossing then appends them together with the step's own slot,
    # which evicts the same block stepping would, provided a full block other than the last is evictable.

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
            config, model=model, tp=tp, capacity_bytes=capacity_bytes, swap_space_bytes=swap_space_bytes
        )
        self.budget_blocks = config.eviction_budget_blocks
        self.budget_tokens = self.budget_blocks * self.block_size
        self.protected_blocks = config.eviction_protected_blocks
        self._evicted: dict[int, int] = {}  # seq_id -> tokens of its context not stored
        self._steady_from: dict[int, int] = {}  # seq_id -> max(P0, C): the logical length eviction starts at
        self.num_evicted_blocks = 0  # whole blocks dropped from block tables, over the run

    def stored_tokens_at(self, seq_id: int, logical_tokens: int) -> int:
        """Tokens a sequence stores at logical length ``logical_tokens`` (module docstring)."""
        steady_from, bs = self._steady_from[seq_id], self.block_size
        if logical_tokens <= steady_from:
            return min(logical_tokens, self.budget_tokens)
        return self.budget_tokens - bs + (logical_tokens - steady_from - 1) % bs + 1

    def stored_tokens(self, seq_id: int) -> int:
        """Tokens of ``seq_id`` in its blocks now: what decode attention reads."""
        return self.seqs[seq_id].num_tokens

    def evicted_tokens(self, seq_id: int) -> int:
        """Tokens of ``seq_id``'s context pruned at prefill or evicted since."""
        return self._evicted[seq_id]

    def stats(self) -> dict[str, int]:
        """Counters for ``summary.json``'s ``allocator_stats``: whole blocks dropped from block tables (prompt
        tokens pruned at prefill were never stored and are not among them)."""
        return {"num_evicted_blocks": self.num_evicted_blocks}

    # -- the KVAllocator Protocol ------------------------------------------------------------------------

    def rejection_reason(self, num_prompt_tokens: int, num_output_tokens: int) -> str | None:
        reason = over_context(num_prompt_tokens, num_output_tokens, self.max_model_len)
        if reason is not None:
            return reason
        total = num_prompt_tokens + num_output_tokens
        if min(-(-total // self.block_size), self.budget_blocks) > self.num_blocks:
            return (
                f"its eviction budget of {self.budget_blocks} blocks exceeds the replica's "
                f"{self.num_blocks}; lower eviction_budget_blocks"
            )
        return None

    def allocate(
        self,
        seq_id: int,
        num_tokens: int,
        *,
        final_num_tokens: int,
        prefix_block_hashes: Sequence[int] | None = None,
        num_prompt_tokens: int | None = None,
    ) -> Admission | None:
        stored = min(num_tokens, self.budget_tokens)  # a longer prompt is pruned at prefill
        pruned = num_tokens - stored
        admission = super().allocate(seq_id, stored, final_num_tokens=final_num_tokens - pruned)
        if admission is None:
            return None
        self._evicted[seq_id] = pruned
        self._steady_from[seq_id] = max(num_tokens, self.budget_tokens)
        return admission

    def append_slots(self, seq_id: int, num_new_tokens: int) -> bool:
        seq = self.seqs[seq_id]
        logical = seq.num_tokens + self._evicted[seq_id]
        stored = self.stored_tokens_at(seq_id, logical + num_new_tokens)
        dropped = seq.num_tokens + num_new_tokens - stored  # whole blocks, by the formula
        if not dropped:
            return super().append_slots(seq_id, num_new_tokens)
        pool, bs, table = self.pool, self.block_size, seq.block_table
        num_evict, num_append, emptied = self._eviction(seq, stored, dropped)
        victims = table[self.protected_blocks : self.protected_blocks + num_evict]
        num_freed = sum(1 for block_id in victims if pool.ref_cnt[block_id] == 1)
        if num_append:
            # Evicting whole full blocks first changes no count _num_new_blocks makes of the rest.
            need = -(-num_append // bs) if emptied else self._num_new_blocks(seq, num_append)
            if need > pool.num_free_blocks + num_freed:
                return False
        pool.free_blocks(victims)
        del table[self.protected_blocks : self.protected_blocks + num_evict]
        seq.num_tokens -= num_evict * bs
        seq.final_num_tokens -= dropped  # reserved = slots it will still fill: final - logical
        self._evicted[seq_id] += dropped
        self.num_evicted_blocks += num_evict
        if emptied:
            self._grow(seq_id, seq, num_append)
        elif num_append:
            appended = super().append_slots(seq_id, num_append)
            assert appended, "the blocks were counted above"
        elif pool.num_filled[table[-1]] < bs:
            self._refresh_partial(table[-1])  # its final length moved
        return True

    def growth_room(self, seq_id: int) -> int:
        """Paged's room in the last block; none when the budget leaves no evictable block but the last
        (``eviction_budget_blocks < eviction_protected_blocks + 2``): a crossing that appended deferred slots
        with its own would find that block still partial and evict differently, so slots come one by one."""
        if self.budget_blocks < self.protected_blocks + 2:
            return 0
        return self._room(self.seqs[seq_id])

    append_decode_slots = append_then_room  # base.py; paged's inlined version would skip the eviction

    def _eviction(self, seq, stored: int, dropped: int) -> tuple[int, int, bool]:
        """How ``append_slots`` brings ``seq`` to ``stored`` tokens when ``dropped`` tokens leave its blocks:
        (blocks evicted: the oldest full ones after the protected ones; new tokens that stay, the rest being
        evicted; whether every block it held goes: no protected block, all full)."""
        table, bs = seq.block_table, self.block_size
        num_full = len(table) - (self.pool.num_filled[table[-1]] < bs)
        num_evict = min(dropped // bs, max(0, num_full - self.protected_blocks))
        return num_evict, stored - (seq.num_tokens - num_evict * bs), num_evict == len(table)

    def max_uniform_growth(self, seq_ids: Sequence[int], limit: int) -> int:
        """Growth under eviction is not uniform in blocks; the scheduler steps one by one (``growth_room``
        is None), so this bound is asked for one step at a time (``fits_one_slot_each``); a longer one is
        tried on a copy."""
        if limit <= 0 or not seq_ids:
            return max(0, limit)
        if limit == 1:
            return int(self.fits_one_slot_each(seq_ids))
        trial = copy.deepcopy(self)
        for k in range(1, limit + 1):
            if not all(trial.append_slots(s, 1) for s in seq_ids):
                return k - 1
        return limit

    def fits_one_slot_each(self, seq_ids: Sequence[int]) -> bool:
        """Whether ``append_slots(s, 1)`` would succeed for every ``s`` in order, without changing anything:
        ``append_slots``'s block counts, replayed over the free-block count and the reference counts of the
        blocks that earlier sequences of the list share (a parallel sample's evictions and copy-on-write
        release blocks the next one holds too). O(len(seq_ids)), where a trial on a copy costs the whole
        allocator."""
        pool, bs, protected = self.pool, self.block_size, self.protected_blocks
        ref_cnt: dict[int, int] = {}  # block -> its reference count after the appends so far
        num_free = pool.num_free_blocks
        for seq_id in seq_ids:
            seq = self.seqs[seq_id]
            table, num_tokens = seq.block_table, seq.num_tokens
            last = table[-1]
            stored = self.stored_tokens_at(seq_id, num_tokens + self._evicted[seq_id] + 1)
            dropped = num_tokens + 1 - stored
            num_append, emptied = 1, False
            if dropped:  # as append_slots: evict first
                num_evict, num_append, emptied = self._eviction(seq, stored, dropped)
                for block_id in table[protected : protected + num_evict]:
                    count = ref_cnt.get(block_id, pool.ref_cnt[block_id]) - 1
                    ref_cnt[block_id] = count
                    num_free += count == 0
            if not num_append:
                continue
            last_ref = ref_cnt.get(last, pool.ref_cnt[last])
            cow = not emptied and pool.num_filled[last] < bs and last_ref > 1
            if emptied:
                need = -(-num_append // bs)
            else:  # _num_new_blocks (evicting whole full blocks first changes none of its counts)
                need = -(-(num_tokens + num_append) // bs) - len(table) + cow
            if need > num_free:
                return False
            num_free -= need
            if cow:  # the copy leaves the shared block to the others
                ref_cnt[last] = last_ref - 1
        return True

    def fork(self, parent_seq_id: int, child_seq_id: int, *, final_num_tokens: int | None = None) -> bool:
        parent = self.seqs[parent_seq_id]
        evicted = self._evicted[parent_seq_id]
        super().fork(
            parent_seq_id,
            child_seq_id,
            final_num_tokens=(final_num_tokens - evicted) if final_num_tokens else parent.final_num_tokens,
        )
        self._evicted[child_seq_id] = evicted
        self._steady_from[child_seq_id] = self._steady_from[parent_seq_id]
        return True

    def free(self, seq_id: int) -> None:
        super().free(seq_id)
        del self._evicted[seq_id], self._steady_from[seq_id]

    def check_invariants(self) -> None:
        super().check_invariants()
        for seq_id, seq in self.seqs.items():
            if not seq.num_swapped_blocks:
                assert len(seq.block_table) <= self.budget_blocks, f"seq {seq_id} holds over its budget"
            logical = seq.num_tokens + self._evicted[seq_id]
            assert seq.num_tokens == self.stored_tokens_at(seq_id, logical), f"seq {seq_id}: stored tokens"
