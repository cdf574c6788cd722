"""Decode windows through finishes on the per-request path (DESIGN §7b): a mixin of ``FastForwardMixin``.

``cohort_through.py`` runs the decode cohort's windows on past its finishes; this does the same for the
allocators whose decoding requests are visited one by one and whose windows stay inside the deferred rooms
(``growth_room``: vattention, contiguous-growth; the contiguous kernel, so no block counts). Inside the rooms
a step calls no allocator, so the only state changes in such a window are its finishes: each frees its
request's memory, and nothing in the window reads that memory before the window ends. With nothing waiting
and nothing swapped out, the step after a finish decodes the remaining requests, as ``schedule()`` would find
(``runs_through_finishes``). So the window is planned as segments (``cohort_through.py``'s format), each ending
at a finish or at the window's end; ``complete_steps`` then finishes each request at its own step's end, in
the order stepping finishes them (``_decodes`` order within a step: a freed vAttention buffer is reused last
in, first out), and writes the timeline row that the step after each finish would write, with the breakdown
after that step's deferred slots.

A request that would cross its room before its finish bounds the window at its room, as the rooms do
without finishes.
"""

from __future__ import annotations

from kvsim.simulator.recorder import parts_of


class RequestsThroughMixin:
    """Needs ``SchedulerBase``'s state: ``allocator``, ``running``, ``waiting``, ``swapped``, the step's decodes
    and sums, ``window_segments``, ``window_rows`` and ``_window_finishers``."""

    def _plan_requests_through(self, limit: int) -> int:
        """Plan a window of up to ``limit`` steps through the decoding requests' finishes, inside their rooms
        (``window_segments``); its length, or 0 when no step follows a finish in it."""
        decodes = self._decodes
        window = limit
        for req in decodes:
            steps = 1 + req.num_room - req.num_pending_slots  # steps it can take inside its room
            if steps < window and steps < req.num_output_tokens - req.num_generated:
                window = steps  # it would cross before finishing: the window stops at its room
        if window > 1:
            # what the allocator bounds beyond its sequences (contiguous-growth: 0 while the blocked head of the
            # queue would fit; nothing waits here)
            window = 1 + self._overhead_free_growth((), window - 1)
        if window <= self._min_remaining:
            return 0
        finishers = sorted(
            (remaining, position, req)
            for position, req in enumerate(decodes)
            if (remaining := req.num_output_tokens - req.num_generated) <= window
        )
        seqs, tokens = self._num_decode_seqs, self._decode_kv_tokens
        segments = []
        i, num_finishers, first = 0, len(finishers), 0
        while True:
            end = finishers[i][0] - 1 if i < num_finishers else window - 1  # the segment's last step
            j = i
            while j < num_finishers and finishers[j][0] - 1 == end:
                j += 1
            segments.append((end - first + 1, seqs, tokens, None, j - i))
            if end == window - 1:
                break
            tokens += (end - first) * seqs  # the segment's last step
            for _, _, req in finishers[i:j]:  # they leave after that step, holding num_slots + end slots
                tokens -= req.num_slots + end
            seqs -= j - i
            i = j
            if not seqs:  # every request finished: the window ends with them
                break
            tokens += seqs  # the next step's slots
            first = end + 1
        if len(segments) == 1:  # every finish at its one segment's end: an ordinary window
            return 0
        self.window_segments = segments
        self._window_finishers = [req for _, _, req in finishers]
        self._prepaid = False  # the next step syncs what lies beyond the rooms (nothing, inside them)
        return end + 1

    def _complete_requests_through(self, num_steps: int, step_ends) -> None:
        """Apply the first ``num_steps`` steps of the planned window (``step_ends``: each step's end)."""
        alloc, finishers = self.allocator, self._window_finishers
        k = done = 0
        # steps after the first whose slots the allocator's deferred count holds for the remaining
        counted = 0
        for steps, seqs, _, _, num_finishing in self.window_segments:
            take = min(steps, num_steps - done)
            done += take
            if take < steps:
                break
            end_s = step_ends[done - 1]
            alloc.num_deferred_tokens += seqs * (done - 1 - counted)  # the slots up to this step
            counted = done - 1
            for req in finishers[k : k + num_finishing]:
                req.num_slots += counted
                req.num_pending_slots += counted
                req.num_generated += done
                self._sync(req)  # inside its room: no memory, no mapping
                self._finish(req, end_s)
                self.running.remove(req)
            k += num_finishing
            if done == num_steps:
                break
            # The window goes on: the next step's slots (schedule() defers them), then the row it writes.
            seqs -= num_finishing
            alloc.num_deferred_tokens += seqs
            counted = done
            self.window_rows.append(
                (
                    end_s,
                    parts_of(alloc.breakdown()),
                    self.is_saturated,
                    len(self.running),
                    seqs,
                    self._window_prefix_cache_counts(),
                )
            )
            self.changed = False
        extra = num_steps - 1
        remaining = [req for req in self._decodes if req.finish_s is None]
        alloc.num_deferred_tokens += len(remaining) * (extra - counted)
        for req in remaining:
            req.num_slots += extra
            req.num_pending_slots += extra
            req.num_generated += num_steps
        self._decodes = remaining
        self._has_pending = bool(extra)
        self._window_finishers = []
