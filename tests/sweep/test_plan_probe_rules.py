"""The parts of a probe's verdict and of the replica search, on inputs with known answers (issue 19):
how long a probe runs and where its requests come from (probe_trace.py), the throughput test
(throughput.py), rejections, and the search for the fewest replicas (capacity.py)."""

import numpy as np
import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.cost.constant import ConstantCostModel
from kvsim.simulator.plan import Probe
from kvsim.simulator.plan.capacity import MAX_REPLICAS, PlanSettings, fewest_replicas, plan_candidate
from kvsim.simulator.plan.evaluate import evaluate_at_rate
from kvsim.simulator.plan.probe_trace import cycled, probe_trace
from kvsim.simulator.plan.throughput import throughput_check
from kvsim.traces import Provenance, Trace, mean_rate_per_s, save_trace


def _evenly_spaced(num, rate_per_s, num_prompt_tokens=8):
    return Trace(
        request_id=np.arange(num),
        arrival_s=np.arange(num) / rate_per_s,
        num_prompt_tokens=np.broadcast_to(num_prompt_tokens, num).copy(),
        num_output_tokens=np.full(num, 10),
        provenance=Provenance("evenly spaced (test)"),
    )


def test_cycling_repeats_the_trace_end_to_end_one_mean_gap_apart():
    trace = Trace.from_columns(
        arrival_s=np.array([0.0, 1.0, 3.0]),  # span 3 s, mean gap 1.5 s: a copy every 4.5 s
        num_prompt_tokens=np.array([10, 20, 30]),
        num_output_tokens=np.array([1, 2, 3]),
        request_id=np.array([7, 8, 9]),
        prefix_block_hashes=[(1,), (2, 3), None],
        provenance=Provenance("three requests (test)"),
    )
    repeated = cycled(trace, 7)
    assert repeated.arrival_s.tolist() == [0.0, 1.0, 3.0, 4.5, 5.5, 7.5, 9.0]
    assert repeated.request_id.tolist() == list(range(7))  # renumbered: ids stay unique
    assert repeated.num_prompt_tokens.tolist() == [10, 20, 30, 10, 20, 30, 10]
    assert list(repeated.prefix_block_hashes) == [(1,), (2, 3), None, (1,), (2, 3), None, (1,)]
    assert "cycled" in repeated.provenance.notes
    assert mean_rate_per_s(cycled(trace, 6)) == pytest.approx(
        mean_rate_per_s(trace)
    )  # whole copies: same rate


def test_a_probe_takes_the_requests_that_follow_then_cycles_the_whole_trace():
    source = _evenly_spaced(100, 1.0)

    def probe(num_replicas, min_duration_s, min_requests_per_replica):
        return probe_trace(
            source,
            10,
            2.0,
            num_replicas,
            min_duration_s=min_duration_s,
            min_requests_per_replica=min_requests_per_replica,
        )

    first = probe(1, 0, 0)
    assert len(first.trace) == 10 and first.how == "the first 10 requests"
    longer = probe(1, 20.0, 0)  # 20 s at 2 req/s: 41 requests
    assert len(longer.trace) == 41 and longer.trace.duration_s == pytest.approx(20.0)
    assert longer.how == "the first 41 requests (the first 10, then the next 31 of the trace)"
    per_replica = probe(3, 20.0, 50)  # 3 x 50 requests: more than the trace holds
    assert len(per_replica.trace) == 150
    assert per_replica.how == "150 requests (the whole trace of 100, cycled 1.5x)"
    assert mean_rate_per_s(per_replica.trace) == pytest.approx(2.0)  # every probe offers the rate it tests


def _dd1(arrival_rate, service_rate, num=3000):
    """Arrivals 1/arrival_rate apart, one server taking 1/service_rate each: finish times."""
    arrival_s = np.arange(num) / arrival_rate
    finish_s = np.empty(num)
    free_at = 0.0
    for i, t in enumerate(arrival_s):
        free_at = max(t, free_at) + 1 / service_rate
        finish_s[i] = free_at
    return arrival_s, finish_s


