"""The decode cohort: every decoding request's step in O(block_size), not O(requests) (DESIGN §7b).

A mixin of ``SchedulerBase``, for allocators that keep a cohort (``CountedPagedAllocator``) and schedulers that
opt in (``uses_cohort``). Between a request's first decode step and its finish, all decoding requests gain one
KV slot and one output token per step, so none of them needs a visit per step: the allocator grows them
together (``cohort_grow``), the scheduler reads the batch's sums from its counters, and a heap ordered by the
tick at which each request produces its last token says when the next one finishes. A member's
``num_slots`` and ``num_generated`` are frozen at its join and brought up to date when it leaves
(``_leave_cohort``: finish, preemption, or a step that falls back to visiting every request).

The fallback keeps vLLM's semantics exact: when this step's blocks are not all free, some request must be
preempted, and which one depends on the order in which requests take blocks; the cohort then dissolves and
the step runs request by request (``_schedule_decodes``); the members join again at the next step.
"""

from __future__ import annotations

import heapq
from itertools import accumulate

import numpy as np

from kvsim.simulator.allocators.paged_counted import cyclic_run
from kvsim.simulator.batch import Batch
from kvsim.simulator.request_state import RequestState
from kvsim.simulator.schedulers.cohort_through import CohortThroughMixin
from kvsim.simulator.schedulers.fast_forward import SHORT_BLOCKS_STEPS


