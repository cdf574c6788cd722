"""Per-request state inside a replica: hot, mutable, one object per live request (STYLE 3: slots)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class RequestState:
    """A request from arrival to finish. Its sequences (``num_seqs`` = max(n, beam_width)) grow together:
    every sequence of a running request holds ``num_slots`` KV slots and has produced ``num_generated``
    tokens. Invariant while decoding: ``num_slots == num_prompt_tokens + num_generated - 1`` (the newest
    token's KV is written by the next step, so the last output token's KV is never stored).
    """

    index: int  # row of the trace; results are written back to columns at this index
    request_id: int
    arrival_s: float
    num_prompt_tokens: int
    num_output_tokens: int  # true length: only oracle sizing and the finish check read it
    num_seqs: int = 1
    prefix_block_hashes: Sequence[int] | None = None
    replica: int = 0
    seq_ids: list[int] = field(default_factory=list)  # [num_seqs]; seq_ids[0] is the parent
    num_generated: int = 0  # output tokens produced so far (per sequence)
    num_slots: int = 0  # KV slots held per sequence (0 while waiting), including num_pending_slots
    num_pending_slots: int = 0  # slots of past decode steps not yet appended in the allocator (fast-forward)
    num_room: int = (
        0  # of them, how many may stay pending for good: the allocator's growth_room at the last sync
    )
    num_computed_tokens: int = 0  # tokens of the current (re)prefill already computed (chunked prefill)
    num_prefill_tokens: int = (
        0  # tokens the current (re)prefill must process: prompt, or prompt+output on recompute
    )
    first_scheduled_s: float | None = None
    first_token_s: float | None = None
    finish_s: float | None = None
    num_preemptions: int = 0
    num_cached_tokens: int = 0  # prompt tokens served from the prefix cache at first admission
    # In a scheduler's decode cohort (schedulers/cohort.py): num_slots and num_generated are as of the
    # allocator's tick ``cohort_tick``; ``cohort_key`` is 0 outside the cohort.
    cohort_key: int = 0
    cohort_tick: int = 0

    @property
    def final_num_tokens(self) -> int:
        return self.num_prompt_tokens + self.num_output_tokens

    @property
    def num_remaining(self) -> int:
        return self.num_output_tokens - self.num_generated
