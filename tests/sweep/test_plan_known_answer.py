"""Max sustainable rate against a case computable by hand (issue 7).

One replica, max_num_seqs = 1, every step costs c = 10 ms (ConstantCostModel), every request has 10 output
tokens: a request occupies the GPU for one prefill step (which yields the first token) plus 9 decode steps,
10 × c = 0.1 s, so the service rate is μ = 10 requests/s. Arrivals are evenly spaced (a D/D/1 queue): below
μ no request waits more than the rest of one step; above μ the wait of a request arriving at t grows as
t·(λ/μ − 1).
"""

import numpy as np
import pytest

from kvsim.simulator.cost.constant import ConstantCostModel
from kvsim.simulator.plan import find_max_rate, parse_slos
from kvsim.simulator.plan.capacity import PlanSettings, plan_candidate
from kvsim.simulator.plan.evaluate import evaluate_at_rate
from kvsim.traces import Provenance, Trace, save_trace

STEP_S = 0.01
NUM_OUTPUT_TOKENS = 10
SERVICE_RATE_PER_S = 1 / (NUM_OUTPUT_TOKENS * STEP_S)  # 10 requests/s


@pytest.fixture
def fields(tmp_path):
    num = 300
    trace = Trace(
        request_id=np.arange(num),
        arrival_s=np.arange(num) / 5.0,  # evenly spaced; each probe rescales them to its rate
        num_prompt_tokens=np.full(num, 8),
        num_output_tokens=np.full(num, NUM_OUTPUT_TOKENS),
        provenance=Provenance("evenly spaced, fixed lengths (test)"),
    )
    save_trace(trace, tmp_path / "even.jsonl")
    return {"trace": str(tmp_path / "even.jsonl"), "max_num_seqs": 1, "model": "llama-2-7b"}


def _search(fields, slos, rel_tol=0.005):
    cost_model = ConstantCostModel(step_s=STEP_S)
    slos = parse_slos(slos)
    return find_max_rate(
        lambda rate: evaluate_at_rate(fields, rate, slos, cost_model=cost_model),
        start_rate_per_s=1.0,
        rel_tol=rel_tol,
    )


def test_a_probe_below_capacity_has_no_queueing_and_one_step_ttft(fields):
    probe = evaluate_at_rate(fields, 5.0, [], cost_model=ConstantCostModel(step_s=STEP_S))
    assert probe.ok
    assert probe.metrics["ttft_p99_s"] == pytest.approx(STEP_S)
    assert probe.metrics["queueing_delay_p99_s"] == pytest.approx(0.0, abs=1e-9)


def test_max_rate_under_a_queueing_slo_is_the_service_rate(fields):
    # any lasting overload makes the last requests wait far more than 50 ms (300 requests: ~30 s of arrivals)
    result = _search(fields, ["queueing_delay_max=50ms"])
    assert result.max_rate_per_s <= SERVICE_RATE_PER_S * 1.005
    assert result.max_rate_per_s >= SERVICE_RATE_PER_S * (1 - 0.005)
    assert result.fail_rate_per_s - result.max_rate_per_s <= 0.005 * result.max_rate_per_s


def test_with_a_loose_slo_the_queue_growth_criterion_stops_at_five_percent_overload(fields):
    # TPOT is always one step here, so only the stability criterion can fail: it flags growth of the
    # queueing delay above 0.05 s per s of arrivals, i.e. λ/μ − 1 > 0.05
    result = _search(fields, ["tpot_p99=1s"])
    assert result.max_rate_per_s == pytest.approx(SERVICE_RATE_PER_S * 1.05, rel=0.01)
    assert any("queue grows" in reason for probe in result.probes for reason in probe.reasons)
    # the note names the test that failed at the rate just above
    assert f"at {result.fail_rate_per_s:.4g}: " in result.note
    assert "queue grows" in result.note or "throughput" in result.note


def test_fewest_replicas_for_a_target_rate(fields):
    # μ = 10 req/s per replica; at 25 req/s round-robin gives 3 replicas 8.3 req/s each (fine) and 2 replicas
    # 12.5 req/s each (overloaded), so 3 is the answer
    settings = PlanSettings(slos=("queueing_delay_max=50ms",), target_rate_per_s=25.0, rel_tol=0.01)
    result = plan_candidate(
        {**fields, "router": "round_robin"}, settings, cost_model=ConstantCostModel(STEP_S)
    )
    row = result["row"]
    assert row["feasible"] and row["num_replicas"] == 3
    assert row["max_sustainable_rate_per_s"] == pytest.approx(SERVICE_RATE_PER_S, rel=0.01)
    verified = [p for p in result["probes"] if p["rate_per_s"] == 25.0]
    assert {p["num_replicas"]: p["ok"] for p in verified} == {3: True, 2: False}


def test_a_candidate_failing_at_every_rate_says_why(fields):
    """An SLO below one request's own TTFT (one 10 ms step) fails at every rate: the note gives the reason at
    the lowest rate tried."""
    settings = PlanSettings(slos=("ttft_p99=5ms",), target_rate_per_s=5.0)
    row = plan_candidate(fields, settings, cost_model=ConstantCostModel(step_s=STEP_S))["row"]
    assert row["feasible"] is False and row["max_sustainable_rate_per_s"] is None
    assert row["note"].startswith("one replica fails at every rate tried (at ")
    assert "ttft_p99=0.01s > 0.005s" in row["note"]
