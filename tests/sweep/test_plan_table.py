"""Ranking, Pareto front and prices of the capacity plan (capacity.py, prices.py)."""

import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.plan.capacity import pareto_front, ranked
from kvsim.simulator.plan.prices import parse_prices, price_per_gpu_hour


def _row(label, cost, gpus, ttft, feasible=True):
    return {"label": label, "total_cost_per_hour_usd": cost, "num_gpus": gpus, "target_ttft_p99_s": ttft,
            "feasible": feasible}  # fmt: skip


ROWS = [
    _row("a", 8.0, 2, 0.5),
    _row("b", 4.0, 1, 1.5),
    _row("c", 8.0, 2, 0.4),  # same cost as a, lower latency: dominates a
    _row("d", 12.0, 3, 0.4),  # dearer than c at the same latency: dominated
    _row("e", 16.0, 4, 0.1),
    _row("x", 1.0, 1, None, feasible=False),
]


def test_ranked_puts_feasible_first_by_cost_then_gpus_then_latency():
    assert [r["label"] for r in ranked(ROWS, "target_ttft_p99_s")] == ["b", "c", "a", "d", "e", "x"]


def test_pareto_front_keeps_only_undominated_feasible_rows():
    assert [r["label"] for r in pareto_front(ROWS, "target_ttft_p99_s")] == ["b", "c", "e"]


def test_prices_default_with_override_and_missing_gpu_is_an_error():
    assert price_per_gpu_hour("h100-sxm", {}) == 3.99
    assert price_per_gpu_hour("H100-SXM", parse_prices(["h100-sxm=2.5"])) == 2.5
    with pytest.raises(KvsimError, match="--price l4="):
        price_per_gpu_hour("l4", {})
    with pytest.raises(KvsimError, match="GPU=USD_PER_GPU_HOUR"):
        parse_prices(["h100-sxm=free"])
