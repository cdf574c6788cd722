"""The recorder: per-request results as columns, and the per-replica timeline on change (DESIGN §6, §7b).

Memory and batch statistics are step functions of time: a timeline row holds from its ``time_s`` until the
next row of the same replica, and time-weighted means integrate exactly those steps. Rows are written at
the scheduler's state changes only (admission, end of a prefill, preemption, swap, finish), so the same rows
come out whether decode steps are simulated one by one or fast-forwarded. Queue lengths are sampled there
too: arrivals that only lengthen a blocked queue write no row.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Callable
from operator import attrgetter

import numpy as np

from kvsim.simulator.allocators.base import MemoryBreakdown
from kvsim.simulator.request_state import RequestState

PARTS = ("token_states", "reserved", "internal_frag", "external_frag", "free", "cached_bytes")
TIMELINE_COLUMNS = (
    "time_s",
    "replica",
    *PARTS,
    "num_running",
    "num_waiting",
    "num_swapped",
    "num_batched_seqs",
    "num_batched_tokens",
)
VALUE_FIELDS = (*PARTS, "saturated", *TIMELINE_COLUMNS[2 + len(PARTS) :])  # a kept row after its time_s
# A kept row, packed: time_s as a float64, then the VALUE_FIELDS as int64s, little-endian and unpadded. One pack
# per row converts its 13 numbers in C (an array's extend from a tuple takes them one by one, at twice the cost).
ROW = struct.Struct(f"<d{len(VALUE_FIELDS)}q")
# ReplicaTimeline._keep_row names the fields one by one, in this order:
_KEPT_FIELDS = (*PARTS, "saturated", "num_running", "num_waiting", "num_swapped")
assert VALUE_FIELDS[: len(_KEPT_FIELDS)] == _KEPT_FIELDS
assert VALUE_FIELDS[len(_KEPT_FIELDS) :] == ("num_batched_seqs", "num_batched_tokens")
ROW_DTYPE = np.dtype([("time_s", "<f8"), ("values", "<i8", (len(VALUE_FIELDS),))])
assert ROW_DTYPE.itemsize == ROW.size
FOLD_BYTES = 8192 * ROW.size  # rows that are not kept are integrated this many bytes at a time
# A prefix-caching allocator's counters (``prefix_cache_counts()``), cumulative per replica, in this order; kept
# rows carry them as the timeline's last columns (``ReplicaTimeline.watch_prefix_cache``).
PREFIX_CACHE_COUNTS = (
    "num_query_tokens",
    "num_hit_tokens",
    "num_query_blocks",
    "num_hit_blocks",
    "num_evicted_blocks",
)
PREFIX_CACHE_COLUMNS = (
    "prefix_cache_query_tokens",
    "prefix_cache_hit_tokens",
    "prefix_cache_query_blocks",
    "prefix_cache_hit_blocks",
    "prefix_cache_evicted_blocks",
)


def parts_of(mem: MemoryBreakdown) -> tuple[int, ...]:
    """The breakdown as a tuple in ``PARTS`` order."""
    return (mem.token_states, mem.reserved, mem.internal_frag, mem.external_frag, mem.free, mem.cached_bytes)


class ReplicaTimeline:
    """Rows of one replica plus the integrals of its step functions. Rows are packed as they come; kept rows
    are integrated once at ``close``, and rows that are not kept are integrated ``FOLD_BYTES`` worth at a
    time and dropped (``_fold``: numpy's cumulative sums add row after row, so the floats are the same
    either way; a test checks it)."""

    def __init__(self, replica: int, keep_rows: bool) -> None:
        self.replica = replica
        self.keep_rows = keep_rows
        # Per row, one ROW: time_s, the PARTS, saturated (0/1: some request waited for memory), then the queue
        # and batch sizes (VALUE_FIELDS); the replica is the same in every row and is added by rows().
        self.packed_rows = bytearray()
        self._pack_row = ROW.pack
        # The prefix cache's PREFIX_CACHE_COUNTS as of each kept row, row after row (None: not watched).
        self.prefix_cache_counts: array | None = None
        self._zero_integrals()
        # add_row(time_s, parts, saturated, num_running, num_waiting, num_swapped, num_batched_seqs,
        # num_batched_tokens): one row, the allocator's breakdown as a tuple in PARTS order (parts_of) then the
        # queue and batch sizes, by position (the engine calls it once per state change).
        self.add_row = self._keep_row if keep_rows else self._buffer_row
        self._add_row_only = self.add_row  # without the prefix cache's counters (watch_prefix_cache)

    def watch_prefix_cache(self, counts: Callable[[], tuple[int, ...]]) -> None:
        """Keep ``counts()`` (an allocator's ``prefix_cache_counts``) beside every kept row from now on: the
        counters as of that row. Call it before the first row; rows that are not kept keep no counters.
        Only runs with prefix caching pay for it (one more call per row)."""
        if not self.keep_rows:
            return
        assert not self.packed_rows, "watch the prefix cache before the first row"
        kept = self.prefix_cache_counts = array("q")
        extend, add_row = kept.extend, self.add_row

        def add_row_and_counts(
            time_s,
            parts,
            saturated,
            num_running,
            num_waiting,
            num_swapped,
            num_batched_seqs,
            num_batched_tokens,
        ) -> None:  # (add_row's arguments by name: no tuple built for them, once per row)
            add_row(
                time_s,
                parts,
                saturated,
                num_running,
                num_waiting,
                num_swapped,
                num_batched_seqs,
                num_batched_tokens,
            )
            extend(counts())

        self.add_row = add_row_and_counts

    def add_window_row(
        self,
        time_s: float,
        parts: tuple[int, ...],
        saturated: bool,
        num_running: int,
        num_batched_seqs: int,
        prefix_cache_counts: tuple[int, ...] | None,
    ) -> None:
        """The row of the step after a finish inside a decode window (``schedulers/cohort_through.py``), written
        after the window: nothing waited or was swapped out, the step batched one token per sequence, and the
        prefix cache's counters are given as of that step (None without a prefix cache), since the
        allocator's own have moved on with the window's later steps."""
        self._add_row_only(time_s, parts, saturated, num_running, 0, 0, num_batched_seqs, num_batched_seqs)
        if self.prefix_cache_counts is not None:
            assert prefix_cache_counts is not None, "a watched prefix cache's row without its counters"
            self.prefix_cache_counts.extend(prefix_cache_counts)

    def _zero_integrals(self) -> None:
        self.part_integrals = [0.0] * len(PARTS)  # byte-seconds
        self.saturated_integrals = [0.0] * len(PARTS)
        self.saturated_s = 0.0
        self.busy_s = 0.0  # time with a batch running
        self.seq_integral = 0.0  # Σ num_batched_seqs × dt over busy time
        self.peak_used_bytes = 0
        self.num_rows = 0  # rows integrated: at close, all of them (timeline.csv's rows, kept or not)

    def _keep_row(
        self,
        time_s: float,
        parts: tuple[int, ...],
        saturated: bool,
        num_running: int,
        num_waiting: int,
        num_swapped: int,
        num_batched_seqs: int,
        num_batched_tokens: int,
    ) -> None:
        """``add_row`` when rows are kept; they are integrated at ``close`` (and the peak found there). The
        arguments go to ``pack`` one by one, in VALUE_FIELDS order (no tuple is built for them: three rows
        per request)."""
        token_states, reserved, internal_frag, external_frag, free, cached_bytes = parts
        self.packed_rows += self._pack_row(
            time_s,
            token_states,
            reserved,
            internal_frag,
            external_frag,
            free,
            cached_bytes,
            saturated,
            num_running,
            num_waiting,
            num_swapped,
            num_batched_seqs,
            num_batched_tokens,
        )

    def _buffer_row(self, *row) -> None:
        """``add_row`` when rows are not kept: packed as kept ones are, then folded into the integrals a few
        thousand at a time (the last row stays: it holds until the next one comes)."""
        self._keep_row(*row)
        if len(self.packed_rows) >= FOLD_BYTES:
            rows = np.frombuffer(self.packed_rows, dtype=ROW_DTYPE)
            last_s = float(rows["time_s"][-1])
            self._fold(rows[:-1], last_s)
            del rows  # (a view of the buffer would keep it from shrinking)
            del self.packed_rows[: -ROW.size]

    def close(self, end_s: float) -> None:
        """Integrate the step functions up to ``end_s``. Kept rows are integrated from the first (so closing
        again gives the same); the last rows that are not kept go."""
        if self.keep_rows:
            self._zero_integrals()
        if self.packed_rows:
            self._fold(np.frombuffer(self.packed_rows, dtype=ROW_DTYPE), end_s)
        if not self.keep_rows:
            self.packed_rows = bytearray()

    def _fold(self, rows: np.ndarray, end_s: float) -> None:
        """Add ``rows``' step functions to the integrals, each row holding until the next and the last until
        ``end_s``: row after row, as floats add (an interval that is empty or runs backward adds nothing)."""
        if not len(rows):
            return
        self.num_rows += len(rows)
        dts = np.diff(rows["time_s"], append=end_s)
        dts[dts <= 0.0] = 0.0
        values = rows["values"]
        saturated = values[:, VALUE_FIELDS.index("saturated")].astype(bool)
        num_seqs = values[:, VALUE_FIELDS.index("num_batched_seqs")]
        busy = num_seqs > 0
        parts = values[:, : len(PARTS)]
        used = parts[:, : PARTS.index("free")].sum(axis=1)  # capacity - free
        self.peak_used_bytes = max(self.peak_used_bytes, int(used.max()))

        def integral(total: float, products: np.ndarray) -> float:  # total + p0 + p1 + ..., in order
            products[0] += total  # products: a fresh array of the caller (no copy with total in front)
            return float(np.cumsum(products)[-1])

        for i in range(len(PARTS)):
            products = parts[:, i] * dts
            # (the saturated share first: integral() then takes products itself, no third array kept alive)
            self.saturated_integrals[i] = integral(
                self.saturated_integrals[i], np.where(saturated, products, 0.0)
            )
            self.part_integrals[i] = integral(self.part_integrals[i], products)
        self.saturated_s = integral(self.saturated_s, np.where(saturated, dts, 0.0))
        self.busy_s = integral(self.busy_s, np.where(busy, dts, 0.0))
        self.seq_integral = integral(self.seq_integral, np.where(busy, num_seqs * dts, 0.0))

    def columns(self) -> list[np.ndarray]:
        """The TIMELINE_COLUMNS of the kept rows, in order, as arrays (copies: the rows may grow on)."""
        rows = np.frombuffer(self.packed_rows, dtype=ROW_DTYPE)
        times, values = rows["time_s"].copy(), rows["values"].copy()
        del rows  # (a view of the rows would keep them from growing)
        replica = np.full(len(times), self.replica, dtype=np.int64)
        columns = [
            times,
            replica,
            *(values[:, i] for i, name in enumerate(VALUE_FIELDS) if name != "saturated"),
        ]
        if self.prefix_cache_counts is not None:
            counts = np.array(self.prefix_cache_counts, dtype=np.int64).reshape(-1, len(PREFIX_CACHE_COUNTS))
            columns += [counts[:, i] for i in range(len(PREFIX_CACHE_COUNTS))]
        return columns


COLLECT_EVERY = 4096  # finished requests buffered before their results are written to the columns
# The RequestState fields that Recorder columns of the same names collect.
COLLECTED = (
    "replica",
    "first_scheduled_s",
    "first_token_s",
    "finish_s",
    "num_preemptions",
    "num_cached_tokens",
    "kv_evicted_fraction",
)
_RESULTS = attrgetter("index", *COLLECTED)


class Recorder:
    """Results of one simulation: request columns indexed by trace row, and one timeline per replica."""

    def __init__(self, num_requests: int, num_replicas: int, *, keep_timeline: bool = True) -> None:
        nan = np.full(num_requests, np.nan)
        self.replica = np.full(num_requests, -1, dtype=np.int64)
        self.first_scheduled_s = nan.copy()
        self.first_token_s = nan.copy()
        self.finish_s = nan.copy()
        self.num_preemptions = np.zeros(num_requests, dtype=np.int64)
        self.num_cached_tokens = np.zeros(num_requests, dtype=np.int64)
        self.kv_evicted_fraction = nan.copy()
        self.rejected_reason: dict[int, str] = {}  # trace row -> reason
        self._finished: list[tuple] = []  # finished since the last collect(): (index, *COLLECTED) each
        self.collect_every = COLLECT_EVERY
        self.num_collected = 0  # finished requests written into the columns
        self.on_progress: Callable[[int], None] | None = None
        self.keeps_timeline = keep_timeline  # the rows, not only their time-weighted integrals
        self.timelines = [ReplicaTimeline(r, keep_timeline) for r in range(num_replicas)]
        self.num_steps = 0
        self.num_batched_tokens = 0
        self.num_batched_seqs = 0  # Σ over steps of the batch's sequences
        self.max_num_seqs = 0

    def reject(self, index: int, reason: str) -> None:
        self.rejected_reason[index] = reason

    def finish(self, reqs: list[RequestState]) -> None:
        """Keep finished requests' results, read now, as one tuple each; they go into the columns at
        ``collect``, a few thousand at a time. Read later, from thousands of request objects spread over
        memory, they cost seven cache misses per request (3 µs of the 73 µs per request of a 200,000-request
        run: docs/performance.md); and the requests can be freed as they finish."""
        self._finished += map(_RESULTS, reqs)
        if len(self._finished) >= self.collect_every:
            self.collect()

    def report_progress(self, on_progress: Callable[[int], None], *, every: int) -> None:
        """Call ``on_progress(requests done)`` (finished, or rejected) whenever about ``every`` more requests
        have finished (at ``collect``, so at most every COLLECT_EVERY, and never per step)."""
        self.on_progress = on_progress
        self.collect_every = max(1, min(COLLECT_EVERY, every))

    def collect(self) -> None:
        """Write the finished requests' results into the columns (the engine calls it when the run ends)."""
        results, self._finished = self._finished, []
        if not results:
            return
        self.num_collected += len(results)
        if self.on_progress is not None:
            self.on_progress(self.num_collected + len(self.rejected_reason))
        # As float64: None becomes nan (an unfinished phase's time), and the integer fields (index, replica,
        # counts) are exact below 2**53.
        values = np.array(results, dtype=np.float64)
        rows = values[:, 0].astype(np.int64)
        for i, name in enumerate(COLLECTED, 1):
            column = getattr(self, name)
            column[rows] = values[:, i].astype(column.dtype)

    def add_steps(self, num_steps: int, seq_steps: int, token_steps: int, max_seqs: int) -> None:
        """``num_steps`` steps that batched ``seq_steps`` sequences and ``token_steps`` tokens in all, at most
        ``max_seqs`` sequences in one step."""
        self.num_steps += num_steps
        self.num_batched_tokens += token_steps
        self.num_batched_seqs += seq_steps
        if max_seqs > self.max_num_seqs:
            self.max_num_seqs = max_seqs

    def close(self, end_s: float) -> None:
        for timeline in self.timelines:
            timeline.close(end_s)

    @property
    def timeline_column_names(self) -> tuple[str, ...]:
        """TIMELINE_COLUMNS, then PREFIX_CACHE_COLUMNS when the allocators' prefix caches are watched."""
        if self.timelines[0].prefix_cache_counts is None:
            return TIMELINE_COLUMNS
        return (*TIMELINE_COLUMNS, *PREFIX_CACHE_COLUMNS)

    def timeline_rows(self) -> list[tuple]:
        """All rows, ordered by time then replica (a stable merge of the replicas' rows)."""
        return list(zip(*(column.tolist() for column in self.timeline_columns())))

    def timeline_columns(self) -> list[np.ndarray]:
        """``timeline_rows`` as ``timeline_column_names`` arrays (the CSV writer's input: no tuple per row)."""
        per_replica = [tl.columns() for tl in self.timelines]
        if len(per_replica) == 1:  # a replica's rows are already in time order
            return per_replica[0]
        merged = [np.concatenate(parts) for parts in zip(*per_replica)]
        # by time, then replica; a stable sort keeps each replica's rows at one instant in their order
        order = np.lexsort((merged[1], merged[0]))
        return [column[order] for column in merged]


def finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) else value
