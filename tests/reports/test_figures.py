"""Figure functions on small inputs: what each figure draws, in numbers."""

import numpy as np
import pytest

from kvsim.errors import KvsimError
from kvsim.reports.figures import (
    calibration_figure,
    capacity_figure,
    latency_cdf_figure,
    memory_breakdown_figure,
    memory_timeline_figure,
    rate_sweep_figure,
)
from kvsim.reports.figures.calibration import held_out_mape
from kvsim.reports.figures.capacity import cost_per_million_requests_usd
from kvsim.reports.figures.latency_cdf import cdf_points
from kvsim.reports.palette import FAMILY_TO_COLOUR, MEMORY_PARTS, colour_for

GIB = 2**30


def breakdown_row(label, window, parts_gib, capacity_gib=10):
    return {
        "label": label,
        "window": window,
        "capacity_bytes": capacity_gib * GIB,
        **{p: None if v is None else v * GIB for p, v in zip(MEMORY_PARTS, parts_gib)},
    }


def test_memory_breakdown_stacks_the_five_parts_to_100_percent_per_bar():
    rows = [
        breakdown_row("paged", "whole_run", [9.6, 0.2, 0.1, 0.0, 0.1]),
        breakdown_row("reserved:max", "whole_run", [2.0, 3.0, 4.0, 0.5, 0.5]),
        breakdown_row("paged", "saturated", [9.7, 0.2, 0.1, 0.0, 0.0]),
        breakdown_row("reserved:max", "saturated", [2.0, 3.0, 4.5, 0.5, 0.0]),
    ]
    fig = memory_breakdown_figure(rows)
    assert len(fig.data) == 5 * 2  # five parts, two panels
    for axis in ("x", "x2"):
        bars = [t for t in fig.data if t.xaxis == axis]
        totals = np.sum([np.array(t.y, dtype=float) for t in bars], axis=0)
        np.testing.assert_allclose(totals, [100.0, 100.0])
    token_states = next(t for t in fig.data if t.name == "Token states" and t.xaxis == "x")
    assert list(token_states.y) == pytest.approx([96.0, 20.0])
    assert token_states.customdata[1][1] == 2.0 * GIB  # hover carries exact bytes


def test_memory_breakdown_marks_a_never_saturated_run_and_draws_no_bar_for_it():
    rows = [
        breakdown_row("paged", "whole_run", [5, 0, 0, 0, 5]),
        breakdown_row("paged", "saturated", [None] * 5),
        breakdown_row("vattention", "whole_run", [5, 1, 1, 0, 3]),
        breakdown_row("vattention", "saturated", [6, 1, 1, 0, 2]),
    ]
    fig = memory_breakdown_figure(rows)
    saturated = [t for t in fig.data if t.xaxis == "x2"]
    assert saturated[0].x[0] == "paged<br>(never saturated)"
    assert all(t.y[0] is None for t in saturated)
    assert saturated[0].y[1] == pytest.approx(60.0)


def test_memory_timeline_has_five_stacked_parts_and_two_count_lines_on_one_time_axis():
    timeline = {
        "time_s": [0.0, 1.0, 3.0],
        "replica": [0, 0, 0],
        "token_states": [0, 4 * GIB, 6 * GIB],
        "reserved": [0, 2 * GIB, 0],
        "internal_frag": [0, GIB, 0],
        "external_frag": [0, 0, 0],
        "free": [10 * GIB, 3 * GIB, 4 * GIB],
        "cached_bytes": [0, 0, 0],
        "num_waiting": [0, 3, 1],
        "num_batched_seqs": [0, 8, 9],
    }
    fig = memory_timeline_figure(timeline, label="paged")
    stacked = [t for t in fig.data if t.stackgroup == "memory"]
    assert [t.name for t in stacked] == [
        "Token states",
        "Reserved",
        "Internal fragmentation",
        "External fragmentation",
        "Free",
    ]
    np.testing.assert_allclose(np.sum([t.y for t in stacked], axis=0), [10, 10, 10])  # GiB, = capacity
    assert len(fig.data) == 7  # no cached line when nothing is cached
    assert {t.xaxis for t in fig.data} == {"x", "x2", "x3"}
    assert fig.layout.xaxis.matches == fig.layout.xaxis2.matches == "x3"  # one shared time axis
    assert list(fig.data[5].y) == [0, 3, 1]


def test_memory_timeline_of_a_long_run_is_bounded_in_points():
    n = 50_000
    t = np.arange(n, dtype=float)
    cap = 8 * GIB
    used = (np.arange(n) % 100) / 100 * cap
    timeline = {
        "time_s": t,
        "token_states": used,
        "reserved": np.zeros(n),
        "internal_frag": np.zeros(n),
        "external_frag": np.zeros(n),
        "free": cap - used,
        "num_waiting": np.zeros(n),
        "num_batched_seqs": np.ones(n),
    }
    fig = memory_timeline_figure(timeline, label="paged", max_points=500)
    assert all(len(trace.x) == 500 for trace in fig.data)
    assert "500 buckets" in fig.layout.title.text


