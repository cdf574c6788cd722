"""The queue/step machinery the batching policies share (the ``Scheduler`` seam is in ``protocol.py``).

A step on a replica: ``schedule()`` picks the work and makes its allocations (admissions, one new KV slot per
decoding sequence, preemptions) and returns a ``Batch``; the engine times it; ``complete_steps(k, end_s)``
applies its outcome. When the batch is pure decode and nothing but decode progress can change,
``decode_window(limit)`` says how many identical steps may run as one event (DESIGN §7b): until the first
completion (or, with nothing waiting, through completions: ``cohort_through.py``) or the step after which
memory would run out. ``complete_steps(k, ...)`` is then exactly ``k``
steps: the same allocator calls (one ``append_slots(seq, k - 1)`` instead of ``k - 1`` of size 1), the same
token counts, so fast-forwarding and stepping give the same results.

Fewer allocator calls: a window's ``k - 1`` extra slots per sequence are not appended at its end but kept as
``num_pending_slots`` and appended together with the next step's slot, in one call per sequence. That is
exact because the window also checked (``max_uniform_growth``) that every sequence can grow by ``k`` (the
window plus the next step), so no append can fail; when it could not check that, or before anything else
allocates (an admission), the pending slots are appended first, as stepping would have.
"""

from __future__ import annotations

from collections import deque

from kvsim.simulator.allocators.base import KVAllocator
from kvsim.simulator.batch import Batch
from kvsim.simulator.request_state import RequestState
from kvsim.simulator.schedulers.cohort import CohortMixin
from kvsim.simulator.schedulers.fast_forward import FastForwardMixin
from kvsim.simulator.schedulers.preemption import PreemptionMixin


