"""Hugging Face TGI's router (text-generation-inference 2.x, ``backends/v3/src/backend.rs`` ``batching_task``
and ``backends/v3/src/queue.rs`` ``State::next_batch``), over kvsim's paged allocator.

What is modelled, each from those files (read at huggingface/text-generation-inference, 2024):
- **The budget reserves the future.** A request is admitted into a new batch only if the batch's prompts fit
  ``max_batch_prefill_tokens`` (rounded up to a whole block) and prompts plus every request's full
  ``max_new_tokens`` fit ``token_budget = max_batch_total_tokens - running batch's max_tokens``, where the
  running batch's ``max_tokens`` is its blocks × block_size, each request holding
  ``ceil((input_length + max_new_tokens - 1) / block_size)`` blocks from admission to finish (queue.rs
  ``block_allocator.allocate``; server ``flash_causal_lm.py`` ``to_pb``). So TGI never preempts.
- **When a new batch is formed** (backend.rs): with no running batch, whenever requests wait. With one, before
  every decode step: ``next_batch(min_size, ...)`` where ``min_size = floor(batch_size × waiting_served_ratio)``
  (f32 arithmetic, as in Rust), or no minimum once ``waiting_tokens >= max_waiting_tokens`` (decode steps since
  the last new batch). The queue is taken in FCFS order and stops at the first request over a budget; a batch
  smaller than ``min_size`` goes back to the queue whole.
- **Prefill first.** A new batch is prefilled alone while the running batch pauses; then the two merge, and
  the merged batch decodes once before the next attempt (backend.rs: ``prefill`` then ``decode(batches)``).
- ``max_concurrent_requests`` (router semaphore): a request arriving with that many in flight is refused
  (HTTP 429, "Model is overloaded"); kvsim records it as rejected with that reason.
- Validation (router ``validation.rs``): ``input_length > max_input_tokens`` or ``input_length +
  max_new_tokens > max_total_tokens`` is an error at arrival.

``max_new_tokens`` is what the client asks for; TGI cannot see the true output length. Policies (option
``max_new_tokens``): ``oracle`` (default) asks for exactly the trace's output length, as benchmark clients
replaying a trace do (they send the recorded length and ignore EOS), so the reservation is the least TGI could
make; ``max_total_tokens``: the client sends none and TGI fills in ``max_total_tokens - input_length``
(validation.rs); an integer ``N``: every client asks for N, except that a request whose trace output is longer
must have asked for at least that (TGI stops at ``max_new_tokens``, so a recorded length bounds it from below).

Not modelled: speculation (``speculate`` = 0), sliding windows, the padded (non-flash) path, prefix caching and
chunked prefill of later TGI 3.x releases, TGI's re-queueing of default-length requests every 1024 tokens.
Memory: the scheduler's ``allocator`` is a ``TgiMemoryView`` of the paged allocator (``tgi_memory.py``): the
blocks TGI holds for tokens not yet generated count as ``reserved`` (up to the true length) and
``internal_frag`` (beyond it), not ``free``.
"""

from __future__ import annotations

import math

import numpy as np

from kvsim.errors import KvsimError
from kvsim.simulator.allocators.base import KVAllocator
from kvsim.simulator.batch import Batch
from kvsim.simulator.request_state import RequestState
from kvsim.simulator.schedulers.base import SchedulerBase
from kvsim.simulator.schedulers.tgi_config import TgiConfig, parse_max_new_tokens, require_paged
from kvsim.simulator.schedulers.tgi_memory import TgiMemoryView


