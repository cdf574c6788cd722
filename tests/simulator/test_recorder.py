"""The recorder's time-weighted integrals are the same floats whether rows are kept (integrated once at the
end, with numpy) or dropped (integrated a few thousand rows at a time as they come): summaries are
byte-identical either way."""

from __future__ import annotations

import json

import pytest
from simtools import KV_BYTES_PER_TOKEN, random_trace

from kvsim.simulator import SimConfig, simulate

CONFIGS = {
    "saturated": SimConfig(scheduler="vllm-v0", kv_capacity_bytes=1500 * KV_BYTES_PER_TOKEN),
    "swap-2-replicas": SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=1500 * KV_BYTES_PER_TOKEN,
        preemption_mode="swap",
        swap_space_gib=0.5,
        num_replicas=2,
    ),
    "roomy-vattention": SimConfig(scheduler="vllm-v0", allocator="vattention:page_size=64KiB"),
}


@pytest.mark.parametrize("fold_rows", [8192, 1, 2, 7])
@pytest.mark.parametrize("case", list(CONFIGS))
def test_kept_and_dropped_rows_give_the_same_summary(case, fold_rows, monkeypatch):
    from kvsim.simulator import recorder

    # Dropped rows are integrated in batches of fold_rows (8192: all at the end of these runs; 1: row by row).
    monkeypatch.setattr(recorder, "FOLD_BYTES", fold_rows * recorder.ROW.size)
    trace = random_trace(100, seed=11, rate_per_s=15.0)
    kept = simulate(CONFIGS[case], trace)
    dropped = simulate(CONFIGS[case], trace, keep_timeline=False)
    assert json.dumps(kept.summary, sort_keys=True) == json.dumps(dropped.summary, sort_keys=True)
    assert kept.summary["memory"]["saturated"]["duration_s"] > 0 or case == "roomy-vattention"
    assert kept.recorder.timeline_rows() and not dropped.recorder.timeline_rows()


def test_timeline_rows_merge_replicas_by_time_then_replica_keeping_each_replicas_order():
    from kvsim.simulator.recorder import PARTS, Recorder

    recorder = Recorder(0, 3)
    zeros = (0,) * len(PARTS)
    rows = [  # (replica, time_s, num_running): distinct num_running tells the rows apart
        (2, 0.0, 1), (0, 0.0, 2), (1, 0.5, 3), (0, 0.5, 4), (0, 0.5, 5), (2, 0.25, 6), (2, 1.0, 7), (1, 0.5, 8),
    ]  # fmt: skip
    for replica, time_s, num_running in rows:
        recorder.timelines[replica].add_row(time_s, zeros, False, num_running, 0, 0, 0, 0)
    merged = recorder.timeline_rows()
    running = 2 + len(PARTS)  # the column after time_s, replica and the parts
    assert [(row[0], row[1], row[running]) for row in merged] == [
        (0.0, 0, 2), (0.0, 2, 1), (0.25, 2, 6), (0.5, 0, 4), (0.5, 0, 5), (0.5, 1, 3), (0.5, 1, 8), (1.0, 2, 7),
    ]  # fmt: skip
    # The CSV writer's columns are the same rows, transposed; one replica's need no merge.
    assert list(zip(*recorder.timeline_columns())) == merged
    alone = Recorder(0, 1)
    for time_s in (0.0, 0.0, 2.0):
        alone.timelines[0].add_row(time_s, zeros, True, 1, 2, 3, 4, 5)
    assert alone.timeline_rows() == [(t, 0, *zeros, 1, 2, 3, 4, 5) for t in (0.0, 0.0, 2.0)]
