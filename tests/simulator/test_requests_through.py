"""Decode windows through finishes on the per-request path (schedulers/requests_through.py: vattention,
contiguous-growth) change no result: with nothing waiting, a window that runs past requests' finishes gives the
same request times, summary and timeline, bit for bit, as stepping one step per event (DESIGN §7b)."""

from __future__ import annotations

import dataclasses

import pytest
from simtools import KV_BYTES_PER_TOKEN, make_trace
from test_cohort import assert_same_run
from test_cohort_through import assert_windows_through_equal_stepping, count_windows

from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.schedulers.requests_through import RequestsThroughMixin

ROOMY_KV = 20_000 * KV_BYTES_PER_TOKEN  # light load: the queue is mostly empty, so windows run through

CASES = {
    "vattention": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=ROOMY_KV, allocator="vattention"),
    "vattention-64KiB": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=ROOMY_KV, allocator="vattention:page_size=64KiB"),
    "vattention-64KiB-synchronous": SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=ROOMY_KV, allocator="vattention:page_size=64KiB,mapping=synchronous"
    ),
    "vattention-no-reuse": SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=ROOMY_KV, allocator="vattention:page_size=128KiB,reuse_pages=false"
    ),
    "contiguous-growth": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=ROOMY_KV, allocator="contiguous-growth"),
    "orca-vattention": SimConfig(
        kv_capacity_bytes=ROOMY_KV, scheduler="orca", allocator="vattention:page_size=64KiB"
    ),
    "2-replicas-least-outstanding": SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=ROOMY_KV, num_replicas=2, router="least_outstanding", allocator="vattention"
    ),
    "tight": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=3000 * KV_BYTES_PER_TOKEN, allocator="vattention:page_size=64KiB"),
}


@pytest.fixture
def through_windows(monkeypatch):
    return count_windows(monkeypatch, RequestsThroughMixin, "_plan_requests_through")


@pytest.mark.parametrize("case", list(CASES))
def test_windows_through_finishes_equal_stepping(case, through_windows):
    assert_windows_through_equal_stepping(CASES[case], through_windows)


def test_requests_finishing_at_one_step_free_their_buffers_in_stepping_order(through_windows):
    """A and B finish at the same step inside C's window; vAttention hands the last freed buffer to the next
    request (D), whose mapping (synchronous: on its step) depends on which buffer it gets: B's holds the 4
    groups of 256 tokens D's prompt needs, A's only 1."""
    trace = make_trace([(0.0, 100, 50), (0.0, 900, 50), (0.0, 50, 1000), (2.0, 1000, 20)])  # D: while C runs
    config = SimConfig(scheduler="vllm-v0", allocator="vattention:mapping=synchronous")
    stepped = simulate(dataclasses.replace(config, fast_forward=False), trace)
    fast = simulate(config, trace)
    assert through_windows["windows"] >= 1
    assert_same_run(fast, stepped)
