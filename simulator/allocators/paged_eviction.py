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

    admits_like_v1 = False  # its ``allocate`` prunes the prompt; the ``vllm`` scheduler gives it the first chunk
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

    def rejection_reason(
        self, num_prompt_tokens: int, num_output_tokens: int, num_seqs: int = 1
    ) -> str | None:
        """Over the context, or one sequence's budget over the replica. Parallel sequences are not counted
        here: which shared blocks each evicts decides what they hold together, so a request whose sequences
        outgrow the replica is dropped when it runs alone (``SchedulerBase._drop``), with the reason."""
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
        if dropped == bs and len(table) == self.budget_blocks > self.protected_blocks + 1:
            victim = table[self.protected_blocks]
            if pool.ref_cnt[victim] == 1 and pool.ref_cnt[table[-1]] == 1:  # (no fork shares them: no copy)
                self._rotate(seq_id, seq, victim, num_new_tokens)
                return True
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
        # One block per wrap, as stepping evicts them: slots appended together (a decode window's) may wrap
        # more often than the table has evictable blocks, and then drop some of their own before storing them.
        self.num_evicted_blocks += dropped // bs
        if emptied:
            self._grow(seq_id, seq, num_append)
        elif num_append:
            appended = super().append_slots(seq_id, num_append)
            assert appended, "the blocks were counted above"
        elif pool.num_filled[table[-1]] < bs:
            self._refresh_partial(table[-1])  # its final length moved
        return True

    def _rotate(self, seq_id: int, seq, victim: int, num_new_tokens: int) -> None:
        """The decode crossing at the budget (hot): the slots fill the last block and open one, so the oldest
        evictable block (held by this sequence alone) goes and takes the rest. The general path frees it and
        takes a clean block, which is the same block (the clean free list is a stack); so are the counters.
        ``_detach_last`` / ``_attach_last`` written out, as paged's ``append_decode_slots`` writes them: calling
        them made the azure-conv hour at budget 64 about 10% slower (4.48-5.18 s against 4.04-4.70 s)."""
        pool, bs, table = self.pool, self.block_size, seq.block_table
        last = table[-1]
        filled = pool.num_filled[last]
        if filled < bs:  # the partial last block fills: it leaves the partial-block maps
            self._num_reserved_slots -= self._partial_reserved.pop(last)
            del self._partial_sharers[last]
            pool.num_filled[last] = bs
        rest = filled + num_new_tokens - bs
        del table[self.protected_blocks]
        table.append(victim)
        pool.num_filled[victim] = rest
        pool.num_used_tokens += num_new_tokens - bs  # the victim's bs tokens out, the new ones in
        seq.num_tokens += num_new_tokens - bs
        seq.final_num_tokens -= bs
        self._evicted[seq_id] += bs
        self.num_evicted_blocks += 1
        if rest < bs:
            self._partial_sharers[victim] = [seq_id]
            self._partial_reserved[victim] = 0
            self._set_partial_reserved(victim, seq, bs - rest)

    def growth_room(self, seq_id: int) -> int:
        """Paged's room in the last block; none when the budget leaves no evictable block but the last
        (``eviction_budget_blocks < eviction_protected_blocks + 2``): a crossing that appended deferred slots
        with its own would find that block still partial and evict differently, so slots come one by one."""
        if self.budget_blocks < self.protected_blocks + 2:
            return 0
        return self._room(self.seqs[seq_id])

    append_decode_slots = append_then_room  # base.py; paged's inlined version would skip the eviction

    def window_evictions(self, stored: Sequence[int], limit: int) -> tuple[int, list[int], list[int]]:
        """Plan a decode window over sequences that share no block (one per request; eviction rules out
        prefix caching). ``stored``: each decoding sequence's stored tokens at the window's first step, that
        step's slot included; every later step adds one slot to each. Returns (how many of the next
        ``limit`` steps fit in the free blocks; for steps 1, 2, ... of those, the blocks evicted and the
        blocks gained).

        A slot that opens a block gains one while the sequence holds fewer than the budget, and otherwise
        evicts one: its stored length wraps (module docstring), and the freed block holds the new slot.
        So only the gains take free blocks. A sequence with ``(tokens - 1) % bs == r`` opens a block at
        every step ``i`` with ``(r + i) % bs == 0``. Returns 0 steps when the budget leaves only the last
        block evictable: then slots come one by one (``growth_room``)."""
        bs, budget = self.block_size, self.budget_blocks
        if budget < self.protected_blocks + 2 or limit <= 0:
            return 0, [], []
        at_budget = [0] * bs  # sequences whose next block opening evicts, by residue
        reach_budget: dict[int, list[int]] = {}  # step -> residues of sequences evicting from that step on
        gains = [0] * (limit + 1)
        for tokens in stored:
            residue = (tokens - 1) % bs
            num_gains = budget - (tokens + bs - 1) // bs  # block openings left before the budget
            if not num_gains:
                at_budget[residue] += 1
                continue
            first = bs - residue  # the first step that opens a block
            last = first + (num_gains - 1) * bs
            for step in range(first, min(limit, last) + 1, bs):
                gains[step] += 1
            if last < limit:
                reach_budget.setdefault(last + 1, []).append(residue)
        num_free = self.pool.num_free_blocks
        evicted: list[int] = []
        gained: list[int] = []
        need = 0
        for step in range(1, limit + 1):
            if step in reach_budget:
                for residue in reach_budget[step]:
                    at_budget[residue] += 1
            need += gains[step]
            if need > num_free:
                return step - 1, evicted, gained
            evicted.append(at_budget[-step % bs])
            gained.append(gains[step])
        return limit, evicted, gained

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
