"""Timing one callable: warm-up, then per-repetition CUDA-event timings (median and spread).

Memory-bound kernels are timed with the L2 cache flushed before each repetition (a 256 MiB write, larger
than the 50 MiB L2 of an H100), so a repetition cannot hit the previous one's lines. On the CPU (smoke runs)
the wall clock stands in for events; those numbers mean nothing and the profile says so.

What is timed is the GPU's time alone, as a serving engine that replays CUDA graphs sees it. Launching one
decode call from Python cost the H200 machine's host 0.17 to 0.74 ms (median 0.37 ms, kernels/bench.py,
2026-11-26), more than a small decode kernel runs. Timed naively, the GPU idles between the start event and the
kernel while the host is still launching, and that host time and its jitter land in the measurement: the first
H200 profile's decode fits missed by 25 to 28% (held-out MAPE) for that reason. So before each repetition the GPU is kept busy
(``torch.cuda._sleep``) for twice the host's measured launch time: the start event, the kernels and the end
event are all queued before the GPU reaches them, and the events bracket GPU work only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

L2_FLUSH_BYTES = 256 * 2**20
COVER_MARGIN_S = 50e-6  # GPU busy time queued ahead of a repetition beyond twice the host's launch time
TIMING_METHOD = (
    "CUDA events around each call, after an L2 flush and a GPU sleep that covers the host's launch time: "
    "GPU time only, as under CUDA graphs"
)


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
        self._sleep_cycles_per_s: float | None = None  # measured on first use
        self._cover_cycles = 0

    def time(self, fn: Callable[[], object], flush_l2: bool = True) -> Timing:
        for _ in range(self.warmup):
            fn()
        self._sync()
        self._cover_cycles = self._cover(fn)
        estimate_s = self._one(fn, flush_l2)  # one timed run sets the repetition count
        reps = int(np.clip(self.target_s / max(estimate_s, 1e-7), self.min_reps, self.max_reps))
        samples = np.array(self._many(fn, reps, flush_l2))
        p10, median, p90 = np.percentile(samples, [10, 50, 90])
        return Timing(float(median), float(p10), float(p90), reps)

    def host_launch_s(self, fn: Callable[[], object], tries: int = 3) -> float:
        """The host's time to queue ``fn`` (the longest of ``tries``; the GPU drains between tries)."""
        worst = 0.0
        for _ in range(tries):
            self._sync()
            start = time.perf_counter()
            fn()
            worst = max(worst, time.perf_counter() - start)
        self._sync()
        return worst

    def _cover(self, fn: Callable[[], object]) -> int:
        """GPU sleep cycles to queue ahead of each repetition so the host's launch is hidden (0 on CPU)."""
        if not self._cuda:
            return 0
        if self._sleep_cycles_per_s is None:
            self._sleep_cycles_per_s = self._measure_sleep_rate()
        return int((2 * self.host_launch_s(fn) + COVER_MARGIN_S) * self._sleep_cycles_per_s)

    def _measure_sleep_rate(self) -> float:
        cuda, cycles = self.torch.cuda, 2_000_000
        cuda._sleep(cycles)  # warm-up: the first call loads the kernel
        start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
        start.record()
        cuda._sleep(cycles)
        end.record()
        cuda.synchronize()
        return cycles / (start.elapsed_time(end) * 1e-3)

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
            if self._cover_cycles:
                cuda._sleep(self._cover_cycles)
            start.record()
            fn()
            end.record()
        cuda.synchronize()
        return [start.elapsed_time(end) * 1e-3 for start, end in zip(starts, ends)]  # ms -> s

    def _sync(self) -> None:
        if self._cuda:
            self.torch.cuda.synchronize()
