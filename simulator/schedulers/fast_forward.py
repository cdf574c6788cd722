"""Pending slots and decode windows (a mixin of ``SchedulerBase``, split out to keep files short; DESIGN §7b).

``_sync`` appends a request's pending slots; ``_sync_all`` appends those that need memory (beyond the request's
``num_room``: the rest stay deferred, counted by the paged allocator's ``num_deferred_tokens``);
``decode_window`` says how many identical decode steps may run as one event.
"""

from __future__ import annotations

import numpy as np

from kvsim.simulator.request_state import RequestState
from kvsim.simulator.schedulers.requests_through import RequestsThroughMixin

SHORT_BLOCKS_STEPS = 64  # windows up to this long get their block counts as a list (the engine's float path)


class FastForwardMixin(RequestsThroughMixin):
    """Needs ``SchedulerBase``'s state: ``allocator``, ``running``, the step's sums and ``_residue_counts``."""

    def _sync(self, req: RequestState) -> None:
        """Append ``req``'s pending slots (they were checked to fit when its window was planned)."""
        num_pending = req.num_pending_slots
        if num_pending:
            seq_ids = req.seq_ids
            if self._append_decode is not None and len(seq_ids) == 1:  # append and new room in one call
                room = self._append_decode(seq_ids[0], num_pending)
                if room < 0:
                    raise AssertionError("decode_window checked max_uniform_growth")
                req.num_pending_slots = 0
                req.num_room = room
                self.allocator.num_deferred_tokens -= num_pending
                return
            for seq_id in seq_ids:
                if not self.allocator.append_slots(seq_id, num_pending):
                    raise AssertionError("decode_window checked max_uniform_growth")
            req.num_pending_slots = 0
            if self._defers:
                self.allocator.num_deferred_tokens -= num_pending * len(seq_ids)
                req.num_room = self._growth_room(seq_ids[0]) if len(seq_ids) == 1 else 0

    def _sync_all(self) -> None:
        """Append the pending slots that need memory (those beyond a request's ``num_room``), oldest first."""
        for req in self.running:
            if req.num_pending_slots > req.num_room:
                self._sync(req)
        self._has_pending = False

    def _flush_deferred(self) -> None:
        """Append every pending slot, so that the allocator's per-sequence token counts are exact."""
        for req in self.running:
            self._sync(req)
        self._has_pending = False

    def decode_window(self, limit: int) -> tuple[int, np.ndarray | list[int] | None]:
        """After a pure-decode ``schedule()``: how many steps (1..limit) can run before anything but decode
        progress changes, and the paged block count of each of them ([num_steps], an array or for short
        windows a list; None if not paged or one step: the batch's own count)."""
        if self._prefills or self._queues_moved:
            return 1, None
        if self._cohort_stepped:
            return self._cohort_window(limit) if not self._decodes else (1, None)
        if not self._decodes:
            return 1, None
        num_steps = min(limit, self._min_remaining)
        if self._stored_tokens is not None and num_steps > 1:
            if self._window_evictions is not None and self._defers and not self._num_multi_seq_decodes:
                return self._eviction_window(num_steps)
            num_steps = 1  # evictions would land on other steps than stepping puts them
        if self._growth_may_cost:
            num_steps = 1  # allocator time would land on other steps than stepping puts it
        elif (
            limit > num_steps == self._min_remaining  # a finish would end the window
            and self.runs_through_finishes
            and self._overhead_free_growth is not None  # windows inside the rooms (requests_through.py)
            and self._defers
            and not self.block_size
            and not self._num_multi_seq_decodes
            and not self.waiting
            and not self.swapped
            and len(self._decodes) == len(self.running)
        ):
            through = self._plan_requests_through(limit)
            if through:
                return through, None
        if num_steps > 1:
            if self._defers and not self._num_multi_seq_decodes and self._overhead_free_growth is None:
                # One sequence each, so no shared partial block: the rooms are the block residues, reversed
                # (a sequence with (slots - 1) % bs == r has bs - 1 - r empty slots in its last block).
                residues = self._residue_counts[::-1]
                growth = self.allocator.max_growth_by_room(residues, 0, num_steps)
                if self._clean_free_blocks is not None and self._stops_short_of_finish(
                    num_steps,
                    growth,
                    lambda n: self.allocator.max_growth_by_room(residues, 0, num_steps - 1, n),
                ):
                    num_steps -= 1
            elif self._defers and not self._num_multi_seq_decodes:
                # Growth may cost allocator time (vAttention maps pages, contiguous-growth copies regions), but
                # not within the deferred rooms: slots inside what each sequence holds and short of its final
                # length. The window stays inside them, so it needs no allocator call and no memory. (Next to
                # the final length a room counts short; that only shortens the window, and any window length
                # is exact.)
                growth = min([req.num_room - req.num_pending_slots for req in self._decodes])
                if growth > 0:  # and what the allocator bounds beyond its sequences (contiguous-growth: 0
                    # while the blocked head of the queue would now fit)
                    growth = self._overhead_free_growth((), growth)
                else:
                    growth = 0
            else:
                if self._defers:
                    self._flush_deferred()  # max_uniform_growth reads the allocator's token counts
                seq_ids = [s for req in self._decodes for s in req.seq_ids]
                if self._overhead_free_growth is not None:
                    num_steps = min(num_steps, 1 + self._overhead_free_growth(seq_ids, num_steps - 1))
                # Ask for one step more than the window: the next step's slot, appended with the window's.
                growth = self.allocator.max_uniform_growth(seq_ids, num_steps)
                if self._clean_free_blocks is not None and self._stops_short_of_finish(
                    num_steps, growth, lambda n: self.allocator.max_uniform_growth(seq_ids, num_steps - 1, n)
                ):
                    num_steps -= 1
            num_steps = min(num_steps, 1 + growth)
            self._prepaid = growth >= num_steps
        if not self.block_size or num_steps == 1 or not self.window_block_counts:
            return num_steps, None  # one step reads the batch's own block count; or none is read
        # Step i reads sum_s ceil((slots_s + i) / bs) blocks: a sequence with (slots - 1) % bs == r gains
        # a block at every step i with (r + i) % bs == 0.
        bs = self.block_size
        if num_steps <= SHORT_BLOCKS_STEPS:  # a few steps: a plain list is cheaper than arrays
            counts, num_blocks = self._residue_counts, self._decode_kv_blocks
            block_list = [num_blocks]
            for i in range(1, num_steps):
                num_blocks += counts[-i % bs]
                block_list.append(num_blocks)
            return num_steps, block_list
        counts = np.asarray(self._residue_counts, dtype=np.int64)
        gains = counts[(-np.arange(1, num_steps)) % bs]
        blocks = np.empty(num_steps, dtype=np.int64)
        blocks[0] = self._decode_kv_blocks
        np.cumsum(gains, out=blocks[1:])
        blocks[1:] += self._decode_kv_blocks
        return num_steps, blocks

    def _stops_short_of_finish(self, num_steps: int, growth: int, clean_growth) -> bool:
        """Whether a window of ``num_steps`` steps whose last step has a finish must stop one step short of it.
        The slots of its steps after the first are appended after that finish frees memory; stepping appends
        them before. The allocator takes the same blocks either way unless some are in its prefix cache
        (``clean_free_blocks``): then only if its clean free blocks alone can serve them
        (``clean_growth(num_clean)``: the growth those allow). A window that stops short frees nothing."""
        if num_steps != self._min_remaining or growth < num_steps - 1:  # (callers check _clean_free_blocks)
            return False
        num_clean = self._clean_free_blocks()
        return num_clean is not None and clean_growth(num_clean) < num_steps - 1

    def _eviction_window(self, num_steps: int) -> tuple[int, None]:
        """A PagedEviction window (``window_evictions``), one sequence per request: planned as segments
        (``cohort_through.py``'s format, no finishes inside), a new one at each step whose slots evict, since
        each eviction takes a block's tokens out of the step's KV sum. Its slots stay pending, to be appended
        as a deferred crossing's are (an append of several slots evicts what stepping evicts)."""
        tokens = self._decode_stored  # _count_stored_tokens' (the batch's sums)
        growth, evicted, gained = self._window_evictions(tokens, num_steps)
        num_steps = min(num_steps, 1 + growth)
        self._prepaid = growth >= num_steps
        if num_steps == 1:
            return 1, None
        num_seqs, bs = len(tokens), self.block_size
        kv_tokens, kv_blocks = self._decode_kv_tokens, self._decode_kv_blocks
        blocks = [kv_blocks] if self.window_block_counts else None
        segments = []
        steps, first_tokens = 1, kv_tokens
        for i in range(num_steps - 1):  # step i + 1
            kv_tokens += num_seqs
            if evicted[i]:
                segments.append((steps, num_seqs, first_tokens, blocks, 0))
                kv_tokens -= bs * evicted[i]
                steps, first_tokens = 0, kv_tokens
                blocks = [] if blocks is not None else None
            steps += 1
            if blocks is not None:
                kv_blocks += gained[i]
                blocks.append(kv_blocks)
        segments.append((steps, num_seqs, first_tokens, blocks, 0))
        self.window_segments = segments
        return num_steps, None
