"""The recorder's time-weighted integrals are the same floats whether rows are kept (integrated once at the
end, with numpy) or dropped (integrated row by row): summaries are byte-identical either way."""

from __future__ import annotations

import json

import pytest
from simtools import KV_BYTES_PER_TOKEN, random_trace

from kvsim.simulator import SimConfig, simulate

CONFIGS = {
    "saturated": SimConfig(kv_capacity_bytes=1500 * KV_BYTES_PER_TOKEN),
    "swap-2-replicas": SimConfig(
        kv_capacity_bytes=1500 * KV_BYTES_PER_TOKEN,
        preemption_mode="swap",
        swap_space_gib=0.5,
        num_replicas=2,
    ),
    "roomy-vattention": SimConfig(allocator="vattention:page_size=64KiB"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_kept_and_dropped_rows_give_the_same_summary(case):
    trace = random_trace(100, seed=11, rate_per_s=15.0)
    kept = simulate(CONFIGS[case], trace)
    dropped = simulate(CONFIGS[case], trace, keep_timeline=False)
    assert json.dumps(kept.summary, sort_keys=True) == json.dumps(dropped.summary, sort_keys=True)
    assert kept.summary["memory"]["saturated"]["duration_s"] > 0 or case == "roomy-vattention"
    assert kept.recorder.timeline_rows() and not dropped.recorder.timeline_rows()
