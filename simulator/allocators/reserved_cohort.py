"""The decode cohort of the reserved allocator (a mixin of ``ReservedAllocator``; schedulers/cohort.py).

A reserved region never moves or grows, so a decode step only moves counters: a member of ``t`` tokens in a
region of ``R`` slots with final length ``F`` (``R >= F``) holds ``t`` token states, ``F - t`` reserved slots
and ``R - F`` slots of internal fragmentation while ``t <= F``. Members are stored by ``base = t - tick``:
the cohort's sums are ``Σ base + n·tick``, ``Σ (F - base) - n·tick`` and ``Σ (R - F)``, O(1) per step.
A member may grow in the cohort up to its final length; past it (``append_slots`` allows up to ``R``, which
no scheduler asks of a request that ends at ``F - 1``) ``cohort_grow`` refuses and the step goes request by
request. A heap of ``F - base`` gives the cohort's room.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvsim.simulator.allocators.reserved import _Seq


class ReservedCohortMixin:
    """Needs ``ReservedAllocator``'s ``seqs`` and its three running slot totals."""

    keeps_cohort = True  # schedulers/cohort.py: decode steps may go through cohort_grow
    num_cohort_blocks = 0  # the contiguous kernel counts no blocks

    def _init_cohort(self) -> None:
        self.tick = 0
        self.members: dict[int, int] = {}  # seq_id -> base (tokens - tick)
        self.members_leave_before_final = False  # (the paged cohort's flag; nothing depends on it here)
        self._sum_base = self._sum_gap = self._sum_internal = 0  # Σ base, Σ (F - base), Σ (R - F)
        self._room_at: list[tuple[int, int, int]] = []  # heap of (F - base, seq_id, base)

    def cohort_join(self, seq_id: int) -> None:
        seq = self.seqs[seq_id]
        assert seq_id not in self.members and seq.offset is not None
        assert seq.num_tokens <= seq.final_num_tokens <= seq.num_region_slots, "a member grows to its final"
        self._count(seq, -1)
        base = seq.num_tokens - self.tick
        self.members[seq_id] = base
        self._sum_base += base
        self._sum_gap += seq.final_num_tokens - base
        self._sum_internal += seq.num_region_slots - seq.final_num_tokens
        heapq.heappush(self._room_at, (seq.final_num_tokens - base, seq_id, base))

    def cohort_leave(self, seq_id: int) -> int:
        base = self.members.pop(seq_id)
        seq = self.seqs[seq_id]
        self._sum_base -= base
        self._sum_gap -= seq.final_num_tokens - base
        self._sum_internal -= seq.num_region_slots - seq.final_num_tokens
        seq.num_tokens = base + self.tick
        self._count(seq, +1)
        return seq.num_tokens

    def cohort_num_tokens(self) -> int:
        return self._sum_base + len(self.members) * self.tick

    def cohort_max_growth(self, limit: int) -> int:
        """The largest k <= limit by which every member can grow without passing its final length."""
        heap, members = self._room_at, self.members
        while heap and members.get(heap[0][1]) != heap[0][2]:  # stale: that member left
            heapq.heappop(heap)
        if not heap:
            return max(0, limit)
        return max(0, min(limit, heap[0][0] - self.tick))

    def cohort_grow(self, num_steps: int) -> bool:
        """Every member gains ``num_steps`` tokens; False (nothing changes) if one would pass its final."""
        if num_steps and self.cohort_max_growth(num_steps) < num_steps:
            return False
        self.tick += num_steps
        return True

    def _cohort_slots(self) -> tuple[int, int, int]:
        """(token, reserved, internal) slots of the cohort."""
        grown = len(self.members) * self.tick
        return self._sum_base + grown, self._sum_gap - grown, self._sum_internal

    def _resident(self, seq_id: int) -> _Seq:
        """``seqs[seq_id]`` taken out of the cohort first (its token count brought up to date)."""
        if seq_id in self.members:
            self.cohort_leave(seq_id)
        return self.seqs[seq_id]
