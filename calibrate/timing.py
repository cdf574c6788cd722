"""Timing one callable: warm-up, then per-repetition CUDA-event timings (median and spread).

Memory-bound kernels are timed with the L2 cache flushed before each repetition (a 256 MiB write, larger
than the 50 MiB L2 of an H100), so a repetition cannot hit the previous one's lines. On the CPU (smoke runs)
the wall clock stands in for events; those numbers mean nothing and the profile says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

L2_FLUSH_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Timing:
    median_s: float
    p10_s: float
    p90_s: float
    reps: int


class Timer:
    """Times callables on one device. ``target_s``: total measured time to aim for per point, which sets the
    repetition count between ``min_reps`` and ``max_reps`` from a first estimate."""

    def __init__(
        self, device: str, target_s: float = 0.05, min_reps: int = 5, max_reps: int = 100, warmup: int = 2
    ) -> None:
        import torch

        self.torch, self.device = torch, device
        self.target_s, self.min_reps, self.max_reps, self.warmup = target_s, min_reps, max_reps, warmup
        self._cuda = device.startswith("cuda")
        self._flush = (
            torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device) if self._cuda else None
        )

    def time(self, fn: Callable[[], object], flush_l2: bool = True) -> Timing:
        for _ in range(self.warmup):
            fn()
        self._sync()
        estimate_s = self._one(fn, flush_l2)  # one timed run sets the repetition count
        reps = int(np.clip(self.target_s / max(estimate_s, 1e-7), self.min_reps, self.max_reps))
        samples = np.array(self._many(fn, reps, flush_l2))
        p10, median, p90 = np.percentile(samples, [10, 50, 90])
        return Timing(float(median), float(p10), float(p90), reps)

    def _one(self, fn: Callable[[], object], flush_l2: bool) -> float:
        return self._many(fn, 1, flush_l2)[0]

    def _many(self, fn: Callable[[], object], reps: int, flush_l2: bool) -> list[float]:
        if not self._cuda:
            samples = []
            for _ in range(reps):
                start = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - start)
            return samples
        cuda = self.torch.cuda
        starts = [cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [cuda.Event(enable_timing=True) for _ in range(reps)]
        for start, end in zip(starts, ends):
            if flush_l2:
                self._flush.zero_()
            start.record()
            fn()
            end.record()
        cuda.synchronize()
        return [start.elapsed_time(end) * 1e-3 for start, end in zip(starts, ends)]  # ms -> s

    def _sync(self) -> None:
        if self._cuda:
            self.torch.cuda.synchronize()