class CohortMixin(CohortThroughMixin):
    """Needs ``SchedulerBase``'s state: ``allocator``, ``running``, the step's sums; sets ``_cohort_stepped``."""

    uses_cohort = False  # a scheduler whose decode steps take every decoding request opts in

    def _init_cohort(self) -> None:
        self._cohort = self.uses_cohort and getattr(self.allocator, "keeps_cohort", False)
        if self._cohort:  # a request leaves at its last token, with final - 1 slots
            self.allocator.members_leave_before_final = True
        self._finish_at: list[tuple[int, int, RequestState]] = []  # heap of (finish tick, key, request)
        self._num_members = 0
        self._next_key = 1  # a member's key; 0 marks a request outside the cohort
        self._cohort_stepped = False  # the step being built grew the cohort
        self._init_through()

    def _join_cohort(self, req: RequestState) -> None:
        """``req`` (one sequence, decoding, no pending slots) joins between two steps."""
        alloc = self.allocator
        alloc.cohort_join(req.seq_ids[0])
        key = req.cohort_key = self._next_key
        self._next_key += 1
        req.cohort_tick = alloc.tick
        # Its last token comes out of the step that brings the allocator's tick to this value.
        finish_tick = alloc.tick + req.num_output_tokens - req.num_generated
        heapq.heappush(self._finish_at, (finish_tick, key, req))
        self._num_members += 1

    def _leave_cohort(self, req: RequestState) -> None:
        """Take ``req`` out of the cohort, in the allocator too (between two steps)."""
        self.allocator.cohort_leave(req.seq_ids[0])
        self._drop_member(req)

    def _drop_member(self, req: RequestState) -> None:
        """Bring ``req``'s counters up to date and strike it from the scheduler's side of the cohort."""
        num_steps = self.allocator.tick - req.cohort_tick
        req.num_slots += num_steps
        req.num_generated += num_steps
        req.cohort_key = 0
        self._num_members -= 1

    def _cohort_decode(self, reqs: list[RequestState]) -> bool:
        """This step's slot for every request in ``reqs`` (all running decoders) through the cohort; False
        when the step must visit each request (memory runs short, or a request cannot join). Members are
        always running decoders (they leave when they finish or are preempted), so the same count means the
        same requests."""
        if self._num_members != len(reqs):  # after a swap-in or a fallback step: the others join first
            for req in reqs:
                if not req.cohort_key:
                    if len(req.seq_ids) != 1:
                        break
                    self._sync(req)
                    self._join_cohort(req)
            if self._num_members != len(reqs):
                self._dissolve_cohort()
                return False
        if not self.allocator.cohort_grow(1):
            self._dissolve_cohort()
            return False
        self._count_cohort()
        return True

    def _count_cohort(self) -> None:
        """Add the grown cohort to this step's sums."""
        alloc = self.allocator
        heap = self._finish_at
        while heap[0][2].cohort_key != heap[0][1]:  # stale: that request left the cohort
            heapq.heappop(heap)
        self._num_decode_seqs += self._num_members
        self._decode_kv_tokens += alloc.cohort_num_tokens()
        self._decode_kv_blocks += alloc.num_cohort_blocks
        # output tokens the first to finish still needs, before this step
        remaining = heap[0][0] - alloc.tick + 1
        if remaining < self._min_remaining:
            self._min_remaining = remaining
        self._cohort_stepped = True

    def _cohort_only_step(self) -> Batch | None:
        """``schedule()`` for a step that can only decode the cohort, without the general path's detours: the
        caller checked that nothing waits or is swapped out, and every running request is a member. The
        same state and batch as ``_begin_step`` + ``_cohort_decode`` + ``_batch``; None, with nothing changed,
        when that is not the case or this step's blocks are not free (the general path then preempts)."""
        num = self._num_members
        if not num or num != len(self.running) or not self.allocator.cohort_grow(1):
            return None
        self._reset_step()  # _begin_step less what only the per-request path reads (it starts with that)
        self._count_cohort()
        return self._batch()

    def _dissolve_cohort(self) -> None:
        for req in self.running:
            if req.cohort_key:
                self._leave_cohort(req)
        self._finish_at = []

    def _cohort_window(self, limit: int) -> tuple[int, np.ndarray | list[int] | None]:
        """``decode_window`` for a step that only grew the cohort: until the first finish, or the step after
        which the next step's blocks would not be free (so that step sees the shortage and preempts); or, when
        nothing waits, through the finishes (``cohort_through.py``)."""
        alloc = self.allocator
        num_steps = min(limit, self._min_remaining)
        if num_steps < limit and self._quiet():
            through = (
                self._plan_through(min(limit, SHORT_BLOCKS_STEPS)) if num_steps < SHORT_BLOCKS_STEPS else 0
            )
            if through:
                return through, None
        if num_steps > 1:
            num_steps = min(num_steps, 1 + alloc.cohort_max_growth(num_steps))
        if num_steps == 1:
            return 1, None
        bs = alloc.block_size
        if not bs or not self.window_block_counts:  # a contiguous kernel, or a cost model that reads none
            return num_steps, None
        # Step i reads the cohort's blocks after i more slots each: growth t -> t + 1 opens a block for
        # the members counted in opens_at[t % block_size].
        opens, start = alloc.opens_at, alloc.tick % bs
        if num_steps <= SHORT_BLOCKS_STEPS:
            return num_steps, list(
                accumulate(cyclic_run(opens, start, num_steps - 1), initial=self._decode_kv_blocks)
            )
        gains = np.asarray(opens, dtype=np.int64)[np.arange(start, start + num_steps - 1) % bs]
        blocks = np.empty(num_steps, dtype=np.int64)
        blocks[0] = self._decode_kv_blocks
        np.cumsum(gains, out=blocks[1:])
        blocks[1:] += self._decode_kv_blocks
        return num_steps, blocks

    def _complete_cohort(self, num_steps: int, end_s: float) -> None:
        """Apply ``num_steps`` steps to the cohort; the members that produced their last token finish (and
        leave ``running`` one by one: a few per window, cheaper than rebuilding the list)."""
        alloc = self.allocator
        if num_steps > 1:
            grown = alloc.cohort_grow(num_steps - 1)
            assert grown, "decode_window checked cohort_max_growth"
        heap, tick = self._finish_at, alloc.tick
        while heap and heap[0][0] <= tick:
            _, key, req = heapq.heappop(heap)
            if req.cohort_key != key:
                continue
            self._drop_member(req)  # the allocator frees it straight from the cohort (its ``free``)
            self._finish(req, end_s)
            self.running.remove(req)
