"""Memory pressure: preemption finishes every request (no livelock); impossible requests are rejected."""

from __future__ import annotations

import json

import numpy as np
import pytest
from simtools import KV_BYTES_PER_TOKEN, make_trace, random_trace, run

from kvsim.errors import KvsimError
from kvsim.simulator import SimConfig, simulate


@pytest.mark.parametrize("mode", ["recompute", "swap"])
def test_preemption_under_memory_pressure_finishes_every_request(mode):
    # 40 requests of up to 600 tokens at once into 1024 token slots: the batch outgrows memory repeatedly.
    trace = random_trace(40, seed=1, rate_per_s=1000.0, max_prompt=300, max_output=300)
    result = run(trace, kv_capacity_bytes=1024 * KV_BYTES_PER_TOKEN, preemption_mode=mode, swap_space_gib=1.0)
    summary = result.summary
    assert summary["num_finished"] == 40
    assert summary["num_preemptions"] > 0
    assert summary["memory"]["saturated"]["duration_s"] > 0
    assert summary["memory"]["peak_used_bytes"] <= 1024 * KV_BYTES_PER_TOKEN
    # Every request produced its tokens: finish after first token, first token after arrival.
    rec = result.recorder
    assert np.all(rec.finish_s >= rec.first_token_s)
    assert np.all(rec.first_token_s > trace.arrival_s)


def test_recompute_victim_is_the_newest_request():
    # 64 blocks of 16 tokens. A (arrives first) and B both grow; when memory runs out B (newest) is preempted.
    trace = make_trace([(0.0, 400, 300), (0.1, 400, 300)])
    result = run(trace, kv_capacity_bytes=1024 * KV_BYTES_PER_TOKEN)
    assert result.recorder.num_preemptions.tolist() == [0, 1]
    assert result.recorder.finish_s[0] < result.recorder.finish_s[1]


def test_request_that_can_never_fit_is_rejected_and_does_not_block_the_queue():
    # 2000 tokens cannot fit in 1024 slots; the request behind it is served.
    trace = make_trace([(0.0, 1500, 500), (0.0, 10, 2)])
    result = run(trace, kv_capacity_bytes=1024 * KV_BYTES_PER_TOKEN)
    summary = result.summary
    assert summary["num_rejected"] == 1
    assert summary["num_finished"] == 1
    assert summary["rejected_by_reason"] == {  # 1,024 slots are 64 blocks of 16 tokens
        "needs {0} blocks of {1} tokens but the replica holds only {2}": {
            "count": 1,
            "values": [{"min": 125, "max": 125}, {"min": 16, "max": 16}, {"min": 64, "max": 64}],
        }
    }
    assert 0 in result.recorder.rejected_reason
    assert np.isnan(result.recorder.first_token_s[0]) and result.recorder.finish_s[1] == 0.5


def test_prompt_over_max_model_len_is_rejected_with_its_reason():
    result = run(make_trace([(0.0, 4000, 200)]))  # llama-2-7b: 4096
    (reason,) = result.recorder.rejected_reason.values()
    assert "max_model_len" in reason


def test_a_prompt_over_the_token_budget_runs_only_with_chunked_prefill():
    """Without chunked prefill a budget below max_model_len is refused at start, as vLLM refuses it
    (test_config_refusals.py): no configuration runs that rejects such a prompt for the budget."""
    trace = make_trace([(0.0, 600, 2)])
    assert run(trace, max_num_batched_tokens=512, enable_chunked_prefill=True).summary["num_finished"] == 1
    with pytest.raises(KvsimError, match="max_num_batched_tokens 512 is below max_model_len 4096"):
        run(trace, max_num_batched_tokens=512)


def test_same_seed_gives_byte_identical_summary_json(tmp_path):
    trace = random_trace(80, seed=2, rate_per_s=10.0)
    config = SimConfig(scheduler="vllm-v0", kv_capacity_bytes=1500 * KV_BYTES_PER_TOKEN, seed=7)
    a = simulate(config, trace).write(tmp_path / "a")
    b = simulate(config, trace).write(tmp_path / "b")
    for name in ("summary.json", "requests.csv", "timeline.csv", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    summary = json.loads((a / "summary.json").read_text())
    assert list(summary) == sorted(summary)


def test_watermark_keeps_one_percent_free_at_admission():
    # 1024 slots, watermark 1% = 10.24 slots. A 496-token prompt (31 blocks) is admitted beside a running
    # 512-token one only if 1024 - 512 - 496 = 16 slots >= 10.24: yes; a 512-token one (0 left) waits.
    admitted = run(make_trace([(0.0, 500, 5), (0.1, 496, 2)]), kv_capacity_bytes=1024 * KV_BYTES_PER_TOKEN)
    waited = run(make_trace([(0.0, 500, 5), (0.1, 512, 2)]), kv_capacity_bytes=1024 * KV_BYTES_PER_TOKEN)
    assert admitted.recorder.first_scheduled_s[1] == 0.25
    assert waited.recorder.first_scheduled_s[1] > 0.25
    no_watermark = run(
        make_trace([(0.0, 500, 5), (0.1, 512, 2)]), kv_capacity_bytes=1024 * KV_BYTES_PER_TOKEN, watermark=0.0
    )
    assert no_watermark.recorder.first_scheduled_s[1] == 0.25


def test_prompt_that_breaks_the_watermark_on_an_empty_replica_is_rejected():
    result = run(make_trace([(0.0, 1020, 2)]), kv_capacity_bytes=1024 * KV_BYTES_PER_TOKEN)
    (reason,) = result.recorder.rejected_reason.values()
    assert "watermark" in reason


def test_vllm_prompt_checks_reject_exactly_from_one_token_past_their_limit():
    """run.simulate skips vLLM's two prompt checks below the longest prompt both pass: the boundary is exact.
    (The token budget's check cannot reject a prompt that max_model_len lets through: a budget below
    max_model_len without chunked prefill is refused at start, test_config_refusals.py.)"""
    # Watermark 1% of 1024 slots (10.24): prompts of up to 1008 slots (63 blocks) leave 16 free and pass;
    # 1009 takes a 64th block and leaves 0.
    capacity = 1024 * KV_BYTES_PER_TOKEN
    marks = run(make_trace([(0.0, 1008, 1), (5.0, 1009, 1)]), kv_capacity_bytes=capacity)
    assert list(marks.recorder.rejected_reason) == [1]
    assert "watermark" in marks.recorder.rejected_reason[1]
    assert marks.summary["num_finished"] == 1


def test_paged_rejects_exactly_the_requests_longer_than_its_blocks():
    """1024 slots (64 blocks of 16): a request of 1024 tokens in all is served, one of 1025 is rejected."""
    trace = make_trace([(0.0, 1000, 24), (5.0, 1000, 25)])
    result = run(trace, kv_capacity_bytes=1024 * KV_BYTES_PER_TOKEN, watermark=0.0)
    assert list(result.recorder.rejected_reason) == [1]
    assert "needs 65 blocks" in result.recorder.rejected_reason[1]
    assert result.summary["num_finished"] == 1
