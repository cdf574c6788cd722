"""PagedEviction in a simulation: decode attention reads only what each sequence stores, memory per request is
bounded, batches grow, and every finished request reports the share of its context evicted."""

from __future__ import annotations

import dataclasses

import numpy as np
from simtools import KV_BYTES_PER_TOKEN, make_trace, random_trace

from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.batch import Batch, StepTime


class RecordingCost:
    """A constant step cost that keeps every batch it times, a window's step by step."""

    source = "test"
    description = "constant, recording (tests)"

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.window_steps: list[int] = []  # steps per decode_step_times call (a window segment's)

    def step_time(self, batch: Batch) -> StepTime:
        self.batches.append(batch)
        return StepTime(overhead_s=0.01, allocator_s=batch.allocator_overhead_s)

    def decode_step_times(self, batch: Batch, num_steps: int, decode_kv_blocks=None):
        self.window_steps.append(num_steps)
        steps = [
            dataclasses.replace(
                batch,
                decode_kv_tokens=batch.decode_kv_tokens + i * batch.num_decode_seqs,
                decode_kv_blocks=batch.decode_kv_blocks if decode_kv_blocks is None else int(decode_kv_blocks[i]),
            )
            for i in range(num_steps)
        ]
        return np.array([self.step_time(step).total_s for step in steps])


def test_a_lone_request_attends_to_at_most_its_budget_and_reports_what_it_evicted():
    # 100-token prompt, 60 outputs, budget 4 blocks of 16 = 64 tokens, block 0 protected.
    trace = make_trace([(0.0, 100, 60)])
    cost = RecordingCost()
    result = simulate(SimConfig(scheduler="vllm-v0", allocator="paged:eviction_budget_blocks=4"), trace, cost_model=cost)
    decode = [b for b in cost.batches if not b.prefill_q_lens]
    assert len(decode) == 59
    # Pruned to 64 at prefill, then 49, 50, ..., 64 per block: each 16th slot evicts the oldest block but one.
    assert [b.decode_kv_tokens for b in decode] == [49 + i % 16 for i in range(59)]
    assert [b.decode_kv_blocks for b in decode] == [4] * 59
    assert max(cost.window_steps) > 1  # decode windows (segments between evictions), not steps one by one
    assert result.recorder.kv_evicted_fraction[0] == (159 - 59) / 159
    assert result.summary["kv_evicted_fraction"]["mean"] == (159 - 59) / 159
    assert result.summary["allocator_stats"]["num_evicted_blocks"] > 0


def test_a_growing_request_s_windows_give_every_step_its_stored_tokens_and_blocks():
    # 10-token prompt, 80 outputs, budget 4 blocks of 16: it grows to 64 tokens, then wraps 49..64.
    cost = RecordingCost()
    simulate(SimConfig(scheduler="vllm-v0", allocator="paged:eviction_budget_blocks=4"), make_trace([(0.0, 10, 80)]), cost_model=cost)
    decode = [b for b in cost.batches if not b.prefill_q_lens]
    stored = [min(n, 64) if n <= 64 else 48 + (n - 65) % 16 + 1 for n in range(11, 90)]  # contexts 11..89
    assert [b.decode_kv_tokens for b in decode] == stored
    assert [b.decode_kv_blocks for b in decode] == [-(-t // 16) for t in stored]
    assert max(cost.window_steps) > 16  # a window segment runs across block openings


def test_under_memory_pressure_eviction_admits_more_and_finishes_everything():
    trace = random_trace(150, seed=2, rate_per_s=30.0, max_prompt=600, max_output=400)
    base = SimConfig(scheduler="vllm-v0", kv_capacity_bytes=3000 * KV_BYTES_PER_TOKEN)
    plain = simulate(base, trace)
    evicting = simulate(dataclasses.replace(base, allocator="paged:eviction_budget_blocks=8"), trace)
    assert evicting.summary["num_finished"] == plain.summary["num_finished"] == len(trace)
    assert evicting.summary["batch"]["mean_num_seqs"] > plain.summary["batch"]["mean_num_seqs"]
    assert evicting.summary["num_preemptions"] < plain.summary["num_preemptions"]
    assert plain.summary["kv_evicted_fraction"] is None
    fractions = evicting.recorder.kv_evicted_fraction
    short = (trace.num_prompt_tokens + trace.num_output_tokens - 1) <= 8 * 16
    assert np.all(fractions[short] == 0.0) and np.all(fractions[~short] > 0.0)


def test_eviction_fast_forward_equals_stepping_and_repeats():
    trace = random_trace(60, seed=4, rate_per_s=20.0)
    config = SimConfig(scheduler="vllm-v0",
        kv_capacity_bytes=1500 * KV_BYTES_PER_TOKEN, allocator="paged:eviction_budget_blocks=6"
    )
    a, b = simulate(config, trace), simulate(dataclasses.replace(config, fast_forward=False), trace)
    assert a.summary == b.summary == simulate(config, trace).summary
