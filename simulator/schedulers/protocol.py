"""The ``Scheduler`` seam (DESIGN §4): what the replica's step loop asks of a scheduling policy.

A step: ``schedule(now_s)`` picks the work and makes its allocations and returns a ``Batch`` (None when idle);
the engine times it; ``complete_steps(k, end_s)`` applies ``k`` steps of it (``k > 1`` only for a decode window
that ``decode_window(limit)`` allowed). ``changed`` tells the engine to write a timeline row; ``finished``
hands it the requests that ended; ``admits_arrivals`` says whether a new arrival could change the next step.

A window may run through finishes (``schedulers/cohort_through.py``): ``decode_window`` then leaves its
segments in ``window_segments`` (steps, decoding sequences, KV tokens of the first step, KV blocks per step,
members finishing at the end), the engine passes every step's end time to ``complete_steps(k, end_s,
step_ends)``, and takes the rows of the finishes inside the window from ``window_rows``.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from kvsim.simulator.allocators.base import KVAllocator
from kvsim.simulator.batch import Batch
from kvsim.simulator.request_state import RequestState


class Scheduler(Protocol):
    name: str
    allocator: KVAllocator
    waiting: deque[RequestState]
    running: list[RequestState]
    swapped: deque[RequestState]
    num_preemptions: int
    changed: bool  # an admission, preemption, swap or finish happened since the engine last cleared it
    finished: list[RequestState]  # finished since the engine last drained it

    def add_request(self, req: RequestState) -> None: ...

    def schedule(self, now_s: float) -> Batch | None: ...

    def decode_window(self, limit: int) -> tuple[int, np.ndarray | list[int] | None]: ...

    window_segments: list[tuple] | tuple  # empty unless the last decode_window ran through finishes
    # (time_s, parts, saturated, num_running, num_batched_seqs, prefix_cache_counts or None) of those finishes
    window_rows: list[tuple]

    def complete_steps(self, num_steps: int, end_s: float, step_ends=None) -> None: ...

    @property
    def is_saturated(self) -> bool: ...

    @property
    def admits_arrivals(self) -> bool: ...
