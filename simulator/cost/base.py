"""The ``CostModel`` seam: a Batch in, a StepTime out (DESIGN §5)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from kvsim.simulator.batch import Batch, StepTime


class CostModel(Protocol):
    """Predicts how long one model step takes on one replica (all its TP shards together)."""

    source: str  # "measured" | "roofline" | "cpu-smoke": printed beside every result built on it
    # e.g. "H100-SXM measured, date 2026-11-25, driver 580.159" or "A100-80GB roofline from datasheet peaks ..."
    description: str

    def step_time(self, batch: Batch) -> StepTime: ...

    def decode_step_times(
        self, batch: Batch, num_steps: int, decode_kv_blocks: np.ndarray | None = None
    ) -> np.ndarray:
        """Durations [num_steps] of ``num_steps`` pure-decode steps, the first of which is ``batch``; each
        step adds one token to every sequence, so step i reads ``decode_kv_tokens + i * num_decode_seqs``
        tokens. ``decode_kv_blocks`` [num_steps] gives the paged block count of each step (default: constant).
        Element i must equal ``step_time(<batch of step i>).total_s`` bit for bit, so that fast-forwarding
        many steps in one event gives exactly what stepping one by one gives."""
        ...
