"""Max-rate search, SLO parsing and the queue-growth criterion, on inputs with known answers."""

import numpy as np
import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.plan import Probe, Slo, find_max_rate, parse_slos, queue_growth, slo_violations


def test_slo_grammar_and_units():
    assert parse_slos(["ttft_p99=2s", "tpot_p99=100ms", "queueing_delay_p90=500us"]) == (
        Slo("ttft", "p99", 2.0),
        Slo("tpot", "p99", 0.1),
        Slo("queueing_delay", "p90", 0.0005),
    )
    assert Slo.parse("e2e_mean=3") == Slo("e2e", "mean", 3.0)  # no unit: seconds


@pytest.mark.parametrize("text", ["ttft=2s", "ttft_p99", "ttft_p99=2h", "latency_p99=1s", "ttft_p99=0s"])
def test_bad_slo_says_how_to_write_one(text):
    with pytest.raises(KvsimError, match=r"ttft_p99=2s|choose one of|must be > 0"):
        parse_slos([text])


def test_slo_violations_read_summary_latency():
    summary = {"latency": {"ttft_s": {"p99": 2.5}, "tpot_s": {"p99": 0.05}}}
    slos = parse_slos(["ttft_p99=2s", "tpot_p99=100ms", "e2e_p99=10s"])
    assert slo_violations(slos, summary) == ["ttft_p99=2.5s > 2s", "e2e_p99: no value (no finished request)"]


def _threshold_evaluator(threshold, calls):
    def evaluate(rate):
        calls.append(rate)
        return Probe(rate, rate <= threshold, () if rate <= threshold else ("over",))

    return evaluate


@pytest.mark.parametrize("threshold, start", [(7.3, 1.0), (7.3, 100.0), (0.013, 1.0), (1.0, 1.0)])
def test_search_brackets_a_known_threshold_within_the_tolerance(threshold, start):
    calls = []
    result = find_max_rate(_threshold_evaluator(threshold, calls), start_rate_per_s=start, rel_tol=0.01)
    assert result.max_rate_per_s <= threshold < result.fail_rate_per_s
    assert result.fail_rate_per_s - result.max_rate_per_s <= 0.01 * result.max_rate_per_s
    assert len(calls) == len(result.probes) < 25


def test_search_reports_an_unreachable_slo_and_an_unbounded_rate():
    never = find_max_rate(_threshold_evaluator(-1.0, []), start_rate_per_s=1.0)
    assert never.max_rate_per_s is None and "fails even at" in never.note
    always = find_max_rate(_threshold_evaluator(np.inf, []), start_rate_per_s=1.0)
    assert always.fail_rate_per_s is None and always.max_rate_per_s == 2.0**12


def _queue(arrival_rate, service_rate, num=600):
    """A D/D/1 queue: constant inter-arrival 1/arrival_rate, constant service 1/service_rate."""
    arrival_s = np.arange(num) / arrival_rate
    start_s = np.empty(num)
    free_at = 0.0
    for i, t in enumerate(arrival_s):
        start_s[i] = max(t, free_at)
        free_at = start_s[i] + 1 / service_rate
    return arrival_s, start_s - arrival_s


def test_queue_growth_flags_overload_and_passes_underload():
    assert queue_growth(*_queue(9.9, 10.0)).stable
    assert queue_growth(*_queue(10.0, 10.0)).stable
    overloaded = queue_growth(*_queue(11.0, 10.0))  # delay grows 11/10 - 1 = 0.1 s per s
    assert not overloaded.stable
    assert overloaded.growth_per_s == pytest.approx(11 / 10 - 1, rel=0.02)
    assert "queue grows" in overloaded.reason


def test_queue_growth_ignores_small_absolute_jitter_and_counts_unscheduled_requests():
    arrival_s = np.linspace(0, 1, 60)
    assert queue_growth(arrival_s, np.r_[np.zeros(30), np.full(30, 0.05)]).stable  # +0.05 s < 0.1 s
    never_scheduled = np.r_[np.zeros(40), np.full(20, np.nan)]
    assert not queue_growth(np.linspace(0, 100, 60), never_scheduled).stable
