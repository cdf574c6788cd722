"""Property: for any small workload and configuration, fast-forwarding equals stepping and every request that
is not rejected finishes (no livelock), with memory never over capacity."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simtools import KV_BYTES_PER_TOKEN

from kvsim.simulator import SimConfig, simulate
from kvsim.traces.request import Provenance, Trace

CONFIGS = st.sampled_from(
    [
        # vLLM v1 (0.34.0): prefix caching on (PagedAllocator) or off (counted twin and cohort), chunked or not
        {"scheduler": "vllm"},
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
        },
        {
            "scheduler": "vllm",
            "max_num_batched_tokens": 48,
            "max_num_seqs": 4,
            "allocator": "paged:block_size=8",
        },
        {"scheduler": "vllm-v0"},
        {"scheduler": "vllm-v0", "preemption_mode": "swap", "swap_space_gib": 0.5},
        {
            "scheduler": "vllm-v0",
            "enable_chunked_prefill": True,
            "max_num_batched_tokens": 64,
            "max_num_seqs": 32,
        },
        {"scheduler": "vllm-v0", "allocator": "paged:block_size=8", "max_num_seqs": 4},
        {"scheduler": "orca"},
        {"scheduler": "orca", "allocator": "reserved:oracle"},
        {"scheduler": "static", "max_num_seqs": 3},
        {"scheduler": "vllm-v0", "num_replicas": 2, "router": "least_outstanding"},
        {"scheduler": "vllm-v0", "allocator": "vattention:page_size=64KiB"},
        # swapped-out requests: vAttention's swap-in probe, and arrivals admitted while requests are swapped out
        {
            "scheduler": "vllm-v0",
            "allocator": "vattention:page_size=64KiB,reuse_pages=false",
            "preemption_mode": "swap",
            "swap_space_gib": 0.5,
        },
        {
            "scheduler": "orca",
            "allocator": "vattention:page_size=64KiB",
            "preemption_mode": "swap",
            "swap_space_gib": 0.5,
        },
        {
            "scheduler": "vllm-v0",
            "enable_chunked_prefill": True,
            "max_num_batched_tokens": 64,
            "max_num_seqs": 32,
            "preemption_mode": "swap",
            "swap_space_gib": 0.5,
        },
        {"scheduler": "vllm-v0", "allocator": "paged:eviction_budget_blocks=3", "preemption_mode": "swap"},
        {"scheduler": "static", "allocator": "paged:eviction_budget_blocks=4", "max_num_seqs": 3},
        {"scheduler": "orca", "allocator": "reserved:pow2", "preemption_mode": "swap", "swap_space_gib": 0.5},
        # regions that grow and move on a buddy heap: a failed swap-in probe of parallel samples must leave
        # the heap's free lists as it found them, stepping once per step or fast-forwarding once per window
        {
            "scheduler": "orca",
            "allocator": "contiguous-growth:min_region_tokens=2,growth_factor=3",
            "preemption_mode": "swap",
            "swap_space_gib": 0.5,
        },
        {
            "scheduler": "vllm-v0",
            "allocator": "contiguous-growth:min_region_tokens=8",
            "preemption_mode": "swap",
            "swap_space_gib": 0.5,
        },
        # prefix caching: its counters (summary.json's prefix_cache, the timeline's columns) must agree too
        {"scheduler": "vllm", "allocator": "paged:enable_prefix_caching=true"},
        {
            "scheduler": "vllm",
            "allocator": "paged:enable_prefix_caching=true",
            "enable_chunked_prefill": True,
        },
        {"scheduler": "orca", "allocator": "paged:enable_prefix_caching=true,block_size=8"},
        {
            "scheduler": "orca",
            "allocator": "paged:enable_prefix_caching=true",
            "preemption_mode": "swap",
            "swap_space_gib": 0.5,
        },
    ]
)


@st.composite
def workloads(draw):
    num = draw(st.integers(1, 25))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    n = rng.choice([1, 1, 1, 2, 3], num) if draw(st.booleans()) else None
    hashes = None
    if draw(st.booleans()):  # long prompts whose 512-token prefix blocks repeat across requests
        prompt = rng.integers(1, 1400, num)
        hashes = [tuple(int(rng.integers(0, 3)) * 10 + b for b in range(-(-int(p) // 512))) for p in prompt]
    else:
        prompt = rng.integers(1, 200, num)
    return Trace(
        request_id=np.arange(num, dtype=np.int64),
        arrival_s=np.cumsum(rng.exponential(draw(st.sampled_from([0.005, 0.05, 0.5])), num)),
        num_prompt_tokens=prompt,
        num_output_tokens=rng.integers(1, 120, num),
        provenance=Provenance(source=f"hypothesis seed={seed}"),
        n=n,
        prefix_block_hashes=hashes,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=workloads(), options=CONFIGS, capacity_tokens=st.integers(300, 4000))
def test_fast_forward_equals_stepping_and_everything_finishes(trace, options, capacity_tokens):
    config = SimConfig(kv_capacity_bytes=capacity_tokens * KV_BYTES_PER_TOKEN, **options)
    fast = simulate(config, trace)
    slow = simulate(dataclasses.replace(config, fast_forward=False), trace)
    assert fast.summary == slow.summary
    np.testing.assert_array_equal(fast.recorder.finish_s, slow.recorder.finish_s)
    assert fast.recorder.timeline_rows() == slow.recorder.timeline_rows()
    summary = fast.summary
    assert summary["num_finished"] + summary["num_rejected"] == len(trace)
    assert summary["memory"]["peak_used_bytes"] <= summary["memory"]["capacity_bytes"]