class SchedulerBase(PreemptionMixin, FastForwardMixin, CohortMixin):
    """Queues and step bookkeeping shared by the batching policies.

    Invariants: ``running`` is in admission order (newest last, the preemption victim); every request in
    ``running`` holds ``num_slots`` KV slots in each of its sequences; ``num_running_seqs`` is the sum of
    ``num_seqs`` over ``running``; ``waiting`` requests hold no KV; ``swapped`` ones hold KV in CPU swap.
    """

    name = "base"
    # Whether decode windows give the cost model each step's KV block count; the engine clears it for a cost
    # model that does not read them (``reads_decode_blocks``).
    window_block_counts = True
    # Steps already run of the current multi-step window (vllm-v0's num_scheduler_steps); 0: the next step
    # starts a window (every step, for a scheduler without multi-step scheduling). The engine reads it.
    multi_step_pos = 0

    def __init__(
        self,
        allocator: KVAllocator,
        *,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        preemption_mode: str = "recompute",
    ) -> None:
        self.allocator = allocator
        # A finished request's sequences: an allocator may free them knowing the request will not come back
        # (optional ``free_finished``: CountedOwnBlocksCache keeps no owner for its cached blocks)
        self._free_finished = getattr(allocator, "free_finished", allocator.free)
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.preemption_mode = preemption_mode
        self.paged_kernel = allocator.attention_kernel == "paged"
        self.block_size = allocator.block_size if self.paged_kernel else 0
        # What every Batch of this scheduler carries (a contiguous kernel's: Batch's default block size, 16)
        self._attention_kernel = allocator.attention_kernel
        self._batch_block_size = self.block_size or 16
        self.waiting: deque[RequestState] = deque()
        self.running: list[RequestState] = []
        self.swapped: deque[RequestState] = deque()
        self.finished: list[RequestState] = []
        self.dropped: list[tuple[RequestState, str]] = []  # (request, reason): rejected after admission
        self._to_fork: list[RequestState] = []  # first prefill just ended: parallel samples to fork
        self.num_running_seqs = 0
        self.num_preemptions = 0
        self.changed = False
        # Duration of the step before the one being built: the engine sets it, 0 after idling (overlapped
        # mapping hides in it).
        self.previous_step_s = 0.0
        self.head_blocked = False  # the head of `waiting` failed to allocate at the last attempt
        self._next_seq_id = 0
        # The step being built: prefill chunks [(req, num_new_tokens)] and the decoding requests.
        self._prefills: list[tuple[RequestState, int]] = []
        self._decodes: list[RequestState] = []
        self._num_decode_seqs = 0
        self._min_remaining = 0  # fewest output tokens any decoding request still needs
        self._residue_counts: list[int] = []  # [block_size] seqs whose (num_slots - 1) % block_size == r
        self._requeue: list[RequestState] = []  # recompute victims of the step being built
        self._has_pending = False  # some running request has num_pending_slots
        self._prepaid = False  # the last window checked that every pending + 1 append fits
        # Growth that costs allocator time (vAttention page mapping) must not hide inside a window, or the cost
        # would land on a later step than stepping puts it. An allocator may say how far every sequence can
        # grow for free with the optional ``max_overhead_free_growth(seq_ids, limit) -> int`` (an extension of
        # the KVAllocator Protocol); one that may charge growth and cannot say so is stepped one by one.
        self._overhead_free_growth = getattr(allocator, "max_overhead_free_growth", None)
        # Free memory that growth takes alike before and after a free (optional ``clean_free_blocks``, an
        # extension: the paged allocator's clean blocks while its prefix cache holds free blocks), for windows
        # that end with a finish (fast_forward.py).
        self._clean_free_blocks = getattr(allocator, "clean_free_blocks", None)
        allocator_config = getattr(allocator, "config", None)
        self._growth_may_cost = self._overhead_free_growth is None and bool(
            getattr(allocator_config, "map_latency_s", 0.0)
        )
        self._carried_overhead_s = 0.0
        self._queues_moved = False
        # Deferred slots (DESIGN §7b): an allocator with ``growth_room(seq_id)`` and a ``num_deferred_tokens``
        # counter (paged) lets a one-sequence request keep up to ``num_room`` slots pending for good: they need
        # no block, so the scheduler appends them only when the sequence must cross into a new block (or ends,
        # or is preempted), and the allocator's breakdown counts them from ``num_deferred_tokens``.
        self._growth_room = getattr(allocator, "growth_room", None)
        self._defers = self._growth_room is not None and hasattr(allocator, "num_deferred_tokens")
        self._num_multi_seq_decodes = 0  # decoding requests of the step with more than one sequence
        # append_slots, then growth_room, in one call (-1: no room, nothing appended)
        self._append_decode = getattr(allocator, "append_decode_slots", None) if self._defers else None
        self._init_cohort()
        # PagedEviction (allocators/paged_eviction.py): decode reads the stored tokens, not the context, and a
        # slot may evict a block, so the batch's KV sums come from the allocator, and a decode window is planned
        # by it (``window_evictions``) or not at all.
        self._stored_tokens = getattr(allocator, "stored_tokens", None)
        self._window_evictions = getattr(allocator, "window_evictions", None)
        self._decode_stored: list[int] = []  # the step's stored tokens per decoding sequence (one each)
        self._evicted_tokens = getattr(allocator, "evicted_tokens", None)
        # With a prefix cache, which cached block a new block evicts depends on what was freed before it: the
        # pending slots of a window are appended before any finish frees blocks, as stepping appended them.
        self._sync_before_free = bool(getattr(allocator, "caches_prefixes", False))

    # ---- queue entry ------------------------------------------------------------------------------------
    def add_request(self, req: RequestState) -> None:
        req.num_prefill_tokens = req.num_prompt_tokens
        self.waiting.append(req)

    @property
    def is_saturated(self) -> bool:
        """Some request waits for memory: the head of the queue is blocked on it, or requests are swapped."""
        return self.head_blocked or bool(self.swapped)

    @property
    def admits_arrivals(self) -> bool:
        """Whether a request arriving now could be admitted at the next step. False while the queue's head
        is blocked (FCFS: a newcomer queues behind it) or requests are swapped out; during a decode window
        that stays so until a completion, so arrivals need not cut the window."""
        return not self.waiting and not self.swapped

    # ---- admission --------------------------------------------------------------------------------------
    def _try_admit(self, req: RequestState, now_s: float) -> int | None:
        """Allocate the head request's (re)prefill; the number of its tokens already cached, or None."""
        if self._has_pending:
            self._sync_all()
        self._prepaid = False  # this allocation may take what the last window set aside for the next step
        seq_id = self._next_seq_id
        admission = self.allocator.allocate(
            seq_id,
            req.num_prefill_tokens,
            final_num_tokens=req.final_num_tokens,
            prefix_block_hashes=req.prefix_block_hashes,
            num_prompt_tokens=req.num_prompt_tokens,
        )
        if admission is None:
            self.head_blocked = True
            return None
        if self.head_blocked:
            self.allocator.clear_blocked()
            self.head_blocked = False
        self._next_seq_id += 1
        self.waiting.popleft()
        req.seq_ids = [seq_id]
        req.num_slots = req.num_prefill_tokens
        req.num_room = 0
        req.num_computed_tokens = admission.num_cached_tokens
        if req.first_scheduled_s is None:
            req.first_scheduled_s = now_s
            req.num_cached_tokens = admission.num_cached_tokens
        self.running.append(req)
        self.num_running_seqs += req.num_seqs
        self.changed = True
        return admission.num_cached_tokens

    # ---- decoding ---------------------------------------------------------------------------------------
    def _grow_one(self, req: RequestState) -> bool:
        """One more KV slot in every sequence of ``req``, all or nothing."""
        if len(req.seq_ids) == 1:
            return self.allocator.append_slots(req.seq_ids[0], 1)
        if self.allocator.max_uniform_growth(req.seq_ids, 1) < 1:
            return False
        for seq_id in req.seq_ids:
            ok = self.allocator.append_slots(seq_id, 1)
            assert ok, "max_uniform_growth promised room"
        return True

    def _schedule_decodes(self, reqs: list[RequestState]) -> list[RequestState]:
        """Give every decoding request in ``reqs`` (oldest first) its slot for this step, preempting the
        newest running request when memory runs out (vLLM's ``_schedule_running``). Returns the preempted.
        Through the cohort when it can (``cohort.py``); ``reqs`` may be ``running`` itself."""
        if self._cohort and reqs and self._cohort_decode(reqs):
            return []
        reqs = list(reqs)
        if self._has_pending and not self._prepaid:
            self._sync_all()
        self._has_pending = self._prepaid = False
        preempted: list[RequestState] = []
        decodes = self._decodes
        append_slots = self.allocator.append_slots
        # The common case (one sequence, room for its slot) is inlined, with _count_decode's sums kept local.
        append_decode = self._append_decode
        bs = self.block_size
        # The fast path counts its sequences by block residue only; blocks and sequences follow after the loop.
        fast_residue = [0] * bs
        num_seqs = kv_tokens = num_deferred = 0
        min_remaining = self._min_remaining
        for req in reqs:
            if preempted and req in preempted:  # taken earlier in this loop as a victim
                continue
            seq_ids = req.seq_ids
            if len(seq_ids) == 1:
                num_new = req.num_pending_slots + 1
                if num_new <= req.num_room:  # within the last block: no allocator call (deferred)
                    req.num_pending_slots = num_new
                    num_deferred += 1
                elif append_decode is not None:
                    room = append_decode(seq_ids[0], num_new)
                    if room >= 0:
                        req.num_pending_slots = 0
                        req.num_room = room
                        num_deferred -= num_new - 1
                    else:
                        num_new = 0
                elif append_slots(seq_ids[0], num_new):
                    req.num_pending_slots = 0
                else:
                    num_new = 0
            else:
                num_new = 0
            if num_new:
                slots = req.num_slots = req.num_slots + 1
                decodes.append(req)
                kv_tokens += slots
                if bs:
                    fast_residue[(slots - 1) % bs] += 1
                else:
                    num_seqs += 1
                remaining = req.num_output_tokens - req.num_generated
                if remaining < min_remaining:
                    min_remaining = remaining
                continue
            self._sync(req)
            while not self._grow_one(req):
                if len(self.running) == 1:  # alone on the replica and still no room: it can never finish
                    self._drop(req, "its sequences outgrow the KV memory even alone on the replica")
                    preempted.append(req)
                    break
                victim = self._victim()
                self._preempt(victim)
                preempted.append(victim)
                if victim is req:
                    break
            else:
                req.num_slots += 1
                self._count_decode(req)
            req.num_room = 0  # _grow_one appended past the last sync
        if self._defers:
            self.allocator.num_deferred_tokens += num_deferred
        kv_blocks = 0
        if bs:
            # Σ ceil(s / bs) = Σ ((s - 1) // bs + 1), and Σ (s - 1) // bs = (Σ (s - 1) - Σ (s - 1) % bs) / bs.
            residue = self._residue_counts
            residue_sum = 0
            for r, count in enumerate(fast_residue):
                if count:
                    residue[r] += count
                    num_seqs += count
                    residue_sum += r * count
            kv_blocks = num_seqs + (kv_tokens - num_seqs - residue_sum) // bs
        self._num_decode_seqs += num_seqs
        self._decode_kv_tokens += kv_tokens
        self._decode_kv_blocks += kv_blocks
        self._min_remaining = min(self._min_remaining, min_remaining)
        return preempted

    def _count_decode(self, req: RequestState) -> None:
        """Add a decoding request to this step's running sums (and what a fast-forward window needs)."""
        self._decodes.append(req)
        n = req.num_seqs
        self._num_decode_seqs += n
        if n > 1:
            self._num_multi_seq_decodes += 1
        self._decode_kv_tokens += n * req.num_slots
        if self.block_size:
            self._decode_kv_blocks += n * (-(-req.num_slots // self.block_size))
            self._residue_counts[(req.num_slots - 1) % self.block_size] += n
        self._min_remaining = min(self._min_remaining, req.num_output_tokens - req.num_generated)

    # ---- building the batch -----------------------------------------------------------------------------
    def _begin_step(self) -> None:
        self._reset_step()
        # What only the per-request path (_schedule_decodes and its window) reads.
        self._num_multi_seq_decodes = 0
        self._cohort_stepped = False
        self._residue_counts = [0] * self.block_size
        self._requeue = []

    def _reset_step(self) -> None:
        """The step's batch and sums, emptied: all that a cohort-only step (``_cohort_only_step``) reads."""
        if self._prefills:
            self._prefills = []
        if self._decodes:
            self._decodes = []
        self._num_decode_seqs = self._decode_kv_tokens = self._decode_kv_blocks = 0
        self._min_remaining = 1 << 62
        self._carried_overhead_s = (
            0.0  # allocator work taken out before a swap-in probe, charged to this step
        )
        self._queues_moved = False  # this step preempted or swapped in: the next step decides afresh

    def _end_step(self) -> None:
        # Recompute victims go back to the front of the queue, oldest first (vLLM v0 ``extendleft``).
        if self._requeue:
            self.waiting.extendleft(self._requeue)
            self._requeue = []

    def _batch(self) -> Batch | None:
        if not self._prefills and not self._decodes and not self._cohort_stepped:
            return None
        if self._stored_tokens is not None and self._decodes:
            self._count_stored_tokens()
        prefills = self._prefills  # empty on a decode step (most steps): no tuples to build
        if not prefills:
            q_lens = kv_lens = ()
        elif len(prefills) == 1:  # the commonest prefill step: one newcomer
            req, q = prefills[0]
            q_lens, kv_lens = (q,), (req.num_computed_tokens + q,)
        else:
            q_lens = tuple([q for _, q in prefills])
            kv_lens = tuple([req.num_computed_tokens + q for req, q in prefills])
        # Batch's fields by position (a call by keyword costs twice as much: a Batch or two per request)
        return Batch(
            q_lens,
            kv_lens,
            self._num_decode_seqs,
            self._decode_kv_tokens,
            self._decode_kv_blocks,
            self._attention_kernel,
            self._batch_block_size,
            self._carried_overhead_s + self.allocator.take_overhead_s(self.previous_step_s),
        )

    # ---- step outcome -----------------------------------------------------------------------------------
    def complete_steps(self, num_steps: int, end_s: float, step_ends=None) -> None:
        """Apply ``num_steps`` steps of the scheduled batch (more than one only for a decode window);
        ``step_ends``, each step's end time, for a window planned through finishes (``window_segments``)."""
        for req, num_new in self._prefills:
            req.num_computed_tokens += num_new
            if req.num_computed_tokens == req.num_prefill_tokens:
                self._prefill_done(req, end_s)
        extra = num_steps - 1
        if self._cohort_stepped:
            if self.window_segments:
                self._complete_through(num_steps, step_ends)
                self.window_segments = ()
            else:
                self._complete_cohort(num_steps, end_s)
        elif self.window_segments:
            if self._window_finishers:  # a window through finishes on the per-request path
                self._complete_requests_through(num_steps, step_ends)
                self.window_segments = ()
                return
            self.window_segments = ()  # an eviction window's (fast_forward.py): timing only
        any_finished = False
        if not self._decodes:
            if self._to_fork:
                self._fork_samples()
            return
        if extra:
            self._has_pending = True
            if self._defers:
                self.allocator.num_deferred_tokens += extra * self._num_decode_seqs
        if num_steps < self._min_remaining:  # no decoding request finishes: only the counters move
            if extra:
                for req in self._decodes:
                    req.num_slots += extra
                    req.num_pending_slots += extra
                    req.num_generated += num_steps
            else:  # one step (most windows): the slot was appended (or deferred) when it was scheduled
                for req in self._decodes:
                    req.num_generated += 1
            if self._to_fork:
                self._fork_samples()
            return
        if extra:  # counters only (no allocator call), so doing them first changes nothing below
            for req in self._decodes:
                req.num_slots += extra
                req.num_pending_slots += extra
        for req in self._decodes:
            generated = req.num_generated = req.num_generated + num_steps
            if generated >= req.num_output_tokens:
                self._sync(req)  # allocators may keep state past free (vAttention keeps pages mapped)
                self._finish(req, end_s)
                any_finished = True
        if any_finished:
            self._drop_finished()
        if self._to_fork:
            self._fork_samples()

    def _prefill_done(self, req: RequestState, end_s: float) -> None:
        """A (re)prefill produced the next token; fork the parallel samples after the first prefill."""
        req.num_generated += 1
        self.changed = True  # prefill -> decode: the batch's shape changes
        if req.first_token_s is None:
            req.first_token_s = end_s
        if req.num_generated >= req.num_output_tokens:
            self._finish(req, end_s)
            self._drop_finished()
        elif len(req.seq_ids) < req.num_seqs:
            self._to_fork.append(req)
        elif self._cohort:
            self._join_cohort(req)

    def _fork_samples(self) -> None:
        """Fork the parallel samples of requests whose first prefill just ended. A copying allocator may
        run short: then the newest other requests are preempted, or, alone, the request is dropped."""
        for req in self._to_fork:
            if req not in self.running:  # preempted by an earlier fork of this step
                continue
            while len(req.seq_ids) < req.num_seqs:
                child = self._next_seq_id
                if self.allocator.fork(req.seq_ids[0], child) is not False:
                    self._next_seq_id += 1
                    req.seq_ids.append(child)
                    continue
                victim = next(
                    (r for r in reversed(self.running) if r is not req and r.finish_s is None), None
                )
                if victim is None:
                    self._drop(req, "its parallel samples do not fit in the KV memory")
                    break
                self._preempt(victim, recompute=True)
        self._to_fork = []
        self.waiting.extendleft(self._requeue)
        self._requeue = []

    def _drop(self, req: RequestState, reason: str) -> None:
        """Give up on a running request that cannot progress even with the replica to itself."""
        if req.cohort_key:
            self._leave_cohort(req)
        self.running.remove(req)
        for seq_id in req.seq_ids:
            self.allocator.free(seq_id)
        req.seq_ids = []
        self.num_running_seqs -= req.num_seqs
        self.dropped.append((req, reason))
        self.changed = True
        self._queues_moved = True

    def _count_stored_tokens(self) -> None:
        """The decode sums over what the decoding sequences store (PagedEviction), not their context: the
        allocator's count, plus the slots deferred inside the last block (a one-sequence request's). The
        per-sequence counts stay in ``_decode_stored`` for a window (``_eviction_window``, one sequence each)."""
        stored, bs = self._stored_tokens, self.block_size
        tokens = self._decode_stored = [
            stored(seq_id) + req.num_pending_slots for req in self._decodes for seq_id in req.seq_ids
        ]
        self._decode_kv_tokens = sum(tokens)
        # Σ ceil(t / bs) = Σ ((t - 1) // bs + 1), for every t >= 0 (floor division: (0 - 1) // bs == -1)
        self._decode_kv_blocks = sum([(t - 1) // bs for t in tokens]) + len(tokens)

    def _note_evicted(self, req: RequestState) -> None:
        """PagedEviction: the share of the finishing request's context its (first) sequence evicted."""
        if self._evicted_tokens is not None and req.seq_ids:
            evicted = self._evicted_tokens(req.seq_ids[0])
            req.kv_evicted_fraction = evicted / (evicted + self._stored_tokens(req.seq_ids[0]))

    def _finish(self, req: RequestState, end_s: float) -> None:
        if self._sync_before_free and self._has_pending:
            self._sync_all()
        req.finish_s = end_s
        if self._evicted_tokens is not None:
            self._note_evicted(req)
        for seq_id in req.seq_ids:
            self._free_finished(seq_id)
        self.num_running_seqs -= req.num_seqs
        self.finished.append(req)
        self.changed = True

    def _drop_finished(self) -> None:
        self.running = [r for r in self.running if r.finish_s is None]
