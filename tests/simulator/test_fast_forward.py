"""Fast-forwarding decode windows gives exactly what stepping one step per event gives (DESIGN §7b).

The roofline cost model is used on purpose: its decode step time grows with the context, so windows are timed
by ``decode_step_times`` while stepping uses one-step calls, and the floats must still agree bit for bit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from simtools import KV_BYTES_PER_TOKEN, random_trace

from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.recorder import PREFIX_CACHE_COLUMNS
from kvsim.traces.request import Trace

SMALL_KV = 1500 * KV_BYTES_PER_TOKEN  # tight: forces preemption under the random trace below

CASES = {
    "vllm": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV),
    "vllm-swap": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, preemption_mode="swap", swap_space_gib=1.0),
    "vllm-chunked": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, enable_chunked_prefill=True),
    "vllm-2-replicas-least-outstanding": SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=SMALL_KV, num_replicas=2, router="least_outstanding"
    ),
    "vllm-block-32": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, allocator="paged:block_size=32"),
    "orca": SimConfig(kv_capacity_bytes=SMALL_KV, scheduler="orca"),
    "static": SimConfig(kv_capacity_bytes=SMALL_KV, scheduler="static", max_num_seqs=8),
    "orca-reserved-pow2": SimConfig(kv_capacity_bytes=SMALL_KV, scheduler="orca", allocator="reserved:pow2"),
    "static-reserved-max": SimConfig(
        kv_capacity_bytes=4 * SMALL_KV, scheduler="static", allocator="reserved:max"
    ),
    "vllm-paged-eviction": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, allocator="paged:eviction_budget_blocks=5"),
    "vllm-vattention": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, allocator="vattention:page_size=64KiB"),
    "vllm-vattention-overlapped": SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=SMALL_KV, allocator="vattention:page_size=64KiB,mapping=overlapped"
    ),
}


def assert_same_run(a, b) -> None:
    assert a.summary == b.summary
    for name in ("replica", "first_scheduled_s", "first_token_s", "finish_s", "num_preemptions"):
        np.testing.assert_array_equal(getattr(a.recorder, name), getattr(b.recorder, name))
    assert a.recorder.timeline_rows() == b.recorder.timeline_rows()


@pytest.mark.parametrize("case", list(CASES))
def test_fast_forward_equals_stepping(case):
    trace = random_trace(80, seed=3, rate_per_s=8.0)
    config = CASES[case]
    fast = simulate(config, trace)
    slow = simulate(dataclasses.replace(config, fast_forward=False), trace)
    assert fast.summary["num_finished"] == len(trace)
    assert_same_run(fast, slow)
    # The windows really were longer than one step.
    assert fast.recorder.num_steps == slow.recorder.num_steps


def test_fast_forward_equals_stepping_with_parallel_samples():
    base = random_trace(60, seed=5, rate_per_s=4.0)
    n = np.where(np.arange(len(base)) % 3 == 0, 3, 1)
    trace = Trace(
        base.request_id, base.arrival_s, base.num_prompt_tokens, base.num_output_tokens, base.provenance, n=n
    )
    config = SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV)
    fast = simulate(config, trace)
    slow = simulate(dataclasses.replace(config, fast_forward=False), trace)
    assert fast.summary["num_finished"] == len(trace)
    assert_same_run(fast, slow)


def prefix_sharing_trace(num_requests: int, *, seed: int) -> Trace:
    """A random trace whose prompts (up to 1,400 tokens) start with one of three shared 512-token prefixes."""
    base = random_trace(num_requests, seed=seed, rate_per_s=8.0, max_prompt=1400)
    rng = np.random.default_rng(seed)
    hashes = [
        tuple(int(rng.integers(0, 3)) * 10 + b for b in range(-(-int(p) // 512)))
        for p in base.num_prompt_tokens
    ]
    return dataclasses.replace(base, prefix_block_hashes=hashes)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"enable_chunked_prefill": True},
        {"scheduler": "orca", "preemption_mode": "swap", "swap_space_gib": 1.0},
    ],
    ids=["recompute", "chunked", "swap"],
)
def test_fast_forward_equals_stepping_with_prefix_caching_and_its_counters(options):
    # Tight memory: cached blocks are evicted to serve allocations, and requests are preempted.
    trace = prefix_sharing_trace(80, seed=4)
    config = SimConfig(kv_capacity_bytes=SMALL_KV, allocator="paged:enable_prefix_caching=true", **options)
    fast = simulate(config, trace)
    slow = simulate(dataclasses.replace(config, fast_forward=False), trace)
    assert_same_run(fast, slow)  # summaries (prefix_cache included) and timelines (with its counters)
    counts = fast.summary["prefix_cache"]
    assert counts["num_hit_tokens"] > 0 and counts["num_evicted_blocks"] > 0
    assert fast.recorder.timeline_column_names[-5:] == PREFIX_CACHE_COLUMNS
    assert fast.recorder.num_steps == slow.recorder.num_steps
