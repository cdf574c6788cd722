"""The decode cohort (counted paged allocator + O(block_size) decode steps; reserved regions by counters)
gives exactly what the per-request path gives (over ``PagedAllocator``, or the reserved allocator with its
cohort turned off): the same summary, request times and timeline, bit for bit, under preemption by recompute
and swap, chunked prefill, several replicas, the vllm and orca schedulers (DESIGN §7b)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simtools import KV_BYTES_PER_TOKEN, random_trace

from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.allocators import PagedAllocator, make_allocator
from kvsim.simulator.allocators.paged_counted import CountedPagedAllocator
from kvsim.simulator.batch import Batch, StepTime
from kvsim.simulator.specs import ModelSpec
from kvsim.traces.request import Trace

SMALL_KV = 1500 * KV_BYTES_PER_TOKEN  # tight: forces preemption under the random traces below


class BlockCostModel:
    """A step costs per sequence, per KV token and per KV block, so a wrong block count shows in the times
    (the roofline has no per-block term)."""

    source = "test"
    description = "per-token and per-block decode cost (tests)"

    def step_time(self, batch: Batch) -> StepTime:
        return StepTime(
            attn_decode_s=self._decode_s(
                batch.num_decode_seqs, batch.decode_kv_tokens, batch.decode_kv_blocks
            ),
            overhead_s=1e-3 + 1e-5 * sum(batch.prefill_q_lens),
            allocator_s=batch.allocator_overhead_s,
        )

    def decode_step_times(self, batch: Batch, num_steps: int, decode_kv_blocks=None) -> np.ndarray:
        seqs = batch.num_decode_seqs
        blocks = [batch.decode_kv_blocks] * num_steps if decode_kv_blocks is None else list(decode_kv_blocks)
        return np.array(
            [
                StepTime(
                    attn_decode_s=self._decode_s(seqs, batch.decode_kv_tokens + i * seqs, blocks[i]),
                    overhead_s=1e-3,
                    allocator_s=batch.allocator_overhead_s,
                ).total_s
                for i in range(num_steps)
            ]
        )

    @staticmethod
    def _decode_s(num_seqs: int, num_tokens: int, num_blocks: int) -> float:
        return 1e-4 * num_seqs + 1e-7 * num_tokens + 3e-6 * num_blocks


def run_both(config: SimConfig, trace: Trace, cost_model=None):
    """(cohort run, per-request run over block ids)."""
    fast = simulate(config, trace, cost_model=cost_model)
    model = ModelSpec.from_name(config.model)

    def with_block_ids():  # (or, for reserved, with the cohort turned off)
        alloc = make_allocator(
            config.allocator,
            model=model,
            tp=config.tp,
            capacity_bytes=config.kv_capacity_bytes,
            swap_space_bytes=config.swap_space_bytes,
        )
        alloc.keeps_cohort = False
        resolve = getattr(
            alloc, "resolve_for_scheduler", None
        )  # paged: prefix caching as the scheduler has it
        if resolve is not None:
            resolve(config.scheduler)
        return alloc

    slow = simulate(config, trace, allocator_factory=with_block_ids, cost_model=cost_model)
    return fast, slow


def assert_same_run(a, b) -> None:
    assert a.summary == b.summary
    for name in ("replica", "first_scheduled_s", "first_token_s", "finish_s", "num_preemptions"):
        np.testing.assert_array_equal(getattr(a.recorder, name), getattr(b.recorder, name))
    assert a.recorder.timeline_rows() == b.recorder.timeline_rows()


CASES = {
    "recompute": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV),
    "swap": SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, preemption_mode="swap", swap_space_gib=1.0
    ),
    "chunked": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, enable_chunked_prefill=True),
    "2-replicas": SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, num_replicas=2, router="least_outstanding"
    ),
    "block-32": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, allocator="paged:block_size=32"),
    "stepping": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, fast_forward=False),
    "roomy": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=40 * SMALL_KV, max_num_seqs=64),
    "reserved-pow2": SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=4 * SMALL_KV, allocator="reserved:pow2"
    ),
    "reserved-max-swap": SimConfig(
        scheduler="vllm-v0",
        kv_capacity_bytes=4 * SMALL_KV,
        allocator="reserved:max",
        preemption_mode="swap",
        swap_space_gib=1.0,
    ),
    "orca-oracle": SimConfig(kv_capacity_bytes=SMALL_KV, scheduler="orca", allocator="reserved:oracle"),
    "orca-paged": SimConfig(kv_capacity_bytes=SMALL_KV, scheduler="orca"),
}


@pytest.mark.parametrize("cost", ["roofline", "per-block"])
@pytest.mark.parametrize("case", list(CASES))
def test_cohort_equals_per_request_path(case, cost):
    trace = random_trace(120, seed=5, rate_per_s=10.0)
    fast, slow = run_both(CASES[case], trace, BlockCostModel() if cost == "per-block" else None)
    assert_same_run(fast, slow)
    assert fast.summary["num_finished"] == len(trace)
    if cost == "roofline" and case in ("recompute", "swap", "chunked", "block-32", "stepping"):
        assert fast.summary["num_preemptions"] > 0, "the case should exercise preemption"


def test_run_picks_the_counted_allocator_only_where_it_is_exact():
    from kvsim.simulator.run import _allocator_factory

    model = ModelSpec.from_name("llama-2-7b")
    build = _allocator_factory(SimConfig(scheduler="vllm-v0"), model, SMALL_KV, None, True)
    assert isinstance(build(), CountedPagedAllocator)
    assert isinstance(
        _allocator_factory(SimConfig(scheduler="vllm-v0"), model, SMALL_KV, None, False)(), PagedAllocator
    )
    caching = SimConfig(scheduler="vllm-v0", allocator="paged:enable_prefix_caching=true")
    assert isinstance(_allocator_factory(caching, model, SMALL_KV, None, True)(), PagedAllocator)


CONFIGS = st.sampled_from(
    [
        # vLLM v1 (0.34.0): the counted twins (prefix cache over own blocks, or none) against block ids
        {"scheduler": "vllm"},
        {"scheduler": "vllm", "max_num_batched_tokens": 64, "max_num_seqs": 32, "long_prefill_token_threshold": 24},
        {"scheduler": "vllm", "enable_chunked_prefill": False, "max_num_batched_tokens": 4096},
        {"scheduler": "vllm", "scheduler_reserve_full_isl": False, "max_num_batched_tokens": 48, "max_num_seqs": 32},
        {"scheduler": "vllm", "allocator": "paged:enable_prefix_caching=false"},
        {
            "scheduler": "vllm",
            "enable_chunked_prefill": False,
            "allocator": "paged:enable_prefix_caching=false",
        },
        {
            "scheduler": "vllm",
            "max_num_batched_tokens": 64,
            "max_num_seqs": 32,
            "long_prefill_token_threshold": 24,
            "allocator": "paged:enable_prefix_caching=false",
        },
        {
            "scheduler": "vllm",
            "max_num_batched_tokens": 48,
            "max_num_seqs": 32,
            "allocator": "paged:block_size=8,enable_prefix_caching=false",
        },
        {},
        {"preemption_mode": "swap", "swap_space_gib": 0.5},
        {"preemption_mode": "swap", "swap_space_gib": 0.001},
        {"enable_chunked_prefill": True, "max_num_batched_tokens": 64, "max_num_seqs": 32},
        {"allocator": "paged:block_size=8", "max_num_seqs": 4},
        {"num_replicas": 2, "router": "least_outstanding"},
        {"fast_forward": False},
        {"allocator": "reserved:pow2"},
        {"allocator": "reserved:oracle", "preemption_mode": "swap", "swap_space_gib": 0.5},
        {"scheduler": "orca", "allocator": "reserved:max"},
        {"scheduler": "orca"},
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    num=st.integers(1, 30),
    gap_s=st.sampled_from([0.005, 0.05, 0.5]),
    options=CONFIGS,
    capacity_tokens=st.integers(300, 4000),
)
def test_cohort_equals_per_request_path_property(seed, num, gap_s, options, capacity_tokens):
    trace = random_trace(num, seed=seed, rate_per_s=1.0 / gap_s, max_prompt=300, max_output=200)
    config = SimConfig(
        kv_capacity_bytes=capacity_tokens * KV_BYTES_PER_TOKEN, **{"scheduler": "vllm-v0", **options}
    )
    fast, slow = run_both(config, trace, BlockCostModel())
    assert_same_run(fast, slow)
    assert fast.summary["num_finished"] + fast.summary["num_rejected"] == num


class CheckedCountedAllocator(CountedPagedAllocator):
    """Checks every invariant after each cohort step and each leave (the scheduler's promises included:
    members leave before their final length)."""

    def cohort_grow(self, num_steps: int) -> bool:
        grown = super().cohort_grow(num_steps)
        self.check_invariants()
        return grown

    def cohort_leave(self, seq_id: int) -> int:
        tokens = super().cohort_leave(seq_id)
        self.check_invariants()
        return tokens


@pytest.mark.parametrize("case", ["recompute", "swap", "chunked"])
def test_the_cohort_keeps_every_allocator_invariant_during_a_run(case):
    config = CASES[case]
    model = ModelSpec.from_name(config.model)

    def checked():
        return CheckedCountedAllocator(
            make_allocator("paged", model=model, tp=1, capacity_bytes=config.kv_capacity_bytes).config,
            model=model,
            tp=1,
            capacity_bytes=config.kv_capacity_bytes,
            swap_space_bytes=config.swap_space_bytes,
        )

    trace = random_trace(60, seed=7, rate_per_s=10.0)
    result = simulate(config, trace, allocator_factory=checked)
    assert result.summary == simulate(config, trace).summary
