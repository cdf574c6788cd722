"""The progress bar of a long run: chosen by expected work (requests and output tokens), shown on a terminal,
moved as requests finish (every 1% of them, never per step)."""

from __future__ import annotations

import numpy as np
import pytest
from simtools import random_trace

import kvsim.simulator.run as run_module
from kvsim.cli import simulate as simulate_cli
from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.cost.constant import ConstantCostModel


class FakeBar:
    def __init__(self, total: int) -> None:
        self.total, self.updates, self.closed = total, [], False

    def update_to(self, num_done: int) -> None:
        self.updates.append(num_done)

    def close(self) -> None:
        self.closed = True


def test_the_bar_follows_finished_and_rejected_requests_about_every_percent(monkeypatch):
    bars = []
    monkeypatch.setattr(run_module, "_progress_bar", lambda total: bars.append(FakeBar(total)) or bars[-1])
    trace = random_trace(1000, seed=1, rate_per_s=50.0)
    trace.num_prompt_tokens[::10] = 5000  # over llama-2-7b's context: rejected
    result = simulate(SimConfig(), trace, progress=True, cost_model=ConstantCostModel(0.01, 0.0))
    (bar,) = bars
    assert bar.total == 1000 and bar.closed
    assert bar.updates == sorted(bar.updates) and bar.updates[-1] == 1000
    # once at least 10 more requests (1% of 1,000) have finished (several may finish in one step), each update
    # counting the rejections so far too; then the last few at the run's end, and the total
    steps = np.diff(bar.updates[:-2])
    assert steps.min() >= 10 and 50 <= len(bar.updates) <= 92
    assert result.summary["num_rejected"] == 100


def test_no_bar_is_built_unless_asked(monkeypatch):
    monkeypatch.setattr(run_module, "_progress_bar", lambda total: pytest.fail("bar built"))
    simulate(SimConfig(), random_trace(50, seed=1), cost_model=ConstantCostModel(0.01, 0.0))


def test_expected_work_counts_output_tokens_too():
    trace = random_trace(100, seed=2)
    trace.num_output_tokens[:] = 30_000  # 100 requests, 3 M output tokens: a long run
    assert (
        simulate_cli.expected_work(trace) == 100 + 3_000_000 / simulate_cli.PROGRESS_OUTPUT_TOKENS_PER_REQUEST
    )
    assert simulate_cli.expected_work(trace) >= simulate_cli.PROGRESS_MIN_WORK


@pytest.mark.parametrize(
    "is_terminal, long_run, shown", [(True, True, True), (True, False, False), (False, True, False)]
)
def test_the_cli_asks_for_a_bar_for_a_long_run_on_a_terminal(monkeypatch, is_terminal, long_run, shown):
    trace = random_trace(20, seed=3, max_output=50)
    if long_run:  # few requests, but long outputs: many decode steps
        trace.num_output_tokens[:] = np.full(20, simulate_cli.PROGRESS_MIN_WORK * 10)
    asked = []

    def fake_simulate(config, trace, *, progress, keep_timeline):
        asked.append(progress)
        raise SystemExit(0)  # the choice is made: no need to run it

    monkeypatch.setattr(simulate_cli, "load_workload", lambda values: trace)
    monkeypatch.setattr("kvsim.simulator.run.simulate", fake_simulate)
    monkeypatch.setattr(simulate_cli.sys.stderr, "isatty", lambda: is_terminal)
    with pytest.raises(SystemExit):
        simulate_cli.run_simulations({"trace": "azure-conv"})
    assert asked == [shown]
