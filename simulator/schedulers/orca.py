"""Orca's iteration-level scheduler (Yu et al., OSDI'22), as the vLLM paper's baselines run it.

Every step decodes all running requests and admits waiting ones in FCFS order, their whole prompts batched
with the decodes (selective batching), as long as ``max_num_seqs``, the token budget and the allocator allow.
Over the ``reserved`` allocator a request is admitted when its reservation fits, and never has to be
preempted; over an allocator that can run short it falls back to preempting the newest, as vLLM does.
"""

from __future__ import annotations

from kvsim.simulator.batch import Batch
from kvsim.simulator.schedulers.base import SchedulerBase


class OrcaScheduler(SchedulerBase):
    name = "orca"
    uses_cohort = True  # every step decodes every running request
    runs_through_finishes = True  # with nothing waiting, the next step decodes the cohort

    @property
    def admits_arrivals(self) -> bool:
        """Whether a request arriving now could be admitted at the next step: unless others wait before it
        (FCFS). Requests swapped out do not stop it: ``_admit`` runs after ``_swap_in`` even when one could not
        come back, and a newcomer may fit where it does not."""
        return not self.waiting

    def schedule(self, now_s: float) -> Batch | None:
        if not self.waiting and not self.swapped and self._cohort:
            batch = self._cohort_only_step()
            if batch is not None:
                return batch
        self._begin_step()
        preempted = self._schedule_decodes(self.running)
        if not preempted:
            self._swap_in()
            self._admit(now_s, self.max_num_batched_tokens - self._num_decode_seqs)
        self._end_step()
        return self._batch()

    def _admit(self, now_s: float, budget: int) -> None:
        num_tokens = 0
        while self.waiting:
            req = self.waiting[0]
            if self.num_running_seqs + req.num_seqs > self.max_num_seqs:
                return
            need = req.num_prefill_tokens
            if num_tokens + need > budget and (self._prefills or self._decodes or self._cohort_stepped):
                return
            cached = self._try_admit(req, now_s)
            if cached is None:
                return
            if cached >= need:
                req.num_computed_tokens = need - 1
            num_new = need - req.num_computed_tokens
            self._prefills.append((req, num_new))
            num_tokens += num_new