def test_throughput_test_fails_a_server_that_falls_behind_and_passes_one_that_keeps_up():
    assert throughput_check(*_dd1(9.5, 10.0)).keeps_up
    behind = throughput_check(*_dd1(11.0, 10.0))  # finishes 10 of every 11 arrivals: 0.91 < 0.95
    assert not behind.keeps_up
    assert behind.achieved_per_s == pytest.approx(10.0, rel=0.01)
    assert behind.offered_per_s == pytest.approx(11.0, rel=0.01)
    assert behind.reason.startswith("throughput 10 req/s < 0.95 x offered 11 req/s")
    assert throughput_check(*_dd1(10.4, 10.0)).keeps_up  # within the 5 % tolerance
    arrival_s, finish_s = _dd1(9.5, 10.0)
    finish_s[len(finish_s) // 2 :] = np.nan  # never finished: not served
    assert not throughput_check(arrival_s, finish_s).keeps_up


def _threshold(fewest, calls):
    def evaluate(num_replicas):
        calls.append(num_replicas)
        return Probe(1.0, num_replicas >= fewest, () if num_replicas >= fewest else ("too few",))

    return evaluate


@pytest.mark.parametrize("fewest, estimate", [(40, 3), (3, 50), (1, 5), (7, 7), (MAX_REPLICAS, 1)])
def test_the_fewest_replicas_are_found_from_any_estimate_and_one_fewer_is_shown_failing(fewest, estimate):
    calls = []
    tried = fewest_replicas(_threshold(fewest, calls), estimate)
    assert min(n for n, p in tried.items() if p.ok) == fewest
    if fewest > 1:
        assert not tried[fewest - 1].ok  # simulated, not assumed
    assert len(calls) == len(set(calls)) <= 2 * np.log2(MAX_REPLICAS) + 2


def test_the_search_gives_up_past_max_replicas():
    tried = fewest_replicas(_threshold(MAX_REPLICAS + 1, []), 10)
    assert not any(p.ok for p in tried.values()) and max(tried) == MAX_REPLICAS


@pytest.fixture
def some_too_long(tmp_path):
    """300 requests, every tenth with a 5,000-token prompt: over Llama-2-7B's 4,096-token context."""
    prompts = np.where(np.arange(300) % 10 == 0, 5000, 8)
    save_trace(_evenly_spaced(300, 5.0, prompts), tmp_path / "long_prompts.jsonl")
    return {"trace": str(tmp_path / "long_prompts.jsonl"), "model": "llama-2-7b"}


def test_a_configuration_that_rejects_requests_fails_unless_rejections_are_allowed(some_too_long):
    cost = ConstantCostModel(step_s=0.01)
    rules = {"min_duration_s": 0, "min_requests_per_replica": 0}
    probe = evaluate_at_rate(some_too_long, 1.0, [], cost_model=cost, **rules)
    assert not probe.ok and probe.metrics["num_rejected"] == 30
    assert probe.reasons[0].startswith("rejects 30 of 300 requests (30: ")
    assert probe.reasons[0].endswith("--allow-rejections plans for the accepted ones")
    assert evaluate_at_rate(some_too_long, 1.0, [], cost_model=cost, allow_rejections=True, **rules).ok
    settings = PlanSettings(slos=("ttft_p99=1s",), target_rate_per_s=2.0, **rules)
    row = plan_candidate(some_too_long, settings, cost_model=cost)["row"]
    assert row["feasible"] is False and "rejects 30 of 300 requests" in row["note"]


def test_plan_settings_name_a_bad_probe_floor():
    with pytest.raises(KvsimError, match="--min-duration-s must be >= 0"):
        PlanSettings(slos=("ttft_p99=1s",), min_duration_s=-1)
    with pytest.raises(KvsimError, match="--min-requests-per-replica must be an integer >= 0"):
        PlanSettings(slos=("ttft_p99=1s",), min_requests_per_replica=1.5)