def test_latency_cdf_draws_one_line_per_configuration_per_metric_in_one_colour():
    rng = np.random.default_rng(0)

    def cols():
        metrics = ("ttft_s", "tpot_s", "e2e_s", "normalized_latency_s_per_token")
        return {m: rng.uniform(0.1, 1, 50) for m in metrics}

    fig = latency_cdf_figure({"paged": cols(), "reserved:max": cols(), "vattention": cols()})
    assert len(fig.data) == 3 * 4
    for label in ("paged", "reserved:max", "vattention"):
        lines = [t for t in fig.data if t.name == label]
        assert len(lines) == 4
        assert {t.line.color for t in lines} == {colour_for(label)}
        assert sum(t.showlegend for t in lines) == 1
    log_button = fig.layout.updatemenus[0].buttons[1]
    assert log_button.label == "log x" and log_button.args[0]["xaxis4.type"] == "log"


def test_cdf_points_leave_out_empty_cells_and_end_at_one():
    x, p = cdf_points([0.3, np.nan, 0.1, 0.2])
    assert list(x) == [0.1, 0.2, 0.3]
    assert list(p) == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_cdf_points_of_many_requests_keep_min_and_max_exactly():
    values = np.random.default_rng(1).lognormal(size=100_000)
    x, p = cdf_points(values, max_points=1000)
    assert len(x) <= 1000
    assert x[0] == values.min() and x[-1] == values.max() and p[-1] == 1.0
    assert np.all(np.diff(x) >= 0)


def test_colours_are_fixed_per_label_and_families_keep_their_colour():
    assert colour_for("paged") == FAMILY_TO_COLOUR["paged"]
    assert colour_for("reserved:pow2") == FAMILY_TO_COLOUR["reserved:pow2"]
    assert colour_for("paged:block_size=16") == colour_for("paged:block_size=16")
    assert colour_for("paged:block_size=16") != colour_for("reserved:max")
    assert colour_for("made-up-policy") == colour_for("made-up-policy")
    assert colour_for("paged:block_size=16") == FAMILY_TO_COLOUR["paged"]  # vLLM's default spelled out
    assert colour_for("paged:block_size=32") not in (
        colour_for("paged:block_size=16"),
        colour_for("vattention"),
    )


def test_rate_sweep_draws_each_configuration_in_rate_order():
    rows = [
        {
            "label": "paged",
            "request_rate_per_s": r,
            "normalized_latency_s_per_token": 0.03 + r / 100,
            "throughput_requests_per_s": r * 0.99,
        }
        for r in (3.0, 1.0, 2.0)
    ] + [
        {
            "label": "reserved:max",
            "request_rate_per_s": "1.5",
            "normalized_latency_s_per_token": "",
            "throughput_requests_per_s": "1.4",
        }
    ]  # CSV-style text cells; "" is a gap
    fig = rate_sweep_figure(rows)
    assert len(fig.data) == 2 * 2
    latency = fig.data[0]
    assert list(latency.x) == [1.0, 2.0, 3.0]
    assert list(latency.y) == pytest.approx([0.04, 0.05, 0.06])
    assert fig.data[2].y[0] is None and fig.data[3].y[0] == 1.4
    assert fig.layout.xaxis.title.text == "Request rate (requests/s)"


def test_rate_sweep_rejects_rows_without_a_rate():
    with pytest.raises(KvsimError, match="request_rate_per_s"):
        rate_sweep_figure([{"label": "paged"}])


def test_calibration_mape_comes_from_held_out_points_only():
    rows = [
        {"op": "gemm", "measured_s": 1.0, "predicted_s": 1.5, "held_out": False},  # in-sample: ignored
        {"op": "gemm", "measured_s": 2.0, "predicted_s": 2.2, "held_out": True},  # 10%
        {"op": "gemm", "measured_s": 4.0, "predicted_s": 3.6, "held_out": "true"},  # 10%
        {"op": "attn_decode_paged", "measured_s": 1e-4, "predicted_s": 1e-4, "held_out": "False"},
    ]
    assert held_out_mape(rows[:3]) == pytest.approx(10.0)
    fig = calibration_figure(rows)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["gemm<br>held-out MAPE 10.00%", "attn_decode_paged<br>no held-out points"]
    held_out = [t for t in fig.data if t.name == "held out"]
    assert [len(t.x) for t in held_out] == [2, 0]
    assert held_out[0].marker.symbol == "x"
    assert fig.layout.xaxis.type == "log"


def test_capacity_ranks_cost_per_million_requests():
    rows = [
        {
            "label": "paged h100 x1",
            "max_sustainable_rate_per_s": 10.0,
            "cost_per_hour_usd": 3.6,
            "num_gpus": 1,
        },
        {
            "label": "reserved:max h100 x2",
            "max_sustainable_rate_per_s": 5.0,
            "cost_per_hour_usd": 7.2,
            "num_gpus": 2,
        },
    ]
    assert cost_per_million_requests_usd(rows[0]) == pytest.approx(100.0)
    fig = capacity_figure(rows)
    assert len(fig.data) == 2
    assert list(fig.data[1].y) == pytest.approx([100.0, 400.0])
    assert list(fig.data[0].marker.color) == [colour_for(r["label"]) for r in rows]


def test_capacity_without_costs_shows_only_the_rate_panel():
    fig = capacity_figure([{"label": "paged", "max_sustainable_rate_per_s": None}])
    assert len(fig.data) == 1 and fig.data[0].y[0] is None
