"""Decode windows through finishes (schedulers/cohort_through.py) change no result: with nothing waiting, a
window that runs past members' finishes gives the same request times, summary and timeline (with a prefix
cache, its counters too), bit for bit, as stepping one step per event and as the per-request path; several replicas behind the least-outstanding router
see those finishes before the next arrival, as stepping shows them (DESIGN §7b)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simtools import KV_BYTES_PER_TOKEN, random_trace
from test_cohort import BlockCostModel, assert_same_run, run_both

from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.cost.constant import ConstantCostModel
from kvsim.simulator.schedulers.cohort_through import CohortThroughMixin
from kvsim.traces.request import Provenance, Trace

ROOMY_KV = 20_000 * KV_BYTES_PER_TOKEN  # light load: the queue is mostly empty, so windows run through

CASES = {
    "vllm-paged": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=ROOMY_KV),
    "vllm-block-8": SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=ROOMY_KV, allocator="paged:block_size=8"
    ),
    "vllm-reserved-max": SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=4 * ROOMY_KV, allocator="reserved:max"
    ),
    "vllm-reserved-pow2": SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=4 * ROOMY_KV, allocator="reserved:pow2"
    ),
    "vllm-reserved-oracle": SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=ROOMY_KV, allocator="reserved:oracle"
    ),
    "orca-paged": SimConfig(kv_capacity_bytes=ROOMY_KV, scheduler="orca"),
    "orca-reserved-max": SimConfig(
        kv_capacity_bytes=4 * ROOMY_KV, scheduler="orca", allocator="reserved:max"
    ),
    "2-replicas-least-outstanding": SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=ROOMY_KV, num_replicas=2, router="least_outstanding"
    ),
    "3-replicas-round-robin": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=ROOMY_KV, num_replicas=3),
    "tight": SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=2500 * KV_BYTES_PER_TOKEN
    ),  # memory bounds cut the windows
    # vLLM v1 (0.34.0) with its defaults: prefix caching over each request's own blocks (the counted cache),
    # chunked prefill. Memory cycles (the trace needs about twice the KV), so finished requests' blocks are
    # cached and the windows' growth evicts them: the timeline's prefix-cache counters move inside windows.
    "v1-prefix-caching": SimConfig(scheduler="vllm", kv_capacity_bytes=ROOMY_KV),
    "v1-prefix-caching-block-8": SimConfig(
        scheduler="vllm", kv_capacity_bytes=ROOMY_KV, allocator="paged:block_size=8"
    ),
    "v1-prefix-caching-tight": SimConfig(scheduler="vllm", kv_capacity_bytes=2500 * KV_BYTES_PER_TOKEN),
    "v1-prefix-caching-2-replicas": SimConfig(
        scheduler="vllm", kv_capacity_bytes=ROOMY_KV, num_replicas=2, router="least_outstanding"
    ),
}


def count_windows(monkeypatch, owner, planner: str) -> dict:
    """Counts the windows ``owner.planner(self, limit)`` plans through at least one finish (it returns their
    length, 0 for none), so that a test cannot pass vacuously."""
    counted = {"windows": 0}
    plan = getattr(owner, planner)

    def counting(self, limit):
        num_steps = plan(self, limit)
        counted["windows"] += bool(num_steps)
        return num_steps

    monkeypatch.setattr(owner, planner, counting)
    return counted


def assert_windows_through_equal_stepping(config: SimConfig, counted: dict) -> None:
    trace = random_trace(150, seed=11, rate_per_s=6.0, max_output=120)
    stepped = simulate(dataclasses.replace(config, fast_forward=False), trace)
    assert counted["windows"] == 0, "stepping plans no window"
    fast = simulate(config, trace)
    assert counted["windows"] > 10, "the case should run windows through finishes"
    assert_same_run(fast, stepped)
    assert fast.summary["num_finished"] == len(trace)


@pytest.fixture
def through_windows(monkeypatch):
    return count_windows(monkeypatch, CohortThroughMixin, "_plan_through")


@pytest.mark.parametrize("case", list(CASES))
def test_windows_through_finishes_equal_stepping(case, through_windows):
    assert_windows_through_equal_stepping(CASES[case], through_windows)


def test_prefix_cache_counters_of_rows_inside_windows_are_their_steps(monkeypatch, through_windows):
    """Inside a window through finishes nothing is admitted, but steps evict cached blocks (the finished
    requests' blocks): a row written for the step after a finish carries the counters as of that step, not as
    of the window's end, and so equals stepping's row."""
    moved = {"rows": 0}
    complete_through = CohortThroughMixin._complete_through

    def watching(self, num_steps, step_ends):
        complete_through(self, num_steps, step_ends)
        at_end = self.allocator.prefix_cache_counts()
        moved["rows"] += sum(row[5] != at_end for row in self.window_rows)

    monkeypatch.setattr(CohortThroughMixin, "_complete_through", watching)
    assert_windows_through_equal_stepping(CASES["v1-prefix-caching"], through_windows)
    assert moved["rows"] > 10, "evictions should move the counters between a window's rows and its end"


@pytest.mark.parametrize(
    "case",
    ["vllm-paged", "vllm-reserved-pow2", "orca-paged", "2-replicas-least-outstanding", "v1-prefix-caching"],
)
def test_windows_through_finishes_equal_the_per_request_path(case, through_windows):
    trace = random_trace(150, seed=12, rate_per_s=6.0, max_output=120)
    fast, slow = run_both(CASES[case], trace, BlockCostModel())
    assert through_windows["windows"] > 10
    assert_same_run(fast, slow)


def test_ties_between_step_ends_and_arrivals_resolve_as_in_stepping(through_windows):
    """A constant step time and arrivals on the step grid: every arrival lands exactly on a step end."""
    num = 80
    rng = np.random.default_rng(3)
    trace = Trace(
        request_id=np.arange(num, dtype=np.int64),
        arrival_s=np.cumsum(rng.integers(1, 6, num) * 0.25),
        num_prompt_tokens=rng.integers(1, 64, num),
        num_output_tokens=rng.integers(2, 40, num),
        provenance=Provenance(source="step-grid arrivals"),
    )
    for options in ({}, {"num_replicas": 2, "router": "least_outstanding"}):
        config = SimConfig(scheduler="vllm-v0", kv_capacity_bytes=ROOMY_KV, **options)
        fast = simulate(config, trace, cost_model=ConstantCostModel(0.25))
        stepped = simulate(
            dataclasses.replace(config, fast_forward=False), trace, cost_model=ConstantCostModel(0.25)
        )
        assert_same_run(fast, stepped)
    assert through_windows["windows"] > 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    num=st.integers(2, 40),
    gap_s=st.sampled_from([0.02, 0.2, 1.0]),
    options=st.sampled_from(
        [
            {},
            {"scheduler": "vllm"},
            {"scheduler": "vllm", "allocator": "paged:enable_prefix_caching=false"},
            {"scheduler": "vllm", "allocator": "paged:block_size=4"},
            {"allocator": "paged:block_size=4"},
            {"allocator": "reserved:pow2"},
            {"scheduler": "orca"},
            {"num_replicas": 2, "router": "least_outstanding"},
        ]
    ),
    capacity_tokens=st.integers(600, 20_000),
)
def test_windows_through_finishes_equal_stepping_property(seed, num, gap_s, options, capacity_tokens):
    trace = random_trace(num, seed=seed, rate_per_s=1.0 / gap_s, max_prompt=300, max_output=150)
    config = SimConfig(
        kv_capacity_bytes=capacity_tokens * KV_BYTES_PER_TOKEN, **{"scheduler": "vllm-v0", **options}
    )
    fast = simulate(config, trace, cost_model=BlockCostModel())
    stepped = simulate(dataclasses.replace(config, fast_forward=False), trace, cost_model=BlockCostModel())
    assert_same_run(fast, stepped)
    assert fast.summary["num_finished"] + fast.summary["num_rejected"] == num
