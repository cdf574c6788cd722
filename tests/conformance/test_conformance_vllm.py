"""kvsim's ``vllm`` scheduler agrees with vLLM 0.34.0's real v1 scheduler step for step, on every case.

Needs the vLLM venv (``scripts/conformance/build_vllm_venv.sh``): ``$KVSIM_VLLM_VENV``, else ``.venv-vllm`` at
the repository root. Without either the tests are skipped with that reason; with ``KVSIM_VLLM_VENV`` set to a
broken venv they fail (CI sets it after building the venv, so that they never skip there).
"""

from __future__ import annotations

import pytest

from kvsim.conformance.cases import case_names, make_case
from kvsim.conformance.compare import compare, divergence_detail
from kvsim.conformance.kvsim_side import run_kvsim
from kvsim.conformance.vllm_side import missing_venv_message, run_vllm, venv_python


@pytest.fixture(scope="module")
def vllm_results(two_requests: dict) -> dict[str, dict]:
    python = venv_python()  # a named but broken venv raises here: an error, not a skip
    if python is None:
        pytest.skip(missing_venv_message())
    names = case_names()
    results = run_vllm([*(make_case(name) for name in names), two_requests], python)
    return dict(zip([*names, two_requests["name"]], results))


def test_vllm_steps_are_recorded_as_scheduled(vllm_results: dict[str, dict], two_requests: dict) -> None:
    # The driver's records of vLLM, by arithmetic (test_harness.py has the same for kvsim): budget 32, so
    # request 0's 40-token prompt takes two steps; request 1's 20 tokens join the second; then both decode.
    result = vllm_results[two_requests["name"]]
    steps = [(s["start"], s["prefill"], s["decode"], s["admitted"]) for s in result["steps"]]
    assert steps == [
        (0, {"0": 32}, [], {"0": 0}),
        (1, {"0": 8, "1": 20}, [], {"1": 0}),
        (2, {}, ["0", "1"], {}),
        (3, {}, ["0"], {}),
    ]
    assert [(r["first_token_step"], r["finish_step"]) for r in result["requests"].values()] == [
        (1, 3),
        (1, 2),
    ]


@pytest.mark.parametrize("name", case_names())
def test_every_step_agrees_with_vllm(name: str, vllm_results: dict[str, dict]) -> None:
    report = compare(name, vllm_results[name], run_kvsim(make_case(name)))
    assert report.steps_vllm > 0 and report.num_requests == len(make_case(name)["requests"])
    assert report.ok, divergence_detail(report)


def test_the_comparison_sees_a_kvsim_that_keeps_a_watermark(vllm_results: dict[str, dict]) -> None:
    # The harness is not blind: kvsim with v0.6.3's watermark (1% of the blocks kept free at admission) against
    # vLLM 0.34's 0 parts from vLLM under memory pressure.
    name = "preemption-storm/pressure"
    case = make_case(name)
    case["config"]["watermark"] = 0.01
    report = compare(name, vllm_results[name], run_kvsim(case))
    assert not report.ok and report.num_divergent_steps > 0 and report.first_divergent_step is not None
