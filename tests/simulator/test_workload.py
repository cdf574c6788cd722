"""One definition of the workload in simulate, sweep and plan (``Workload.load``): cut first, then rescale the
requests kept, so the rate offered is the rate asked for; summary.json and config.json record what ran."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from kvsim.cli import main
from kvsim.cli.simulate import load_workload
from kvsim.simulator.sweep.point import Workload
from kvsim.traces import Provenance, Trace, load_trace, mean_rate_per_s, save_trace


def _offered(arrival_s: np.ndarray) -> float:
    return (len(arrival_s) - 1) / float(arrival_s[-1] - arrival_s[0])


def test_simulate_offers_the_rate_asked_for_on_the_requests_it_keeps(tmp_path):
    """The issue's case: the first 1,000 requests of azure-conv at --rate 10 offered 8.36 req/s (the whole hour
    was rescaled, then cut), while config.json said 10.0."""
    out = tmp_path / "runs"
    args = ["simulate", "--trace", "azure-conv", "--num-requests", "1000", "--rate", "10", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    run = out / "paged_block_size-16"
    arrival_s = np.loadtxt(run / "requests.csv", delimiter=",", skiprows=1, usecols=2)
    assert len(arrival_s) == 1000
    assert _offered(arrival_s) == pytest.approx(10.0, rel=1e-9)
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    for workload in (summary["workload"], config["workload"]):
        assert workload["offered_rate_per_s"] == pytest.approx(10.0, rel=1e-9)
        assert workload["num_requests"] == 1000
        assert workload["span_s"] == pytest.approx(999 / 10.0)
    assert config["trace"]["rate"] == 10.0  # asked, and now also offered


def test_simulate_and_sweep_load_the_same_requests_at_the_same_times():
    """`simulate` (load_workload) and `sweep`/`plan` (Workload.load) are one definition."""
    by_simulate = load_workload({"trace": "azure-code", "num_requests": 300, "rate": 4.0})
    by_sweep = Workload(trace="azure-code", num_requests=300, rate=4.0).load()
    np.testing.assert_array_equal(by_simulate.arrival_s, by_sweep.arrival_s)
    np.testing.assert_array_equal(by_simulate.num_prompt_tokens, by_sweep.num_prompt_tokens)
    assert mean_rate_per_s(by_sweep) == pytest.approx(4.0, rel=1e-12)


@pytest.fixture
def uneven_trace(tmp_path):
    """10 requests a second for 10 s, then 1 a second for 40 s: the first part is far busier than the whole."""
    arrival_s = np.concatenate([np.arange(100) * 0.1, 10.0 + np.arange(40) * 1.0])
    num = len(arrival_s)
    trace = Trace(
        request_id=np.arange(num),
        arrival_s=arrival_s,
        num_prompt_tokens=np.full(num, 64),
        num_output_tokens=np.full(num, 8),
        provenance=Provenance("uneven test trace"),
    )
    path = tmp_path / "uneven.jsonl"
    save_trace(trace, path)
    return str(path)


def test_cut_s_counts_seconds_at_the_asked_rate_then_the_cut_is_rescaled_to_it(uneven_trace):
    whole_rate = mean_rate_per_s(load_trace(uneven_trace))  # 139 / 49 s
    rate = 2 * whole_rate
    # at twice its own rate, the first 2.5 s are its first 5 s as recorded: 50 requests
    trace = Workload(trace=uneven_trace, cut_s=2.5, rate=rate).load()
    assert len(trace) == 50
    assert mean_rate_per_s(trace) == pytest.approx(rate, rel=1e-12)  # not the 10 req/s of that busy part
    by_simulate = load_workload({"trace": uneven_trace, "cut_s": 2.5, "rate": rate})
    np.testing.assert_array_equal(by_simulate.arrival_s, trace.arrival_s)


def test_rate_scale_scales_the_rate_of_the_requests_kept(uneven_trace):
    trace = Workload(trace=uneven_trace, num_requests=100, rate_scale=0.5).load()
    assert mean_rate_per_s(trace) == pytest.approx(0.5 * 99 / 9.9, rel=1e-12)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"num_requests": 10, "cut_s": 3.0}, "both `num_requests` and `cut_s` set"),
        ({"cut_s": 0}, "`cut_s` must be a positive number"),
        ({"num_requests": 1, "rate": 5.0}, "arrive at one instant, so they have no rate to rescale"),
    ],
)
def test_a_workload_that_cannot_be_cut_or_rescaled_is_named(uneven_trace, fields, message):
    from kvsim.errors import KvsimError

    with pytest.raises(KvsimError, match=message):
        Workload(trace=uneven_trace, **fields).load()


def test_sweep_points_record_the_offered_rate_in_their_run_folders(tmp_path, uneven_trace):
    out = tmp_path / "sweep"
    args = ["sweep", "--set", f"trace={uneven_trace}", "--set", "num_requests=100", "--grid", "rate=2,4",
            "--out", str(out), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rates = sorted(
        json.loads(p.read_text())["workload"]["offered_rate_per_s"] for p in out.glob("points/*/summary.json")
    )
    assert rates == pytest.approx([2.0, 4.0], rel=1e-12)
