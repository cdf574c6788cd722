"""The paged allocator's growth paths (a mixin of ``PagedAllocator``, split out to keep files short).

Decode growth is the hot path of a simulation (DESIGN §7b): ``growth_room`` tells the scheduler how many slots a
sequence may gain with no allocator call at all (they only turn reserved slots into token states; the scheduler
defers them and ``breakdown()`` counts them from ``num_deferred_tokens``); ``append_decode_slots`` appends and
returns the new room in one call; ``_grow_unshared`` is ``_grow`` for an unshared last block; and
``max_uniform_growth`` / ``max_growth_by_room`` bound a fast-forward window by the free blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kvsim.simulator.allocators.base import largest_fitting

if TYPE_CHECKING:
    from kvsim.simulator.allocators.paged import _Seq


class PagedGrowthMixin:
    """Needs ``PagedAllocator``'s state: ``pool``, ``block_size``, ``seqs``, the partial-block maps."""

    def _grow_unshared(self, seq_id: int, seq: _Seq, num_new_tokens: int) -> bool:
        """``_grow`` for the decode case (a pending window's slots): the last block is unshared and no block
        it fills is a prompt block to cache, so no copy-on-write and no prefix-cache entry; the same blocks,
        in the same order, and the same counters."""
        pool, bs, table = self.pool, self.block_size, seq.block_table
        last = table[-1]
        num_filled = pool.num_filled[last]
        num_fill = bs - num_filled
        if num_fill > num_new_tokens:
            num_fill = num_new_tokens
        remaining = num_new_tokens - num_fill
        num_blocks = -(-remaining // bs)
        if num_blocks > len(pool.free_block_ids) + len(pool.cached_free_blocks):
            return False
        if num_filled < bs:  # detach the partial last block (only this sequence holds it)
            self._num_reserved_slots -= self._partial_reserved.pop(last)
            del self._partial_sharers[last]
            pool.num_filled[last] = num_filled + num_fill
            pool.num_used_tokens += num_fill
        if remaining:
            if num_blocks == 1 and pool.free_block_ids:  # the decode case: one clean block
                block = pool.free_block_ids.pop()
                pool.ref_cnt[block] = 1
                pool.num_filled[block] = remaining
                pool.num_used_tokens += remaining
                table.append(block)
            else:
                new_blocks = pool.get_new_blocks(num_blocks)
                pool.fill_new_blocks(new_blocks, remaining)
                table += new_blocks
        seq.num_tokens += num_new_tokens
        last = table[-1]
        num_filled = pool.num_filled[last]
        if num_filled < bs:
            self._partial_sharers[last] = [seq_id]
            self._partial_reserved[last] = 0
            self._set_partial_reserved(last, seq, bs - num_filled)
        return True

    def clean_free_blocks(self) -> int | None:
        """The free blocks that growth takes alike whether or not other blocks are freed first (an extension
        of the Protocol, for fast-forward windows that end with a finish): the clean ones; None while no
        cached block is free (then every free block is). Growth takes a clean block while one is left, else
        evicts the least recently used cached block: growth that comes after a free (a window's slots are
        appended after its last step) may take a freed block where stepping, before the free, evicts one."""
        pool = self.pool
        return len(pool.free_block_ids) if pool.cached_free_blocks else None

    def growth_room(self, seq_id: int) -> int:
        """Slots ``seq_id`` can still gain with no effect but reserved -> token_states: they fit in its last
        block, which is unshared and holds no prompt block to cache, and stay within the final length."""
        return self._room(self.seqs[seq_id])

    def _room(self, seq: _Seq) -> int:
        table = seq.block_table
        if not table or self.pool.ref_cnt[table[-1]] != 1 or len(table) <= len(seq.block_hashes):
            return 0
        room = self.block_size - self.pool.num_filled[table[-1]]
        left = seq.final_num_tokens - seq.num_tokens
        if left < room:
            room = left
        return room if room > 0 else 0

    def append_decode_slots(self, seq_id: int, num_new_tokens: int) -> int:
        """``append_slots``, then ``growth_room``, in one call: -1 (and nothing appended) when no memory.

        Inlined for the decode crossing (the last block, unshared and past the prompt's cached blocks, fills
        and one clean block takes the rest): the same block, counters and partial-block entries as ``_grow``."""
        seq = self.seqs[seq_id]
        table, pool, bs = seq.block_table, self.pool, self.block_size
        last = table[-1]
        filled = pool.num_filled[last]
        total = filled + num_new_tokens
        if (
            bs < total <= 2 * bs
            and pool.free_block_ids
            and pool.ref_cnt[last] == 1
            and len(table) > len(seq.block_hashes)
        ):
            if filled < bs:  # the partial last block fills: it leaves the partial-block maps
                self._num_reserved_slots -= self._partial_reserved.pop(last)
                del self._partial_sharers[last]
                pool.num_filled[last] = bs
            block = pool.free_block_ids.pop()
            rest = total - bs
            pool.ref_cnt[block] = 1
            pool.num_filled[block] = rest
            pool.num_used_tokens += num_new_tokens
            table.append(block)
            seq.num_tokens += num_new_tokens
            if rest == bs:
                return 0
            room = seq.final_num_tokens - seq.num_tokens
            if room > bs - rest:
                room = bs - rest
            if room < 0:
                room = 0
            self._partial_sharers[block] = [seq_id]
            self._partial_reserved[block] = room
            self._num_reserved_slots += room
            return room  # the reserved slots are exactly the room: bs - rest, capped by the final length
        if not self.append_slots(seq_id, num_new_tokens):
            return -1
        return self._room(seq)

    def max_uniform_growth(self, seq_ids: Sequence[int], limit: int, num_free: int | None = None) -> int:
        """Sequences are grouped by the empty slots ``r`` of their last block (0 <= r < block_size): growing by
        k takes ceil((k - r) / block_size) new blocks each when k > r. A binary search on k then costs
        O(block_size) per probe after one O(len(seq_ids)) pass. Copy-on-write is counted exactly: of ``m``
        listed sharers of a partial block held by ``c`` tables, min(m, c - 1) must copy it. ``num_free``:
        grow into that many blocks instead of every free one (``clean_free_blocks``)."""
        bs, pool = self.block_size, self.pool
        num_with_room = [0] * bs  # empty slots in the last block -> sequences
        listed_sharers: dict[int, int] = {}
        for seq_id in seq_ids:
            seq = self.seqs[seq_id]
            table = seq.block_table
            assert table, f"max_uniform_growth of swapped-out seq {seq_id}"
            room = len(table) * bs - seq.num_tokens
            num_with_room[room] += 1
            if room and pool.ref_cnt[table[-1]] > 1:
                listed_sharers[table[-1]] = listed_sharers.get(table[-1], 0) + 1
        num_copies = sum(min(m, pool.ref_cnt[b] - 1) for b, m in listed_sharers.items())
        return self.max_growth_by_room(num_with_room, num_copies, limit, num_free)

    def max_growth_by_room(
        self, num_with_room: Sequence[int], num_copies: int, limit: int, num_free: int | None = None
    ) -> int:
        """``max_uniform_growth`` from its summary: ``num_with_room[r]`` sequences have ``r`` empty slots in
        their last block, and ``num_copies`` shared partial blocks must be copied on the first append."""
        bs = self.block_size
        rooms = [(room, count) for room, count in enumerate(num_with_room) if count]
        if num_free is None:
            num_free = self.pool.num_free_blocks

        def fits(k: int) -> bool:
            need = sum(count * -(-(k - room) // bs) for room, count in rooms if k > room)
            return need + (num_copies if k else 0) <= num_free

        return largest_fitting(limit, fits)  # fits(0) holds: growing by 0 needs nothing
