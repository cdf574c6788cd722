"""calibrate/timing.py: the GPU's time alone, not the host's launch. Runs on the GPU machine in the GPU script."""

from __future__ import annotations

import time

import pytest

from kvsim.calibrate.timing import Timer


def _busy_host(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_cpu_timer_is_the_wall_clock_and_queues_no_cover():
    timer = Timer("cpu", target_s=0.0, min_reps=3, max_reps=3, warmup=1)
    timing = timer.time(lambda: _busy_host(2e-3))
    assert timing.reps == 3
    assert 2e-3 <= timing.p10_s <= timing.median_s <= timing.p90_s
    assert timer._cover_cycles == 0
    assert timer.host_launch_s(lambda: _busy_host(1e-3)) >= 1e-3


@pytest.mark.gpu
def test_gpu_timer_measures_the_gpu_not_the_hosts_launch():
    """400 us of host work before one tiny kernel: timed naively (start event, host work, kernel, end event)
    that is ~300 us even behind the L2 flush; the cover queued ahead of each repetition hides it."""
    import torch

    x = torch.zeros(1024, device="cuda")

    def fn() -> None:
        _busy_host(400e-6)
        x.add_(1.0)

    timing = Timer("cuda", target_s=0.0, min_reps=7, max_reps=7, warmup=2).time(fn)
    assert timing.median_s < 50e-6, timing


@pytest.mark.gpu
def test_gpu_timer_still_times_long_kernels_whole():
    import torch

    a = torch.randn(4096, 4096, device="cuda", dtype=torch.float16)
    timer = Timer("cuda", target_s=0.0, min_reps=5, max_reps=5, warmup=2)
    one = timer.time(lambda: a @ a).median_s
    four = timer.time(lambda: [a @ a for _ in range(4)]).median_s
    assert 3.2 < four / one < 4.8, (one, four)
