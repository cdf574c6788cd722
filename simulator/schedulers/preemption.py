"""Preemption and swap-in, shared by the batching schedulers (a mixin of ``SchedulerBase``, split out to keep
files short). vLLM v0 semantics: the victim is the newest running request; recompute frees its KV and queues it
to prefill its prompt and every output token again; swap moves its KV to CPU swap space and brings it back,
oldest first, when memory allows.
"""

from __future__ import annotations

from kvsim.simulator.request_state import RequestState


class PreemptionMixin:
    """Needs ``SchedulerBase``'s state: ``allocator``, ``running``, ``swapped``, ``_requeue``, counters."""

    def _victim(self) -> RequestState:
        """The request to preempt when memory runs out: the newest running one (vLLM)."""
        return self.running[-1]

    def _preempt(self, victim: RequestState, *, recompute: bool = False) -> None:
        """Take ``victim`` off the GPU, by swap or recompute (``recompute``: recompute whatever the mode)."""
        if victim.cohort_key:
            self._leave_cohort(victim)
        if self.running[-1] is victim:
            self.running.pop()
        else:
            self.running.remove(victim)
        self.num_running_seqs -= victim.num_seqs
        victim.num_preemptions += 1
        self.num_preemptions += 1
        self.changed = True
        self._queues_moved = True
        if self.preemption_mode == "swap" and victim.num_generated > 0 and not recompute:
            self._sync(victim)
            swapped = []
            victim.num_room = 0
            for seq_id in victim.seq_ids:
                if self.allocator.swap_out(seq_id) is None:
                    break
                swapped.append(seq_id)
            if len(swapped) == len(victim.seq_ids):
                self.swapped.append(victim)
                return
            for seq_id in swapped:  # swap space ran short: fall back to recompute for the whole request
                self.allocator.swap_in(seq_id)
        self._to_recompute(victim)

    def _to_recompute(self, req: RequestState) -> None:
        """Free ``req``'s KV (on the GPU or in swap) and queue it to prefill again: the prompt and every
        output token so far (vLLM v0 recompute)."""
        if self._defers and req.num_pending_slots:
            self.allocator.num_deferred_tokens -= req.num_pending_slots * len(req.seq_ids)
        for seq_id in req.seq_ids:
            self.allocator.free(seq_id)
        req.seq_ids = []
        req.num_slots = 0
        req.num_pending_slots = 0
        req.num_room = 0
        req.num_prefill_tokens = req.num_prompt_tokens + req.num_generated
        req.num_computed_tokens = 0
        self._requeue.append(req)

    def _swap_in(self) -> None:
        """Bring swapped requests back, oldest first, while memory and max_num_seqs allow; each decodes now.

        A request that swaps in but then finds no slot for this step's token goes straight back, and that
        probe costs nothing (vLLM checks ``can_swap_in`` without moving data); so a probe that keeps failing
        while nothing changes leaves no trace, stepping or fast-forwarding."""
        while self.swapped:
            req = self.swapped[0]
            if self.num_running_seqs + req.num_seqs > self.max_num_seqs:
                return
            pending_s = self.allocator.take_overhead_s()
            done = []
            # An allocator may say beforehand whether the probe would succeed (optional ``can_swap_in``, an
            # extension): a failed probe of the paged allocator would evict prefix-cache blocks.
            can_swap_in = getattr(self.allocator, "can_swap_in", None)
            if can_swap_in is None or can_swap_in(req.seq_ids, 1):
                for seq_id in req.seq_ids:
                    if self.allocator.swap_in(seq_id) is None:
                        break
                    done.append(seq_id)
            if len(done) < len(req.seq_ids) or not self._grow_one(req):
                # Last in, first out: a buddy heap (reserved, contiguous-growth) is then exactly as before,
                # free-list order included, which decides where the next region goes; in the order taken,
                # each failed probe of two or more sequences would permute it, stepping once per step and a
                # decode window once for all of its steps.
                for seq_id in reversed(done):
                    self.allocator.swap_out(seq_id)
                self.allocator.take_overhead_s()  # the probe's transfers did not happen
                self._carried_overhead_s += pending_s
                if not self.running:  # it cannot come back even to an empty GPU: recompute it instead
                    self.swapped.popleft()
                    self._to_recompute(req)
                    self.changed = self._queues_moved = True
                    continue
                return
            self._carried_overhead_s += pending_s
            self.swapped.popleft()
            req.num_slots += 1
            self.running.append(req)
            self.num_running_seqs += req.num_seqs
            self._count_decode(req)
            self.changed = True
            self._queues_moved = True
