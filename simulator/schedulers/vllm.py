"""``vllm``: vLLM v1's scheduler as released in 0.34.0 (``vllm/v1/core/sched/scheduler.py``, ``schedule``).

There is no prefill phase and no decode phase: every step, each request is given tokens so that its
``num_computed_tokens`` catches up with its tokens, within one token budget (``max_num_batched_tokens``) and
``max_num_seqs``. First the RUNNING requests, oldest first: a decoding request takes one token, one whose
prompt is still being computed takes the rest of it (capped by ``long_prefill_token_threshold`` when chunked
prefill is on and more than one request is queued or running, and by the budget left); when its KV slots
cannot be allocated, the newest running request is preempted by recompute (its blocks are freed, and it goes
to the front of the waiting queue), until it fits or it was itself the victim (then the running loop ends).
Then, only if nothing was preempted in this step, the WAITING requests in FCFS order: each takes its prefix-cache
hit (never the last token: a fully cached prompt recomputes its last block), then the rest of its prompt (prompt
and output so far after a preemption) as one chunk within the budget left; without chunked prefill a prompt that
does not fit the budget left waits (decodes still run beside whole prompts). With ``scheduler_reserve_full_isl``
(0.34's default) a request is admitted only if blocks for its whole (re)prefill are free; only its first chunk
is allocated, later chunks chunk by chunk. ``watermark`` (0.34's default 0) keeps that share of the blocks
free at admission while another request runs. The first request that cannot be admitted stops the queue.

Not modelled (off by default in 0.34): priority scheduling, ``prefill_schedule_interval``, cache-aware
admission, adaptive long-prefill thresholds, speculative decoding, KV connectors, async scheduling.
Preemption is by recompute only (v1 has no swap; ``vllm-v0`` has). Parallel samples (``n``): v1 fans them out
into separate requests sharing the prompt through the prefix cache; kvsim forks them after the first prefill,
sharing the prompt blocks copy-on-write (the same memory) and caching only the prompt's blocks of the forks.
"""

from __future__ import annotations

from kvsim.simulator.allocators.base import KVAllocator
from kvsim.simulator.allocators.block_pool import request_block_hashes
from kvsim.simulator.batch import Batch
from kvsim.simulator.request_state import RequestState
from kvsim.simulator.schedulers.base import SchedulerBase