class TgiScheduler(SchedulerBase):
    """Invariant: ``num_reserved_blocks`` = Σ over running requests of their reservation (in blocks) ≤
    ``max_batch_total_tokens // block_size`` ≤ the allocator's blocks, so no decode slot can fail."""

    name = "tgi"
    uses_cohort = True  # every decode step takes every running request (the merged batch)

    def __init__(self, allocator: KVAllocator, *, config: TgiConfig) -> None:
        require_paged(allocator)
        self.num_reserved_blocks = 0  # blocks TGI holds for the running requests (queue.rs BlockAllocator)
        self.num_final_slots = 0  # Σ KV slots the running requests' sequences will hold when they end
        super().__init__(
            TgiMemoryView(allocator, self),
            max_num_seqs=config.max_batch_size or config.max_concurrent_requests,
            max_num_batched_tokens=config.max_batch_prefill_tokens,
        )
        bs = self.block_size
        num_blocks = allocator.capacity_bytes // (bs * allocator.kv_bytes_per_token)
        if config.max_batch_total_tokens > num_blocks * bs:
            raise KvsimError(
                f"max_batch_total_tokens {config.max_batch_total_tokens} exceeds the KV cache's "
                f"{num_blocks * bs} token slots ({num_blocks} blocks of {bs}); TGI would run out of memory: "
                f"lower it or leave it unset"
            )
        self.config = config
        self.num_pool_blocks = config.max_batch_total_tokens // bs  # queue.rs BlockAllocator's blocks
        self.prefill_token_budget = -(-config.max_batch_prefill_tokens // bs) * bs  # padded to a block
        self._fixed_max_new_tokens = parse_max_new_tokens(config.max_new_tokens)
        self._waiting_tokens = 0  # decode steps since the last new batch (backend.rs ``waiting_tokens``)
        self._decode_next = False  # a new batch just joined: the merged batch decodes before the next attempt
        # Whether this step's schedule() tried to form a new batch (and failed, if the step decodes).
        self._attempted = False
        self._min_size: dict[int, int] = {}  # batch_size -> floor(batch_size × ratio) in f32

    # ---- the client's request ---------------------------------------------------------------------------
    def max_new_tokens(self, num_prompt_tokens: int, num_output_tokens: int) -> int:
        if self._fixed_max_new_tokens is not None:
            return max(self._fixed_max_new_tokens, num_output_tokens)
        if self.config.max_new_tokens == "max_total_tokens":
            return max(self.config.max_total_tokens - num_prompt_tokens, num_output_tokens)
        return num_output_tokens

    def _reservation(self, req: RequestState) -> tuple[int, int, int]:
        """(prompt tokens, max_new_tokens, blocks held from admission to finish), all sequences together."""
        max_new = self.max_new_tokens(req.num_prompt_tokens, req.num_output_tokens)
        blocks = -(-(req.num_prompt_tokens + max_new - 1) // self.block_size)
        n = req.num_seqs
        return n * req.num_prompt_tokens, n * max_new, n * blocks

    def rejection_reason(self, num_prompt_tokens: int, num_output_tokens: int, num_seqs: int) -> str | None:
        """TGI's validation errors, and a reservation that could never fit an empty replica."""
        config = self.config
        if num_prompt_tokens > config.max_input_tokens:
            return f"prompt {num_prompt_tokens} tokens over max_input_tokens {config.max_input_tokens}"
        max_new = self.max_new_tokens(num_prompt_tokens, num_output_tokens)
        if num_prompt_tokens + max_new > config.max_total_tokens:
            return (
                f"prompt {num_prompt_tokens} + max_new_tokens {max_new} over max_total_tokens "
                f"{config.max_total_tokens}"
            )
        blocks = num_seqs * -(-(num_prompt_tokens + max_new - 1) // self.block_size)
        if blocks > self.num_pool_blocks:
            return (
                f"reserves {blocks} blocks, more than max_batch_total_tokens holds ({self.num_pool_blocks})"
            )
        return None

    # ---- queue entry ------------------------------------------------------------------------------------
    def add_request(self, req: RequestState) -> None:
        in_flight = len(self.waiting) + len(self.running)
        if in_flight >= self.config.max_concurrent_requests:
            reason = f"{in_flight} requests in flight = max_concurrent_requests (TGI: Model is overloaded)"
            self.dropped.append((req, reason))
            return
        super().add_request(req)

    @property
    def admits_arrivals(self) -> bool:
        """An arrival can change the next attempt unless the queue's head is over budget (then nothing
        behind it is admitted before a request finishes)."""
        return not self.waiting or self._head_fits()

    # ---- one step ---------------------------------------------------------------------------------------
    def schedule(self, now_s: float) -> Batch | None:
        self._begin_step()
        self._attempted = not (self._decode_next and self.running)
        if not self._attempted:
            self._decode_next = False
            self._schedule_decodes(list(self.running))
        else:
            self._decode_next = False
            joining = bool(self.running)
            if self._next_batch(now_s, joining):
                self._decode_next = joining
            elif self.running:
                self._schedule_decodes(list(self.running))
        self._end_step()
        return self._batch()

    def _next_batch(self, now_s: float, joining: bool) -> bool:
        """queue.rs ``next_batch``: admit a prefix of the queue as a new batch, or nothing."""
        if not self.waiting:
            return False
        config = self.config
        min_size = 0
        if joining and self._waiting_tokens < config.max_waiting_tokens:
            min_size = self._min_batch_size(len(self.running))
            if len(self.waiting) < min_size:
                return False
        max_size = None if config.max_batch_size is None else config.max_batch_size - len(self.running)
        if max_size is not None and max_size <= 0:
            return False  # (TGI's saturating_sub would pass Some(0) and never stop; kvsim keeps the cap)
        token_budget = config.max_batch_total_tokens - self.num_reserved_blocks * self.block_size
        chosen = []
        prefill_tokens = decode_tokens = 0
        free_blocks = self.num_pool_blocks - self.num_reserved_blocks
        for req in self.waiting:
            prompt, max_new, blocks = self._reservation(req)
            prefill_tokens += prompt
            decode_tokens += max_new
            if prefill_tokens > self.prefill_token_budget or prefill_tokens + decode_tokens > token_budget:
                break
            if blocks > free_blocks:  # block_allocator.allocate fails
                break
            free_blocks -= blocks
            chosen.append((req, blocks))
            if len(chosen) == max_size:
                break
        self.head_blocked = not chosen
        if not chosen or len(chosen) < min_size:
            return False
        for req, blocks in chosen:
            cached = self._try_admit(req, now_s)
            assert cached is not None, "the reservation covers the prompt's blocks"
            need = req.num_prefill_tokens
            if cached >= need:  # a full prefix-cache hit still computes the last token
                req.num_computed_tokens = need - 1
            self._prefills.append((req, need - req.num_computed_tokens))
            self.num_reserved_blocks += blocks
            self.num_final_slots += req.num_seqs * (req.final_num_tokens - 1)
        return True

    def _head_fits(self) -> bool:
        prompt, max_new, blocks = self._reservation(self.waiting[0])
        token_budget = self.config.max_batch_total_tokens - self.num_reserved_blocks * self.block_size
        return (
            prompt <= self.prefill_token_budget
            and prompt + max_new <= token_budget
            and blocks <= self.num_pool_blocks - self.num_reserved_blocks
        )

    def _min_batch_size(self, batch_size: int) -> int:
        """``(batch_size as f32 * waiting_served_ratio).floor()``: in f32, so 90 × 0.7 is 63 (62.99… in f64)."""
        size = self._min_size.get(batch_size)
        if size is None:
            product = np.float32(batch_size) * np.float32(self.config.waiting_served_ratio)
            size = self._min_size[batch_size] = math.floor(float(product))
        return size

    def decode_window(self, limit: int):
        # Before every skipped decode step TGI would try again; once waiting_tokens reaches
        # max_waiting_tokens that attempt drops its minimum size and may admit, so the window stops there.
        # (Past max_waiting_tokens the very next attempt may admit: one step. So may the first attempt after
        # a merged batch's decode, which made none.)
        if self.waiting and self._head_fits():
            if self._attempted:
                limit = min(limit, max(1, self.config.max_waiting_tokens - self._waiting_tokens))
            else:
                limit = 1
        return super().decode_window(limit)

    # ---- step outcome -----------------------------------------------------------------------------------
    def complete_steps(self, num_steps: int, end_s: float, step_ends=None) -> None:
        if self._prefills:
            self._waiting_tokens = 1  # backend.rs: reset when a new batch is prefilled
        else:
            self._waiting_tokens += num_steps
        super().complete_steps(num_steps, end_s, step_ends)

    def _finish(self, req: RequestState, end_s: float) -> None:
        self._release(req)
        super()._finish(req, end_s)

    def _drop(self, req: RequestState, reason: str) -> None:
        self._release(req)
        super()._drop(req, reason)

    def _release(self, req: RequestState) -> None:
        self.num_reserved_blocks -= self._reservation(req)[2]
        self.num_final_slots -= req.num_seqs * (req.final_num_tokens - 1)

    def _preempt(self, victim: RequestState, *, recompute: bool = False) -> None:
        raise AssertionError("TGI never preempts: each request's reservation covers all its decode slots")
