"""The engine's host time (simulator/engine_overhead.py): closed forms per overlap rule, multi-step scheduling's
windows, and fast-forward equal to stepping with the host time on (DESIGN §5 "engine", §7b)."""

from __future__ import annotations

import dataclasses

import pytest
from simtools import KV_BYTES_PER_TOKEN, make_trace, random_trace
from test_fast_forward import SMALL_KV, assert_same_run

from kvsim.errors import KvsimError
from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.cost.constant import ConstantCostModel
from kvsim.simulator.engine_overhead import ENGINE_OVERHEADS, VLLM_V0, VLLM_V1, Param
from kvsim.simulator.specs import GpuSpec, ModelSpec

BIG_KV = 100_000 * KV_BYTES_PER_TOKEN


def lone(config: SimConfig, step_s: float, prompt: int = 100, output: int = 6, arrival_s: float = 1.0):
    """A lone request through ``config`` on a constant GPU step: its (first token, finish) times."""
    result = simulate(config, make_trace([(arrival_s, prompt, output)]), cost_model=ConstantCostModel(step_s))
    return float(result.recorder.first_token_s[0]), float(result.recorder.finish_s[0])


def test_serial_host_time_adds_to_every_step_and_request_s_to_the_arrival():
    config = SimConfig(scheduler="vllm-v0", kv_capacity_bytes=BIG_KV, engine_overhead=True)
    first, finish = lone(config, 0.01, prompt=100, output=6)
    v0 = VLLM_V0
    assert first == pytest.approx(1.0 + v0.request_s.value + 0.01 + v0.host_s(1, 100), rel=1e-12)
    assert (finish - first) / 5 == pytest.approx(0.01 + v0.host_s(1, 0), rel=1e-12)
    # Off: the GPU's step alone
    plain_first, plain_finish = lone(dataclasses.replace(config, engine_overhead=False), 0.01)
    assert plain_first == pytest.approx(1.01) and plain_finish - plain_first == pytest.approx(0.05)


@pytest.mark.parametrize("gpu_step_s", [0.01, 1e-5])
def test_async_scheduling_hides_host_time_behind_the_gpu_after_the_first_step(gpu_step_s):
    config = SimConfig(scheduler="vllm", kv_capacity_bytes=BIG_KV, engine_overhead=True)
    first, finish = lone(config, gpu_step_s, prompt=100, output=6)
    v1 = VLLM_V1
    # The first step follows an idle replica: nothing to hide behind.
    assert first == pytest.approx(1.0 + v1.request_s.value + gpu_step_s + v1.host_s(1, 100), rel=1e-12)
    # Then max(GPU, host): the GPU's 10 ms hides the host's ~1 ms; a 10 us GPU step waits for the host.
    assert (finish - first) / 5 == pytest.approx(max(gpu_step_s, v1.host_s(1, 0)), rel=1e-12)
    serial_first, serial_finish = lone(dataclasses.replace(config, async_scheduling=False), gpu_step_s)
    assert (serial_finish - serial_first) / 5 == pytest.approx(gpu_step_s + v1.host_s(1, 0), rel=1e-12)


def test_multi_step_window_pays_scheduling_once_and_finishes_at_the_window_end():
    # output 6: 5 decode steps, computed as 2 windows of 4 (8 steps); the 3 after the last token are dropped
    config = SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=BIG_KV, engine_overhead=True, num_scheduler_steps=4
    )
    first, finish = lone(config, 0.01, prompt=100, output=6)
    v0 = VLLM_V0
    window_s = 4 * 0.01 + v0.host_s(1, 0) + 3 * v0.inner_host_s(1)
    assert finish - first == pytest.approx(2 * window_s, rel=1e-12)
    # Without host time the cost is the dropped steps alone: 8 steps for 5 tokens
    first, finish = lone(dataclasses.replace(config, engine_overhead=False), 0.01, output=6)
    assert finish - first == pytest.approx(8 * 0.01)
    first, finish = lone(dataclasses.replace(config, engine_overhead=False), 0.01, output=5)
    assert finish - first == pytest.approx(4 * 0.01)  # 4 tokens: one window, nothing dropped


