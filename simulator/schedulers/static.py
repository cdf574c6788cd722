"""FasterTransformer's request-level (static) batching.

When no batch is running, take up to ``max_num_seqs`` waiting requests in FCFS order (stopping at the first
whose allocation fails), prefill them in one step, then decode until the last of them ends. A request that
ends early reports its finish then, stops being computed, but keeps its KV memory until the whole batch ends
(FasterTransformer frees the batch's buffers together).
"""

from __future__ import annotations

from kvsim.simulator.batch import Batch
from kvsim.simulator.request_state import RequestState
from kvsim.simulator.schedulers.base import SchedulerBase


class StaticScheduler(SchedulerBase):
    name = "static"

    def __init__(self, *args, **kwargs) -> None:
        # FasterTransformer does not preempt; over an allocator that can run short, victims are recomputed
        # (a swapped request would wait for a batch slot that static batching never gives back).
        kwargs["preemption_mode"] = "recompute"
        super().__init__(*args, **kwargs)

    def schedule(self, now_s: float) -> Batch | None:
        self._begin_step()
        if self.running:
            self._schedule_decodes([req for req in self.running if req.finish_s is None])
            if not self._decodes:  # every member finished or was preempted: the batch is over
                self._release_batch()
        self._end_step()
        if not self.running:
            self._admit(now_s)
        return self._batch()

    @property
    def admits_arrivals(self) -> bool:
        return not self.running and not self.waiting

    def _admit(self, now_s: float) -> None:
        while self.waiting and self.num_running_seqs + self.waiting[0].num_seqs <= self.max_num_seqs:
            req = self.waiting[0]
            cached = self._try_admit(req, now_s)
            if cached is None:
                return
            if cached >= req.num_prefill_tokens:
                req.num_computed_tokens = req.num_prefill_tokens - 1
            self._prefills.append((req, req.num_prefill_tokens - req.num_computed_tokens))

    def _victim(self) -> RequestState:
        # Finished members keep their memory until the batch ends; preempting them would free nothing useful.
        return next(req for req in reversed(self.running) if req.finish_s is None)

    def _finish(self, req: RequestState, end_s: float) -> None:
        req.finish_s = end_s  # memory stays until the batch ends (_drop_finished)
        self._note_evicted(req)
        self.finished.append(req)
        self.changed = True

    def _drop_finished(self) -> None:
        if all(req.finish_s is not None for req in self.running):
            self._release_batch()

    def _release_batch(self) -> None:
        for req in self.running:
            for seq_id in req.seq_ids:
                self.allocator.free(seq_id)
        self.running = []
        self.num_running_seqs = 0
