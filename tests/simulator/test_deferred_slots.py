"""Deferred decode slots change no result (DESIGN §7b).

The vllm scheduler over the paged allocator keeps a sequence's decode slots that stay inside its last, unshared
block pending (no ``append_slots`` call) and the allocator's ``breakdown()`` counts them from
``num_deferred_tokens``. With every room forced to 0 every slot is appended at its step, as before the
optimisation: both runs must agree on every timing, counter and timeline row, and the deferred counter must
be back at zero once every request has finished.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from simtools import KV_BYTES_PER_TOKEN, random_trace
from test_fast_forward import assert_same_run

from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.allocators.paged import PagedAllocator
from kvsim.traces.request import Trace

SMALL_KV = 1500 * KV_BYTES_PER_TOKEN  # tight: forces preemption under the random trace below

CASES = {
    "recompute": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV),
    "swap": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, preemption_mode="swap", swap_space_gib=1.0),
    "chunked": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, enable_chunked_prefill=True),
    "block-32": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, allocator="paged:block_size=32"),
    "watermark": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, watermark=0.05),
    "stepping": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, fast_forward=False),
}


def run_without_deferral(monkeypatch, config, trace):
    with monkeypatch.context() as m:
        m.setattr(PagedAllocator, "_room", lambda self, seq: 0)
        m.setattr(
            PagedAllocator,
            "append_decode_slots",
            lambda self, seq_id, num_new: 0 if self.append_slots(seq_id, num_new) else -1,
        )
        return simulate(config, trace)


@pytest.mark.parametrize("case", list(CASES))
def test_deferring_slots_changes_nothing(monkeypatch, case):
    trace = random_trace(80, seed=7, rate_per_s=8.0)
    deferred = simulate(CASES[case], trace)
    appended = run_without_deferral(monkeypatch, CASES[case], trace)
    assert deferred.summary["num_finished"] == len(trace)
    assert_same_run(deferred, appended)


def test_deferring_slots_changes_nothing_with_parallel_samples(monkeypatch):
    base = random_trace(60, seed=5, rate_per_s=4.0)
    n = np.where(np.arange(len(base)) % 3 == 0, 3, 1)
    trace = Trace(
        base.request_id, base.arrival_s, base.num_prompt_tokens, base.num_output_tokens, base.provenance, n=n
    )
    config = SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV)
    assert_same_run(simulate(config, trace), run_without_deferral(monkeypatch, config, trace))


def test_no_deferred_slot_outlives_its_request(monkeypatch):
    allocators = []
    original_init = PagedAllocator.__init__

    def keep(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        allocators.append(self)

    monkeypatch.setattr(PagedAllocator, "__init__", keep)
    simulate(SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV), random_trace(40, seed=2, rate_per_s=8.0))
    assert allocators and all(a.num_deferred_tokens == 0 for a in allocators)
    for alloc in allocators:
        alloc.check_invariants()


# vAttention, contiguous-growth and PagedEviction defer the slots inside what a sequence holds (its page
# groups, its region, its last block), short of its final length; the first two plan their windows inside
# those rooms. Against the path without deferral (growth_room absent: every slot appended, windows planned
# from the allocator's counts), every timing, counter, timeline row and allocator counter (mapping and copy
# charges, evicted blocks) must agree.
def _variants(name: str, spec: str) -> dict[str, SimConfig]:
    """``spec`` under recompute, swap and chunked prefill, tight enough to preempt."""
    return {
        name: SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, allocator=spec),
        f"{name}-swap": SimConfig(scheduler="vllm-v0",
            kv_capacity_bytes=SMALL_KV, allocator=spec, preemption_mode="swap", swap_space_gib=1.0
        ),
        f"{name}-chunked": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, allocator=spec, enable_chunked_prefill=True),
    }


OTHER_DEFERRING = {
    **_variants("vattention", "vattention:page_size=64KiB"),
    "vattention-2MiB": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=4 * SMALL_KV, allocator="vattention"),
    "vattention-synchronous": SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=SMALL_KV, allocator="vattention:page_size=64KiB,mapping=synchronous"
    ),
    "vattention-no-reuse": SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=SMALL_KV, allocator="vattention:page_size=128KiB,reuse_pages=false"
    ),
    "vattention-stepping": SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=SMALL_KV, allocator="vattention:page_size=64KiB", fast_forward=False
    ),
    **_variants("growth", "contiguous-growth"),
    "growth-64": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=SMALL_KV, allocator="contiguous-growth:min_region_tokens=64"),
    "growth-orca": SimConfig(kv_capacity_bytes=SMALL_KV, allocator="contiguous-growth", scheduler="orca"),
    **_variants("eviction", "paged:eviction_budget_blocks=4"),
    "eviction-protected": SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=SMALL_KV, allocator="paged:eviction_budget_blocks=4,eviction_protected_blocks=2"
    ),
    # only the last block is evictable: no deferral (a crossing would find it partial and evict otherwise)
    "eviction-last-only": SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=SMALL_KV, allocator="paged:eviction_budget_blocks=3,eviction_protected_blocks=2"
    ),
}


@pytest.mark.parametrize("case", list(OTHER_DEFERRING))
def test_other_allocators_deferring_slots_change_nothing(monkeypatch, case):
    from kvsim.simulator.allocators.contiguous_growth import ContiguousGrowthAllocator
    from kvsim.simulator.allocators.paged_eviction import EvictingPagedAllocator
    from kvsim.simulator.allocators.vattention import VAttentionAllocator

    kind = case.split("-")[0]
    cls = {"vattention": VAttentionAllocator, "growth": ContiguousGrowthAllocator}.get(
        kind, EvictingPagedAllocator
    )
    allocators, appends = [], []
    original_init, original_append = cls.__init__, cls.append_slots

    @functools.wraps(original_init)  # make_allocator reads the constructor's signature
    def keep(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        allocators.append(self)

    def counted(self, seq_id, num_new_tokens):
        appends.append(num_new_tokens)
        return original_append(self, seq_id, num_new_tokens)

    config, trace = OTHER_DEFERRING[case], random_trace(80, seed=0, rate_per_s=8.0)
    with monkeypatch.context() as m:
        m.setattr(cls, "__init__", keep)
        m.setattr(cls, "append_slots", counted)
        deferred = simulate(config, trace)
        num_deferred_appends = len(appends)
        appends.clear()
        m.setattr(cls, "growth_room", None)
        appended = simulate(config, trace)
    summary = deferred.summary  # contiguous-growth rejects the requests whose last region cannot fit
    assert summary["num_finished"] > len(trace) / 2
    assert summary["num_finished"] + summary["num_rejected"] == len(trace)
    assert allocators and all(a.num_deferred_tokens == 0 for a in allocators)
    for alloc in allocators:
        alloc.check_invariants()
    assert_same_run(deferred, appended)
    assert deferred.summary["allocator_stats"] == appended.summary["allocator_stats"]
    if case == "eviction-last-only":
        assert num_deferred_appends == len(appends)  # it did not defer
    else:
        assert num_deferred_appends < len(appends) / 2  # it did defer