def test_multi_step_new_request_waits_for_the_window_end():
    # A decodes from its prefill at [0, 0.01); its windows of 4 steps end at 0.05, 0.09, ...; B arrives at
    # 0.062, inside the second window, and is prefilled only when that window ends, at 0.09.
    config = SimConfig(scheduler="vllm-v0", kv_capacity_bytes=BIG_KV, num_scheduler_steps=4)
    trace = make_trace([(0.0, 10, 40), (0.062, 10, 5)])
    result = simulate(config, trace, cost_model=ConstantCostModel(0.01))
    assert float(result.recorder.first_scheduled_s[1]) == pytest.approx(0.09)
    single = simulate(
        dataclasses.replace(config, num_scheduler_steps=1), trace, cost_model=ConstantCostModel(0.01)
    )
    assert float(single.recorder.first_scheduled_s[1]) == pytest.approx(0.07)  # the next step's start


FF_CASES = {
    "vllm-v0": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, engine_overhead=True),
    "vllm-v0-multi-step": SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, engine_overhead=True, num_scheduler_steps=8
    ),
    "vllm-v0-multi-step-roomy": SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=BIG_KV, engine_overhead=True, num_scheduler_steps=10
    ),
    "vllm-v0-multi-step-no-host": SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, engine_overhead=False, num_scheduler_steps=4
    ),
    "vllm-v1-async": SimConfig(scheduler="vllm", kv_capacity_bytes=SMALL_KV, engine_overhead=True),
    "vllm-v1-roomy-async": SimConfig(scheduler="vllm", kv_capacity_bytes=BIG_KV, engine_overhead=True),
    "vllm-v1-serial": SimConfig(
        scheduler="vllm", kv_capacity_bytes=SMALL_KV, engine_overhead=True, async_scheduling=False
    ),
    "tgi": SimConfig(scheduler="tgi", kv_capacity_bytes=SMALL_KV, engine_overhead=True),
    "vllm-v0-2-replicas": SimConfig(
        scheduler="vllm-v0",
        kv_capacity_bytes=SMALL_KV,
        engine_overhead=True,
        num_replicas=2,
        num_scheduler_steps=5,
    ),
}


@pytest.mark.parametrize("case", list(FF_CASES))
@pytest.mark.parametrize("rate_per_s", [0.5, 8.0])
def test_fast_forward_equals_stepping_with_engine_overhead(case, rate_per_s):
    # The roofline cost model: decode steps grow with the context, so windows are timed as arrays and lists.
    trace = random_trace(60, seed=7, rate_per_s=rate_per_s)
    config = FF_CASES[case]
    fast = simulate(config, trace)
    slow = simulate(dataclasses.replace(config, fast_forward=False), trace)
    assert fast.summary["num_finished"] == len(trace)
    assert_same_run(fast, slow)
    # and the host time is there: the run differs from one with the cost model's 1 ms placeholder instead (it may
    # be faster: async scheduling hides host time, multi-step amortizes it); multi-step alone is slower than one step
    if config.engine_overhead:
        off = dataclasses.replace(config, engine_overhead=False, async_scheduling=None)
        assert (
            fast.summary["latency"]["e2e_s"]["mean"]
            != simulate(off, trace).summary["latency"]["e2e_s"]["mean"]
        )
    else:
        off = dataclasses.replace(config, num_scheduler_steps=1)
        assert (
            fast.summary["latency"]["e2e_s"]["mean"]
            > simulate(off, trace).summary["latency"]["e2e_s"]["mean"]
        )