class VllmScheduler(SchedulerBase):
    """Invariant: ``_num_prefilling`` counts the running requests whose (re)prefill is not computed yet."""

    name = "vllm"
    uses_cohort = True

    def __init__(
        self,
        allocator: KVAllocator,
        *,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        enable_chunked_prefill: bool = True,
        long_prefill_token_threshold: int = 0,
        scheduler_reserve_full_isl: bool = True,
        watermark: float = 0.0,
    ) -> None:
        super().__init__(
            allocator,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            preemption_mode="recompute",
        )
        self.enable_chunked_prefill = enable_chunked_prefill
        self.long_prefill_token_threshold = long_prefill_token_threshold
        self.scheduler_reserve_full_isl = scheduler_reserve_full_isl
        # KVCacheManager: int(watermark * num_blocks) blocks kept free at admission
        num_blocks = getattr(allocator, "num_blocks", 0)
        self.watermark_blocks = int(watermark * num_blocks)
        self._num_prefilling = 0
        # Prefix caching (the paged allocator's ``lookup_prefix``): block identities per request, as vLLM's
        # ``Request.block_hashes`` (prompt and generated tokens); None without prefix caching.
        self._lookup_prefix = getattr(allocator, "lookup_prefix", None)
        if self._lookup_prefix is not None and not allocator.caches_prefixes:
            self._lookup_prefix = None
        # The paged allocators take v1's admission (``allocate``'s num_full_tokens, num_watermark_blocks,
        # block_hashes); any other allocator is given the first chunk only.
        self._v1_admission = getattr(allocator, "admits_like_v1", False)
        # vLLM's max_admission_blocks_per_request: a window group's admission is capped by the tokens one step
        # can schedule (the hybrid allocator reads it; one batch in flight, as the synchronous scheduler)
        if hasattr(allocator, "max_tokens_in_flight"):
            allocator.max_tokens_in_flight = max_num_batched_tokens
        self.runs_through_finishes = True

    # ---- the step ----------------------------------------------------------------------------------------
    def schedule(self, now_s: float) -> Batch | None:
        if (
            not self.waiting
            and not self._num_prefilling
            and self._cohort
            and self.num_running_seqs <= self.max_num_batched_tokens
        ):
            batch = self._cohort_only_step()
            if batch is not None:
                return batch
        self._begin_step()
        budget = self.max_num_batched_tokens
        threshold = self.long_prefill_token_threshold
        if threshold and not (self.enable_chunked_prefill and len(self.running) + len(self.waiting) > 1):
            threshold = 0
        if not self._num_prefilling and self.num_running_seqs <= budget:
            # The commonest step: every running request decodes one token, all within the budget.
            preempted = self._schedule_decodes(self.running) if self.running else []
            budget -= self._num_decode_seqs
        else:
            preempted, budget = self._schedule_running(budget, threshold)
        # Windows through finishes are exact only when the step after a finish decodes every running request.
        self.runs_through_finishes = (
            not self._num_prefilling and self.num_running_seqs <= self.max_num_batched_tokens
        )
        if not preempted and budget > 0:
            self._schedule_waiting(now_s, budget, threshold)
        self._end_step()
        return self._batch()

    def _schedule_running(self, budget: int, threshold: int) -> tuple[list[RequestState], int]:
        """The running loop when some request is mid-prefill or the budget cannot take every decode. The decode
        cohort (``cohort.py``) steps every decoding request or none: a run of decoding requests goes through it
        only when it holds them all; otherwise the cohort is dissolved and they are visited one by one (they
        join it again at a step that decodes them all)."""
        cohort = self._cohort
        try:
            return self._visit_running(budget, threshold)
        finally:
            self._cohort = cohort

    def _visit_running(self, budget: int, threshold: int) -> tuple[list[RequestState], int]:
        if self._has_pending:
            self._sync_all()
        self._prepaid = False
        running, preempted, i = self.running, [], 0
        while i < len(running) and budget > 0:
            req = running[i]
            if req.num_computed_tokens < req.num_prefill_tokens:  # a prompt (or recompute) in progress
                num_new = req.num_prefill_tokens - req.num_computed_tokens
                if 0 < threshold < num_new:
                    num_new = threshold
                num_new = min(num_new, budget)
                while not self.allocator.append_slots(req.seq_ids[0], num_new):
                    victim = running[-1]
                    self._preempt(victim)
                    preempted.append(victim)
                    if victim is req:
                        return preempted, budget
                req.num_slots += num_new
                self._prefills.append((req, num_new))
                budget -= num_new
                i += 1
                continue
            # A run of decoding requests, as many as the budget takes: one token per sequence.
            j = self._decode_run_end(i, budget)
            if j == i:
                break
            segment = running[i:j]
            if self._cohort and len(segment) != len(running) - self._num_prefilling:
                if self._num_members:
                    self._dissolve_cohort()
                self._cohort = False
            before = self._num_decode_seqs
            taken = self._schedule_decodes(segment)
            budget -= self._num_decode_seqs - before
            preempted += taken
            i += len(segment) - sum(1 for r in taken if r in segment)
            if taken and any(r in segment for r in taken):
                break  # a request of the run was itself the victim: the running loop ends (vLLM)
        return preempted, budget

    def _decode_run_end(self, i: int, budget: int) -> int:
        """The end of the run of decoding requests that starts at ``running[i]``, as many as ``budget`` tokens
        take. Speed (DESIGN §7b): admissions append, so the prompts in progress are usually the newest running
        requests; then a run from the oldest is every other request, found in O(prompts in progress)."""
        running = self.running
        first_prefilling = len(running) - self._num_prefilling
        if i == 0:
            tail_seqs = 0
            for req in running[first_prefilling:]:
                if req.num_computed_tokens >= req.num_prefill_tokens:
                    break  # a decoding request among the newest: scan
                tail_seqs += req.num_seqs
            else:
                if self.num_running_seqs - tail_seqs <= budget:
                    return first_prefilling
        j, num_seqs = i, 0
        while j < len(running) and running[j].num_computed_tokens >= running[j].num_prefill_tokens:
            if num_seqs + running[j].num_seqs > budget:
                break
            num_seqs += running[j].num_seqs
            j += 1
        return j

    def _schedule_waiting(self, now_s: float, budget: int, threshold: int) -> None:
        """Admit waiting requests in FCFS order while the budget, ``max_num_seqs`` and memory allow."""
        while self.waiting and budget > 0:
            req = self.waiting[0]
            if self.num_running_seqs + req.num_seqs > self.max_num_seqs:
                return
            num_tokens = req.num_prefill_tokens  # prompt, or prompt + output after a preemption
            block_hashes = self._block_hashes(req) if self._lookup_prefix is not None else None
            num_cached = 0
            # A request never admitted before has none of its own blocks cached: only trace-hashed (shared)
            # prompt blocks can hit (speed: no lookup for the others)
            if block_hashes is not None and (req.first_scheduled_s is not None or req.prefix_block_hashes):
                num_cached = self._lookup_prefix(block_hashes, num_tokens)
            num_new = num_tokens - num_cached
            if 0 < threshold < num_new:
                num_new = threshold
            if not self.enable_chunked_prefill and num_new > budget:
                return
            num_new = min(num_new, budget)
            if not self._admit(req, now_s, num_cached + num_new, num_tokens, block_hashes):
                return
            self._num_prefilling += 1
            self._prefills.append((req, num_new))
            budget -= num_new

    def _admit(self, req: RequestState, now_s: float, num_slots: int, num_tokens: int, block_hashes) -> bool:
        """Allocate ``num_slots`` (the hit and the first chunk) of ``req``'s ``num_tokens``; False if not now."""
        if self._has_pending:
            self._sync_all()
        self._prepaid = False
        watermark = self.watermark_blocks if self.running else 0  # only while another request runs (v1)
        seq_id = self._next_seq_id
        if self._v1_admission:
            admission = self.allocator.allocate(
                seq_id,
                num_slots,
                final_num_tokens=req.final_num_tokens,
                block_hashes=block_hashes,
                num_full_tokens=num_tokens if self.scheduler_reserve_full_isl else None,
                num_watermark_blocks=watermark,
            )
        else:  # the first chunk; an allocator that sizes a region at admission (contiguous-growth) makes it for
            # the whole (re)prefill, as vllm-v0 admits it
            admission = self.allocator.allocate(
                seq_id, num_slots, final_num_tokens=req.final_num_tokens, num_prompt_tokens=num_tokens
            )
        if admission is None:
            self.head_blocked = True
            return False
        if self.head_blocked:
            self.allocator.clear_blocked()
            self.head_blocked = False
        self._next_seq_id += 1
        self.waiting.popleft()
        req.seq_ids = [seq_id]
        req.num_slots = num_slots
        req.num_room = 0
        req.num_computed_tokens = admission.num_cached_tokens
        if req.first_scheduled_s is None:
            req.first_scheduled_s = now_s
            req.num_cached_tokens = admission.num_cached_tokens
        self.running.append(req)
        self.num_running_seqs += req.num_seqs
        self.changed = True
        return True

    def _block_hashes(self, req: RequestState):
        """vLLM's ``Request.block_hashes`` for every full block up to the request's final length: the trace's
        prefix hashes where they describe the prompt, the request's own identity after that (generated
        tokens, or a trace without prefix hashes: different requests share nothing)."""
        return request_block_hashes(
            req.prefix_block_hashes,
            req.num_prompt_tokens,
            req.final_num_tokens,
            self.block_size,
            req.index,
        )

    # ---- bookkeeping of prompts in progress --------------------------------------------------------------
    def _prefill_done(self, req: RequestState, end_s: float) -> None:
        self._num_prefilling -= 1
        super()._prefill_done(req, end_s)

    def _preempt(self, victim: RequestState, *, recompute: bool = False) -> None:
        if victim.num_computed_tokens < victim.num_prefill_tokens:
            self._num_prefilling -= 1
        super()._preempt(victim, recompute=True)

    def _drop(self, req: RequestState, reason: str) -> None:
        if req.num_computed_tokens < req.num_prefill_tokens:
            self._num_prefilling -= 1
        super()._drop(req, reason)

    def watermark_rejection(self, num_prompt_tokens: int) -> str | None:
        """A prompt that leaves less than the watermark free even alone is still admitted when alone (v1
        applies the watermark only while another request runs): nothing to reject."""
        return None


def rejection_reason(
    num_prompt_tokens: int, max_num_batched_tokens: int, enable_chunked_prefill: bool
) -> str | None:
    """v1 needs no rejection by prompt length: without chunked prefill its config requires
    ``max_num_batched_tokens >= max_model_len`` (refused in ``SimConfig``), so every prompt fits the budget."""
    return None
