"""A lone replica pulls its arrivals (``ArrivalSource.release_until``) instead of being handed them by the SimPy
arrival process; both give the same run, bit for bit: request times, summary and timeline (DESIGN §7b)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
from simtools import KV_BYTES_PER_TOKEN, random_trace
from test_fast_forward import assert_same_run

from kvsim.simulator import SimConfig, simulate
from kvsim.simulator import run as run_module
from kvsim.simulator.cost.constant import ConstantCostModel
from kvsim.simulator.engine import ArrivalSource
from kvsim.traces.request import Provenance, Trace

SMALL_KV = 1500 * KV_BYTES_PER_TOKEN  # preemption under the random trace below
ROOMY_KV = 20_000 * KV_BYTES_PER_TOKEN  # a mostly empty queue: windows through finishes, cut at arrivals

CASES = {
    "vllm": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV),
    "vllm-roomy": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=ROOMY_KV),
    "vllm-swap": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, preemption_mode="swap", swap_space_gib=1.0),
    "vllm-chunked": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, enable_chunked_prefill=True),
    "vllm-watermark": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, watermark=0.05),
    "orca-reserved-pow2": SimConfig(kv_capacity_bytes=SMALL_KV, scheduler="orca", allocator="reserved:pow2"),
    "static": SimConfig(kv_capacity_bytes=SMALL_KV, scheduler="static", max_num_seqs=8),
    "tgi": SimConfig(kv_capacity_bytes=SMALL_KV, scheduler="tgi"),
    "vllm-vattention-overlapped": SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=SMALL_KV, allocator="vattention:page_size=64KiB,mapping=overlapped"
    ),
    "vllm-rejections": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, max_model_len=300),  # some never fit
}


@pytest.fixture
def sources(monkeypatch):
    """simulate() with the arrival source forced into ``pull`` mode (None: its own choice); the sources made."""
    made: list[ArrivalSource] = []

    def run(config, trace, *, pull, **kwargs):
        class Source(ArrivalSource):
            __init__ = functools.partialmethod(ArrivalSource.__init__, pull=pull)

        def make(*args, **kw):
            source = Source(*args, **kw)
            made.append(source)
            return source

        monkeypatch.setattr(run_module, "ArrivalSource", make)
        return simulate(config, trace, **kwargs)

    return run, made


@pytest.mark.parametrize("case", list(CASES))
def test_a_lone_replica_pulling_its_arrivals_equals_the_arrival_process(case, sources):
    run, made = sources
    trace = random_trace(120, seed=5, rate_per_s=8.0)
    pulled = run(CASES[case], trace, pull=None)
    pushed = run(CASES[case], trace, pull=False)
    assert [source.pulled for source in made] == [True, False]
    assert pulled.summary["num_finished"] > 0
    if case == "vllm-rejections":
        assert pulled.summary["num_rejected"] > 0
    assert_same_run(pulled, pushed)


def test_arrivals_on_step_ends_are_released_before_the_step_completes(sources):
    """A constant step time and arrivals on the step grid: every arrival lands exactly on a step end, where
    the arrival process releases it before the replica's step completes; the pull must do the same."""
    run, made = sources
    num = 80
    rng = np.random.default_rng(3)
    trace = Trace(
        request_id=np.arange(num, dtype=np.int64),
        arrival_s=np.cumsum(rng.integers(0, 6, num) * 0.25),  # gaps of 0: simultaneous arrivals too
        num_prompt_tokens=rng.integers(1, 64, num),
        num_output_tokens=rng.integers(2, 40, num),
        provenance=Provenance(source="step-grid arrivals"),
    )
    for config in (SimConfig(scheduler="vllm-v0", kv_capacity_bytes=ROOMY_KV), SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV // 8)):
        for fast_forward in (True, False):
            config = dataclasses.replace(config, fast_forward=fast_forward)
            pulled = run(config, trace, pull=None, cost_model=ConstantCostModel(0.25))
            pushed = run(config, trace, pull=False, cost_model=ConstantCostModel(0.25))
            assert pulled.summary["num_finished"] == num
            assert_same_run(pulled, pushed)
    assert [source.pulled for source in made] == [True, False] * 4


def test_only_a_lone_replica_pulls():
    trace = random_trace(5)
    several = simulate(SimConfig(scheduler="vllm-v0", num_replicas=2), trace)
    assert several.summary["num_finished"] == 5
    with pytest.raises(AssertionError, match="lone replica"):
        ArrivalSource(None, trace, [None, None], None, router="round_robin", rejection_reason=None, pull=True)
