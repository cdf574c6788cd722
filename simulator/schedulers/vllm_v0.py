"""``vllm-v0``: vLLM v0.6.3's scheduler (``vllm/core/scheduler.py``), the vLLM paper's system: continuous batching
with a token budget. (``vllm`` is v1, ``vllm.py``.)

Default policy (``_schedule_default``): when nothing is swapped out, admit waiting requests in FCFS order into a
prefill-only step, stopping at the first that does not fit (``max_num_seqs``, ``max_num_batched_tokens`` or
memory); otherwise decode every running request, preempting the newest when a slot cannot be found, and swap
requests back in when no preemption happened. With ``enable_chunked_prefill`` (``_schedule_chunked_prefill``):
decodes first, then chunks of prefills in progress, then swap-ins, then new prefills, all in one mixed batch
within the token budget. The block manager's watermark is kept: a waiting request is admitted only if
``watermark`` × capacity stays free after its prompt's slots (vLLM ``can_allocate``). Not modelled: the
watermark on swap-in, and the delay factor.

Multi-step scheduling (``num_scheduler_steps`` N > 1, v0.6's ``--num-scheduler-steps``; v0.6.3
``vllm/core/scheduler.py``, ``vllm/engine/output_processor/multi_step.py``): a decode batch, once scheduled, runs N
steps (its sequences' N - 1 lookahead slots are allocated with it) and the scheduler runs again only when the
window ends. So nothing is admitted or swapped in mid-window (``multi_step_pos`` > 0: this step decodes what runs),
and a request that reaches its last token inside a window computes to the window's end, where its outputs are
processed: the tokens after its last are dropped (``MultiStepOutputProcessor`` truncates to ``max_tokens``), and
it finishes, frees its slots and reports its last token then. A prefill step is a window of one
(``_get_num_lookahead_slots(is_prefill=True)`` is 0 without chunked prefill), and every request joins the decode
windows at a window boundary, so its decode steps are a multiple of N: kvsim computes ``1 + N·ceil((output - 1)
/ N)`` tokens for it (metrics count its true output). Not modelled: a preemption lands at a step, not only at a
window's start (v0 allocates the lookahead slots up front); such a request may then finish off a boundary.
"""

from __future__ import annotations

from kvsim.simulator.allocators.base import KVAllocator
from kvsim.simulator.batch import Batch
from kvsim.simulator.request_state import RequestState
from kvsim.simulator.schedulers.base import SchedulerBase


