"""Decode windows that run through finishes (DESIGN §7b): a mixin of ``CohortMixin``.

When nothing waits and nothing is swapped out, a cohort member's finish changes nothing but the batch: the
next step decodes the remaining members, as ``schedule()`` would find. So the window need not stop at the first
finish: it is planned as segments, each ending at a finish (or at the window's end), and every step of a
segment decodes the same members. Each segment carries what the cost model reads of its steps (members, KV
tokens of its first step, KV blocks of each step), computed from the cohort's counters without touching the
allocator; ``complete_steps`` then applies the window segment by segment, finishing members at their steps'
ends and writing the timeline row that the step after each finish would have written (its breakdown after
that step's slots, as the engine takes it after ``schedule()``).

Only schedulers whose next step, with nothing waiting, is the cohort's decode opt in (``runs_through_finishes``):
vLLM without chunked prefill, and Orca. The window stays short (``SHORT_BLOCKS_STEPS`` steps), so its block
counts are plain lists; its memory bound counts every member growing all the way (a member that finishes
only frees blocks), so every planned step has its slots.
"""

from __future__ import annotations

import heapq
from itertools import accumulate

from kvsim.simulator.allocators.paged_counted import cyclic_run

# A segment: (steps, decoding sequences, KV tokens of its first step, KV blocks of each step or None (not
# paged), members finishing at its last step).
Segment = tuple[int, int, int, "list[int] | None", int]


class CohortThroughMixin:
    """Needs ``CohortMixin``'s state (the finish heap, the member count) and the step's sums."""

    runs_through_finishes = False  # a scheduler whose next step after a quiet finish is the cohort's decode

    def _init_through(self) -> None:
        # The planned window's segments; empty for a window that ends at the first finish (and after each
        # complete_steps).
        self.window_segments: list[Segment] | tuple = ()
        self.window_rows: list[tuple] = []  # rows of finishes inside a window, for the engine's timeline
        self._window_finishers: list[tuple] = []  # heap entries taken for the planned window, in tick order
        # A prefix cache's counters, read with each window row (optional ``prefix_cache_counts``; None from an
        # allocator without a prefix cache)
        self._prefix_cache_counts = getattr(self.allocator, "prefix_cache_counts", None)

    def _quiet(self) -> bool:
        """Whether a finish now would leave the next step to the cohort's decode alone."""
        return (
            self.runs_through_finishes
            and not self.waiting
            and not self.swapped
            and self._num_members == len(self.running)
        )

    def _plan_through(self, limit: int) -> int:
        """Plan a window of up to ``limit`` steps through the finishes (``window_segments``); its length, or 0
        when it would end at the first finish anyway (memory, or every member finishes there)."""
        alloc = self.allocator
        span = min(limit, 1 + alloc.cohort_max_growth(limit - 1))
        tick = alloc.tick
        last = tick + span - 1  # the tick of the window's last step
        heap = self._finish_at
        finishers = []
        while heap and heap[0][0] <= last:
            entry = heapq.heappop(heap)
            if entry[2].cohort_key == entry[1]:  # else stale: that request left the cohort
                finishers.append(entry)
        self._window_finishers = finishers
        bs = alloc.block_size if self.window_block_counts else 0  # 0: no per-step block counts
        opens = alloc.opens_at[:] if bs else None  # less the finished members, as they leave
        seqs, tokens, blocks = self._num_decode_seqs, self._decode_kv_tokens, self._decode_kv_blocks
        segments = self.window_segments = []
        i, num_finishers, t = 0, len(finishers), tick
        while True:
            end = finishers[i][0] if i < num_finishers else last
            block_list = None
            if bs:  # growth u -> u + 1 opens a block for the members counted in opens[u % bs]
                block_list = list(accumulate(cyclic_run(opens, t % bs, end - t), initial=blocks))
                blocks = block_list[-1]
            j = i
            while j < num_finishers and finishers[j][0] == end:
                j += 1
            segments.append((end - t + 1, seqs, tokens, block_list, j - i))
            if end == last:
                break
            tokens += (end - t) * seqs  # the segment's last step
            for _, _, req in finishers[i:j]:  # they leave after the step that brings the tick to `end`
                num_tokens = req.num_slots + end - req.cohort_tick
                tokens -= num_tokens
                if bs:
                    blocks -= -(-num_tokens // bs)
                    opens[(end - num_tokens) % bs] -= 1
            seqs -= j - i
            i = j
            if not seqs:  # every member finished: the window ends with them
                break
            tokens += seqs  # the next step's slot
            if bs:
                blocks += opens[end % bs]
            t = end + 1
        if len(segments) == 1:
            self._put_back(finishers)
            self.window_segments = ()
            return 0
        return end - tick + 1  # the segments' steps: the window ends with the last one's

    def _complete_through(self, num_steps: int, step_ends) -> None:
        """Apply the first ``num_steps`` steps of the planned window (``step_ends``: each step's end)."""
        alloc = self.allocator
        finishers, done, k = self._window_finishers, 0, 0
        for n, seqs, _, _, num_finishing in self.window_segments:
            take = min(n, num_steps - done)
            if take > 1:
                grown = alloc.cohort_grow(take - 1)
                assert grown, "the window's plan checked cohort_max_growth"
            done += take
            if take < n:
                break
            end_s = step_ends[done - 1]
            for _, key, req in finishers[k : k + num_finishing]:
                assert req.cohort_key == key
                self._drop_member(req)  # the allocator frees it straight from the cohort (its ``free``)
                self._finish(req, end_s)
                self.running.remove(req)
            k += num_finishing
            if done == num_steps:
                break
            # The window goes on: the next step's slots (schedule() takes them), then the row it writes.
            grown = alloc.cohort_grow(1)
            assert grown, "the window's plan checked cohort_max_growth"
            self.window_rows.append(
                (
                    end_s,
                    alloc.breakdown_parts(),
                    self.is_saturated,
                    len(self.running),
                    seqs - num_finishing,
                    self._window_prefix_cache_counts(),
                )
            )
            self.changed = False
        self._put_back(finishers[k:])  # not reached

    def _window_prefix_cache_counts(self) -> tuple[int, ...] | None:
        """The prefix cache's counters as a window row's step leaves them (None without a prefix cache). Inside
        a window nothing is admitted, so the queries and hits stay put; evictions move: a step whose new blocks
        outnumber the clean free ones evicts cached blocks, which the finishes keep adding. So each row takes
        them as of its own step, as stepping's row would."""
        counts = self._prefix_cache_counts
        return counts() if counts is not None else None

    def _put_back(self, finishers: list[tuple]) -> None:
        for entry in finishers:
            heapq.heappush(self._finish_at, entry)
        self._window_finishers = []