def test_gpu_time_only_drops_the_placeholder_and_nothing_else():
    from kvsim.simulator.batch import Batch
    from kvsim.simulator.cost import make_cost_model
    from kvsim.simulator.engine_overhead import gpu_time_only

    cost = make_cost_model(ModelSpec.from_name("llama-3-8b"), GpuSpec.from_name("h100-sxm"))
    gpu = gpu_time_only(cost)
    batch = Batch(num_decode_seqs=8, decode_kv_tokens=8000, decode_kv_blocks=504)
    assert cost.step_time(batch).overhead_s == pytest.approx(1e-3)  # the roofline's assumed 1 ms
    assert gpu.step_time(batch).overhead_s == 0.0
    assert cost.step_time(batch).total_s - gpu.step_time(batch).total_s == pytest.approx(1e-3)
    assert "engine model" in gpu.description


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scheduler": "vllm", "num_scheduler_steps": 4}, "multi-step scheduling is vLLM v0.6's"),
        ({"scheduler": "vllm-v0", "num_scheduler_steps": 4, "enable_chunked_prefill": True}, "chunked"),
        ({"scheduler": "vllm-v0", "num_scheduler_steps": 0}, "num_scheduler_steps must be >= 1"),
        ({"scheduler": "vllm", "async_scheduling": True, "engine_overhead": False}, "needs engine_overhead"),
        ({"scheduler": "vllm-v0", "engine_overhead": True, "async_scheduling": True}, "vLLM v1's"),
        ({"scheduler": "orca", "engine_overhead": True}, "no engine host-time model for scheduler 'orca'"),
    ],
)
def test_engine_options_refused_where_the_engine_has_none(options, message):
    with pytest.raises(KvsimError, match=message):
        SimConfig(**options)


def test_every_parameter_has_a_source_and_a_range_that_holds_it():
    for engine, overhead in ENGINE_OVERHEADS.items():
        params = overhead.params()
        assert set(params) == {"step_s", "per_seq_s", "per_prefill_token_s", "inner_step_s", "request_s"}
        for name, p in params.items():
            assert p.low <= p.value <= p.high, (engine, name)
            assert p.why, (engine, name)
    with pytest.raises(KvsimError, match="source"):
        Param(1.0, "guessed", 0.0, 2.0, "no")
    with pytest.raises(KvsimError, match="low <= value <= high"):
        Param(3.0, "assumed", 0.0, 2.0, "out of its range")


def test_config_json_records_the_engine_terms_with_their_sources():
    config = SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=BIG_KV, engine_overhead=True, num_scheduler_steps=10
    )
    result = simulate(config, random_trace(5, seed=1))
    record = result.resolved["engine_overhead"]
    assert record["engine"] == "vllm-v0" and record["num_scheduler_steps"] == 10
    assert record["params"]["step_s"]["source"] == VLLM_V0.step_s.source
    assert "num_scheduler_steps 10" in result.summary["cost_model"]["description"]
    assert (
        simulate(dataclasses.replace(config, engine_overhead=False), random_trace(5, seed=1)).resolved[
            "engine_overhead"
        ]
        is None
    )


def test_an_uncertainty_case_sets_a_parameter_for_the_run():
    from kvsim.simulator.engine_overhead import host_time_for, uncertain_terms

    config = SimConfig(scheduler="vllm-v0", kv_capacity_bytes=BIG_KV, engine_overhead=True)
    names = [term.name for term in uncertain_terms(config)]
    assert "engine.vllm_v0.step_s" in names and "engine.vllm_v0.inner_step_s" not in names  # no multi-step
    assert uncertain_terms(dataclasses.replace(config, engine_overhead=False)) == []
    if "term_values" not in {f.name for f in dataclasses.fields(SimConfig)}:
        pytest.skip("SimConfig has no term_values yet (issue 23)")
    case = dataclasses.replace(config, term_values="engine.vllm_v0.step_s=0.005")
    assert host_time_for(case).overhead.step_s.value == 0.005
    assert host_time_for(config).overhead.step_s.value == VLLM_V0.step_s.value