class VllmV0Scheduler(SchedulerBase):
    name = "vllm-v0"
    uses_cohort = True

    def __init__(
        self,
        allocator: KVAllocator,
        *,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        preemption_mode: str = "recompute",
        enable_chunked_prefill: bool = False,
        watermark: float = 0.0,
        num_scheduler_steps: int = 1,
    ) -> None:
        super().__init__(
            allocator,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            preemption_mode=preemption_mode,
        )
        self.enable_chunked_prefill = enable_chunked_prefill
        # With nothing waiting, the step after a finish decodes the cohort (chunked prefill may add chunks).
        self.runs_through_finishes = not enable_chunked_prefill
        self.watermark_bytes = watermark * allocator.capacity_bytes
        self._allocator_free_bytes = getattr(allocator, "free_bytes", None)
        assert num_scheduler_steps >= 1 and not (num_scheduler_steps > 1 and enable_chunked_prefill), (
            "SimConfig refuses multi-step scheduling with chunked prefill"
        )
        self.num_scheduler_steps = num_scheduler_steps

    def add_request(self, req: RequestState) -> None:
        n = self.num_scheduler_steps
        if n > 1 and req.num_output_tokens > 1:  # computed to the end of its last window (module docstring)
            req.num_output_tokens = 1 + n * -(-(req.num_output_tokens - 1) // n)
        super().add_request(req)

    @property
    def admits_arrivals(self) -> bool:
        """Whether a request arriving now could be admitted at the next step: unless others wait before it
        (FCFS), or requests are swapped out under the default policy (it admits nothing then). Chunked
        prefill admits new prefills after the swap-ins even when some stay swapped out."""
        return not self.waiting and (self.enable_chunked_prefill or not self.swapped)

    def schedule(self, now_s: float) -> Batch | None:
        if self.multi_step_pos and not self.running:  # the window's requests are gone (preempted)
            self.multi_step_pos = 0
        if not self.waiting and not self.swapped and self._cohort and not self.enable_chunked_prefill:
            batch = self._cohort_only_step()
            if batch is not None:
                return batch
        self._begin_step()
        if self.enable_chunked_prefill:
            self._schedule_chunked(now_s)
        else:
            self._schedule_default(now_s)
        self._end_step()
        return self._batch()

    def _schedule_default(self, now_s: float) -> None:
        mid_window = self.multi_step_pos > 0  # a multi-step window runs on: nothing joins it
        if not self.swapped and not mid_window:
            self._admit(now_s, self.max_num_batched_tokens, split=False)
            if self._prefills:
                return
        preempted = self._schedule_decodes(self.running)
        if not preempted and not mid_window:
            self._swap_in()

    def decode_window(self, limit: int):
        n = self.num_scheduler_steps
        if n > 1 and (self.waiting or self.swapped):  # the queue is looked at again where the window ends
            limit = min(limit, n - self.multi_step_pos)
        return super().decode_window(limit)

    def complete_steps(self, num_steps: int, end_s: float, step_ends=None) -> None:
        n = self.num_scheduler_steps
        if n > 1 and not self._prefills:  # a prefill step is a window of one
            self.multi_step_pos = (self.multi_step_pos + num_steps) % n
        super().complete_steps(num_steps, end_s, step_ends)

    def _schedule_chunked(self, now_s: float) -> None:
        running = self.running
        prefilling = [req for req in running if req.num_computed_tokens < req.num_prefill_tokens]
        # Most steps have no prompt in progress: then every running request decodes (running itself serves).
        decoding = (
            [req for req in running if req.num_computed_tokens >= req.num_prefill_tokens]
            if prefilling
            else running
        )
        preempted = self._schedule_decodes(decoding)
        budget = self.max_num_batched_tokens - self._num_decode_seqs
        for req in prefilling:
            if req.seq_ids and budget > 0 and req not in preempted:
                num_new = min(req.num_prefill_tokens - req.num_computed_tokens, budget)
                self._prefills.append((req, num_new))
                budget -= num_new
        if not preempted:
            num_decode_seqs = self._num_decode_seqs
            self._swap_in()
            budget -= self._num_decode_seqs - num_decode_seqs
            self._admit(now_s, budget, split=True)

    def _admit(self, now_s: float, budget: int, *, split: bool) -> None:
        """Admit waiting requests in FCFS order while they fit; the first that does not fit stops the queue."""
        num_tokens = 0
        while self.waiting:
            req = self.waiting[0]
            if self.num_running_seqs + req.num_seqs > self.max_num_seqs:
                return
            left = budget - num_tokens
            need = req.num_prefill_tokens
            if split:
                if left <= 0:
                    return
            elif need > left and (self._prefills or need <= self.max_num_batched_tokens):
                # A recompute re-prefill longer than the budget runs alone rather than never.
                return
            if self.watermark_bytes and not self._above_watermark(need):
                self.head_blocked = True
                return
            cached = self._try_admit(req, now_s)
            if cached is None:
                return
            if cached >= need:  # a full prefix-cache hit still computes the last token (vLLM)
                req.num_computed_tokens = need - 1
            num_new = need - req.num_computed_tokens
            if split:
                num_new = min(num_new, left)
            self._prefills.append((req, num_new))
            num_tokens += num_new

    def _above_watermark(self, num_tokens: int) -> bool:
        """Would ``watermark_bytes`` stay free after slots for ``num_tokens`` (block-rounded)? Prefix-cache
        hits are not subtracted, as vLLM v0's ``can_allocate`` does not."""
        need_bytes = self._slot_bytes(num_tokens)
        if self.allocator.capacity_bytes - need_bytes < self.watermark_bytes:
            return True  # could never pass (a long recompute re-prefill): admit it when memory allows
        free_bytes = self._free_bytes()
        if free_bytes - need_bytes < self.watermark_bytes:
            return False  # already short before the pending decode slots are appended, so short after
        if self._has_pending:
            self._sync_all()
            free_bytes = self._free_bytes()
        return free_bytes - need_bytes >= self.watermark_bytes

    def _free_bytes(self) -> int:
        # An allocator may answer ``free_bytes()`` (== breakdown().free) without building a breakdown.
        if self._allocator_free_bytes is not None:
            return self._allocator_free_bytes()
        return self.allocator.breakdown().free

    def _slot_bytes(self, num_tokens: int) -> int:
        if self.block_size:
            num_tokens = -(-num_tokens // self.block_size) * self.block_size
        return num_tokens * self.allocator.kv_bytes_per_token

    def watermark_rejection(self, num_prompt_tokens: int) -> str | None:
        """vLLM's ``AllocStatus.NEVER``: a prompt that would break the watermark even on an empty replica."""
        if self.watermark_bytes and (
            self.allocator.capacity_bytes - self._slot_bytes(num_prompt_tokens) < self.watermark_bytes
        ):
            return "prompt leaves less than the watermark free on an empty replica"
        return None


def rejection_reason(
    num_prompt_tokens: int, max_num_batched_tokens: int, enable_chunked_prefill: bool
) -> str | None:
    """vLLM ignores a prompt longer than the token budget when prefills cannot be chunked."""
    if not enable_chunked_prefill and num_prompt_tokens > max_num_batched_tokens:
        return "prompt longer than max_num_batched_tokens"
    return None
