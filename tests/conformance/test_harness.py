"""The conformance harness itself, without vLLM: kvsim's step records, the comparison, the cases and the
driver's token ids (the driver's module imports vLLM only inside its functions)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from kvsim.conformance.cases import case_names, make_case
from kvsim.conformance.compare import compare, divergence_detail, table
from kvsim.conformance.kvsim_side import run_kvsim
from kvsim.conformance.vllm_side import DRIVER, VENV_ENV, venv_python
from kvsim.errors import KvsimError


def _driver():
    spec = importlib.util.spec_from_file_location("vllm_driver", DRIVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kvsim_steps_are_recorded_as_scheduled(two_requests: dict):
    # budget 32: step 0 takes 32 of request 0's 40 prompt tokens; step 1 its last 8 and request 1's 20 (both
    # first tokens); then both decode; request 1 (2 tokens) ends at step 2, request 0 (3 tokens) at step 3.
    result = run_kvsim(two_requests)
    steps = [(s["start"], s["prefill"], s["decode"], s["admitted"]) for s in result["steps"]]
    assert steps == [
        (0, {"0": 32}, [], {"0": 0}),
        (1, {"0": 8, "1": 20}, [], {"1": 0}),
        (2, {}, ["0", "1"], {}),
        (3, {}, ["0"], {}),
    ]
    assert result["requests"]["0"]["first_token_step"] == 1 and result["requests"]["0"]["finish_step"] == 3
    assert result["requests"]["1"]["first_token_step"] == 1 and result["requests"]["1"]["finish_step"] == 2
    assert result["fast_forward_mismatches"] == []


def test_kvsim_idle_time_jumps_to_the_next_arrival(two_requests: dict):
    case = {**two_requests, "requests": [dict(two_requests["requests"][0])]}
    case["requests"].append({"index": 1, "arrival_step": 10, "num_prompt_tokens": 20, "num_output_tokens": 2})
    starts = [s["start"] for s in run_kvsim(case)["steps"]]
    assert starts == [0, 1, 2, 3, 10, 11]


def test_identical_records_agree_and_one_changed_step_is_found(two_requests: dict):
    kvsim = run_kvsim(two_requests)
    same = compare("two", kvsim, kvsim)
    assert same.ok and same.num_divergent_steps == 0 and same.first_divergent_step is None
    changed = {**kvsim, "steps": [dict(s) for s in kvsim["steps"]]}
    changed["steps"][2]["decode"] = ["0"]
    changed["steps"][2]["num_decode_seqs"] = 1
    report = compare("two", changed, kvsim)
    assert not report.ok
    assert (report.first_divergent_step, report.num_divergent_steps) == (2, 1)
    assert report.first_divergence["fields"] == ["decode", "num_decode_seqs"]
    assert "first divergent step 2" in divergence_detail(report)
    assert "| two | 2 | 4 / 4 | 2 | 1 |" in table([report])


def test_a_longer_run_and_a_request_result_are_divergences(two_requests: dict):
    kvsim = run_kvsim(two_requests)
    longer = {**kvsim, "steps": kvsim["steps"] + [kvsim["steps"][-1]]}
    report = compare("two", longer, kvsim)
    assert (report.steps_vllm, report.steps_kvsim, report.num_divergent_steps) == (5, 4, 1)
    later = {**kvsim, "requests": {**kvsim["requests"], "1": {**kvsim["requests"]["1"], "finish_step": 3}}}
    report = compare("two", later, kvsim)
    assert report.num_divergent_steps == 0 and not report.ok
    assert report.request_mismatches == {"1": {"finish_step": (3, 2)}}


def test_cases_are_the_same_every_time_and_pressure_has_fewer_blocks():
    assert len(case_names()) == 28
    for name in case_names():
        assert make_case(name) == make_case(name)
    for workload in {name.split("/")[0] for name in case_names()}:
        roomy, pressure = make_case(f"{workload}/roomy"), make_case(f"{workload}/pressure")
        assert roomy["requests"] == pressure["requests"]
        assert pressure["config"]["num_blocks"] < roomy["config"]["num_blocks"]


def test_unknown_and_unsupported_cases_are_refused_with_the_reason():
    with pytest.raises(KvsimError, match="unknown conformance case 'nope/roomy'"):
        make_case("nope/roomy")
    with pytest.raises(KvsimError, match="fans a request out into n separate requests"):
        make_case("parallel-sampling/roomy")


def test_driver_tokens_equal_exactly_where_hash_ids_do():
    driver = _driver()
    a = driver.prompt_token_ids(0, 1100, [7, 8, 9])
    b = driver.prompt_token_ids(1, 1100, [7, 8, 5])
    assert a[:1024] == b[:1024] and a[1024:] != b[1024:]
    own = driver.prompt_token_ids(2, 600, [7])  # past its one hash id: its own tokens
    assert own[:512] == a[:512] and set(own[512:]) == {driver.OWN_TOKEN_BASE + 2}
    assert driver.prompt_token_ids(3, 40, None) == [driver.OWN_TOKEN_BASE + 3] * 40
    with pytest.raises(ValueError, match="hash id -1"):
        driver.prompt_token_ids(0, 10, [-1])


def test_a_named_venv_without_python_is_an_error_not_a_skip(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(VENV_ENV, str(tmp_path / "missing"))
    with pytest.raises(KvsimError, match="has no bin/python; build it with"):
        venv_python()


def test_cli_lists_the_cases_and_the_one_not_run():
    from click.testing import CliRunner

    from kvsim.cli import main

    result = CliRunner().invoke(main, ["conformance", "vllm", "--list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[: len(case_names())] == case_names()
    assert lines[-1].startswith("parallel-sampling: not run: vLLM v1's scheduler has no n > 1")


def test_cli_refuses_a_missing_venv_and_an_unknown_case_in_one_line(tmp_path: Path, monkeypatch):
    from click.testing import CliRunner

    from kvsim.cli import main

    monkeypatch.setenv(VENV_ENV, str(tmp_path / "missing"))
    result = CliRunner().invoke(main, ["conformance", "vllm", "--case", "decode-heavy/roomy"])
    assert result.exit_code == 2 and "has no bin/python; build it with" in result.output
    result = CliRunner().invoke(main, ["conformance", "vllm", "--case", "decode-heavy"])
    assert result.exit_code == 2 and "unknown conformance case 'decode-heavy'" in result.output


def test_hybrid_cases_run_kvsim_on_their_layers_with_vllms_groups():
    # The hybrid cases' model is the case's layer_types and window (a config.json kvsim reads as any --model
    # path); its KV-cache groups number what vLLM's rule gives (num_kv_cache_groups; the driver asks vLLM's
    # get_kv_cache_groups); prompts run past the window, and pressure preempts.
    from kvsim.conformance.cases import num_kv_cache_groups
    from kvsim.conformance.kvsim_side import model_of
    from kvsim.simulator.kv_groups import kv_cache_layout
    from kvsim.simulator.specs import ModelSpec

    expected = {"hybrid-interleaved": (2, 256), "hybrid-5to1": (6, 384), "hybrid-all-window": (1, 128)}
    for workload, (num_groups, window) in expected.items():
        case = make_case(f"{workload}/pressure")
        model = ModelSpec.from_name(model_of(case))
        assert model.layer_types == tuple(case["config"]["layer_types"]) and model.sliding_window == window
        layout = kv_cache_layout(model, 1, case["config"]["block_size"])
        assert len(layout.groups) == num_kv_cache_groups(model.layer_types) == num_groups
        assert max(r["num_prompt_tokens"] for r in case["requests"]) > 4 * window
        result = run_kvsim(case)
        assert sum(r["num_preemptions"] for r in result["requests"].values()) > 0, workload
