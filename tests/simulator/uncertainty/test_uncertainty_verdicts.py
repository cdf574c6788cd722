"""Verdicts with a known answer: a constant cost model whose step time is an uncertain term.

Requests arrive far apart, so each runs alone and its TPOT is exactly one step. ``paged`` steps take the
uncertain ``step_s`` (declared by its cost model); ``reserved:oracle`` steps take 10 ms, known exactly. So paged
is faster on TPOT wherever ``step_s`` < 10 ms: a range below 10 ms keeps the order in every case (robust), a
range across 10 ms breaks it at its high end (fragile, decided by ``step_s``).
"""

from pathlib import Path

import numpy as np
import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.cost.constant import ConstantCostModel
from kvsim.simulator.run import simulate
from kvsim.simulator.sweep.point import split_fields
from kvsim.simulator.uncertainty.run import run_uncertainty
from kvsim.simulator.uncertainty.terms import UncertainTerm, term_value
from kvsim.simulator.uncertainty.verdict import metric_values
from kvsim.traces.loaders import save_trace
from kvsim.traces.request import Provenance, Trace

RESERVED_STEP_S = 0.01
# the range under test, set by each test (module state read by the runner, which runs in this process)
RANGE = {"low": 0.0, "nominal": 0.0, "high": 0.0}


def step_term() -> UncertainTerm:
    return UncertainTerm("step_s", RANGE["nominal"], RANGE["low"], RANGE["high"], "s", "assumed", "test")


def constant_runner(fields, out_dir):
    config, workload = split_fields(fields)
    if config.allocator == "paged":
        term = step_term()
        cost = ConstantCostModel(step_s=term_value(config, "step_s", term.nominal), uncertain_terms=(term,))
    else:
        cost = ConstantCostModel(step_s=RESERVED_STEP_S)
    summary = simulate(config, workload.load(), cost_model=cost, keep_timeline=False).summary
    return {"metrics": metric_values(summary)}


@pytest.fixture
def trace_path(tmp_path) -> Path:
    n = 4
    trace = Trace(
        request_id=np.arange(n, dtype=np.int64),
        arrival_s=np.arange(n, dtype=np.float64) * 100.0,  # far apart: each request runs alone
        num_prompt_tokens=np.full(n, 32, dtype=np.int64),
        num_output_tokens=np.full(n, 8, dtype=np.int64),
        provenance=Provenance(source="test"),
    )
    path = tmp_path / "trace.jsonl"
    save_trace(trace, path)
    return path


def judge(trace_path: Path, out: Path, low: float, nominal: float, high: float):
    RANGE.update(low=low, nominal=nominal, high=high)
    configs = {
        label: {"trace": str(trace_path), "allocator": label, "model": "llama-2-7b", "gpu": "a100-80gb"}
        for label in ("paged", "reserved:oracle")
    }
    terms = {"paged": [step_term()], "reserved:oracle": []}
    result = run_uncertainty(configs, terms, out, runner=constant_runner)
    return result, next(v for v in result.verdicts if v.metric == "tpot_p50_s")


def test_a_range_below_break_even_keeps_the_order_robust(trace_path, tmp_path):
    result, verdict = judge(trace_path, tmp_path / "narrow", 0.008, 0.0085, 0.009)
    assert (verdict.better, verdict.worse, verdict.robust) == ("paged", "reserved:oracle", True)
    assert (verdict.num_holds, verdict.num_cases) == (3, 3)  # nominal, step_s=low, step_s=high
    assert verdict.sentence() == "paged < reserved:oracle on TPOT s p50 in 3 of 3 cases: robust"
    tpot = result.intervals["paged"]["tpot_p50_s"]
    assert (tpot.low, tpot.nominal, tpot.high) == pytest.approx((0.008, 0.0085, 0.009))


def test_widening_the_range_across_break_even_flips_the_verdict_and_names_the_term(trace_path, tmp_path):
    result, verdict = judge(trace_path, tmp_path / "wide", 0.008, 0.0085, 0.012)
    assert (verdict.better, verdict.robust, verdict.decided_by) == ("paged", False, "step_s")
    assert (verdict.num_holds, verdict.num_cases) == (2, 3)
    assert verdict.sentence() == (
        "paged < reserved:oracle on TPOT s p50 in 2 of 3 cases: not robust; driven by step_s"
    )
    assert result.intervals["reserved:oracle"]["tpot_p50_s"].high == pytest.approx(RESERVED_STEP_S)


def test_finished_cases_are_found_again_not_rerun(trace_path, tmp_path):
    first, _ = judge(trace_path, tmp_path / "again", 0.008, 0.0085, 0.012)
    second, verdict = judge(trace_path, tmp_path / "again", 0.008, 0.0085, 0.012)
    assert first.num_run == 4  # both at nominal, paged at step_s=low and =high (reserved has no step_s: once)
    assert second.num_run == 0
    assert not verdict.robust


def test_a_case_value_for_a_term_the_run_does_not_have_is_refused(trace_path):
    from kvsim.simulator.config import SimConfig
    from kvsim.traces import load_trace

    config = SimConfig(allocator="paged", term_values="no_such_term=1.0")
    with pytest.raises(KvsimError, match="no_such_term not an uncertain term of this run"):
        simulate(config, load_trace(str(trace_path)), cost_model=ConstantCostModel())
