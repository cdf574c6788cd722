"""The whole-model check (calibrate/validate_model.py) on CPU: a tiny model's steps measured with the reference
kernels (numbers that mean nothing), predicted from a profile, and re-predicted from its CSV without a device."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kvsim.calibrate import validate_model  # noqa: E402
from kvsim.calibrate.run import SMOKE_MODEL  # noqa: E402
from kvsim.calibrate.validate_step import StepCase  # noqa: E402
from kvsim.simulator.cost import ProfileCostModel, roofline_profile  # noqa: E402
from kvsim.simulator.specs import GpuSpec  # noqa: E402

ABSENT_ON_GPU_MACHINE = ("simpy", "plotly", "tqdm", "hypothesis")
PROFILE = roofline_profile(GpuSpec.from_name("h100-sxm"))


def test_step_inputs_write_each_new_token_into_its_own_block_and_sample_each_sequences_last():
    case = StepCase(decode_seqs=2, decode_context=20, prefill_seqs=2, prefill_q_len=5, prefill_prefix=11)
    lm = validate_model.LlamaModel(SMOKE_MODEL, "cpu", "reference", pool_tokens=128, seed=0)
    inputs = validate_model.StepInputs(lm, case, np.random.default_rng(0))
    assert inputs.num_tokens == 2 + 10 and inputs.num_seqs == 4
    # decode tokens at position 19 (their 20th), then each prompt chunk's positions 11..15
    assert inputs.positions.tolist() == [19, 19, *range(11, 16), *range(11, 16)]
    assert len(set(inputs.slot_mapping.tolist())) == 12  # no two tokens share a cache slot
    assert inputs.last_token_index.tolist() == [0, 1, 6, 11]
    logits = lm.forward(inputs)
    assert logits.shape == (4, SMOKE_MODEL.vocab_size) and torch.isfinite(logits).all()


def test_the_forward_writes_the_new_tokens_kv_into_every_layers_cache():
    lm = validate_model.LlamaModel(SMOKE_MODEL, "cpu", "reference", pool_tokens=64, seed=0)
    inputs = validate_model.StepInputs(
        lm, StepCase(prefill_seqs=1, prefill_q_len=7), np.random.default_rng(1)
    )
    slots = inputs.slot_mapping
    before = [layer[6].view(-1, *layer[6].shape[2:])[slots].clone() for layer in lm.layers]
    lm.forward(inputs)
    for layer, old in zip(lm.layers, before):
        assert not torch.equal(layer[6].view(-1, *layer[6].shape[2:])[slots], old)


def test_cpu_run_measures_each_case_once_and_sustained_and_predicts_gpu_time_only():
    rows, skipped = validate_model.measure(SMOKE_MODEL, "cpu", sustained_steps=2)
    assert len(rows) == len(validate_model.CPU_CASES) and skipped == []
    assert rows[0]["mode"] == "eager" and "no CUDA graphs on CPU" in rows[0]["note"]
    assert all(r["once_us"] > 0 and r["sustained_us"] > 0 and r["sustained_steps"] == 2 for r in rows)
    predicted = validate_model.predict(rows, PROFILE, SMOKE_MODEL)
    cost = ProfileCostModel(PROFILE, SMOKE_MODEL)
    for row, case in zip(predicted, validate_model.CPU_CASES):
        step = cost.step_time(case.batch("paged"))
        assert row["predicted_us"] == round((step.total_s - step.overhead_s) * 1e6, 1)  # no host overhead
        assert row["err_sustained_pct"] == round(
            ((step.total_s - step.overhead_s) / (row["sustained_us"] * 1e-6) - 1) * 100, 2
        )
        assert row["pred_sampling_us"] == round(step.sampling_s * 1e6, 1) > 0


def test_a_spent_budget_skips_the_remaining_cases_and_says_so():
    rows, skipped = validate_model.measure(SMOKE_MODEL, "cpu", budget_s=0.0, sustained_steps=1)
    assert rows == [] and len(skipped) == len(validate_model.CPU_CASES)
    assert "budget was spent" in skipped[0]


def test_from_csv_repredicts_and_the_table_says_whether_the_goal_is_met(tmp_path, capsys):
    cost = ProfileCostModel(PROFILE, SMOKE_MODEL)
    rows = []
    for case, off in (
        (StepCase(decode_seqs=4, decode_context=100), 1.0),
        (StepCase(prefill_seqs=1, prefill_q_len=64), 1.03),
    ):
        step = cost.step_time(case.batch("paged"))
        gpu_us = (step.total_s - step.overhead_s) * 1e6
        rows.append(
            {**{k: getattr(case, k) for k in validate_model.CASE_FIELDS}, "mode": "graph", "once_us": gpu_us,
             "sustained_us": gpu_us * off, "sustained_steps": 200, "note": ""}
        )  # fmt: skip
    measured = validate_model.write_rows(rows, tmp_path / "measured.csv")
    out = tmp_path / "again.csv"
    args = [
        "--device",
        "cpu",
        "--profile",
        "roofline:h100-sxm",
        "--from-csv",
        str(measured),
        "--out",
        str(out),
    ]
    assert validate_model.main([*args, "--model", "llama-3-8b"]) == 0
    printed = capsys.readouterr().out
    # the CSV is re-predicted for the --model given (Llama-3-8B), not the tiny one it was measured on
    again = list(csv.DictReader(out.open()))
    assert float(again[0]["predicted_us"]) > 10 * float(rows[0]["once_us"])
    assert "NOT met" in printed
    # the tiny model's predictions against themselves: errors 0 and 1 / 1.03 - 1 = -2.9%, the goal met
    table = validate_model.table(validate_model.predict(rows, PROFILE, SMOKE_MODEL))
    assert "sustained: mean |error| 1.5% (max 2.9%) over 2 steps; goal mean <= 5%, max <= 10%: met" in table


def test_runs_as_a_module_without_the_modules_the_gpu_machine_lacks(tmp_path, smoke_calibration):
    _, profile = smoke_calibration
    out = tmp_path / "model_validation-cpu.csv"
    code = (
        f"import sys; sys.modules.update(dict.fromkeys({ABSENT_ON_GPU_MACHINE!r}));"
        "from kvsim.calibrate.validate_model import main;"
        f"sys.exit(main(['--device', 'cpu', '--profile', {str(profile)!r}, '--out', {str(out)!r}, '--steps', '1']))"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "sustained: mean |error|" in result.stdout
    assert out.read_text().startswith(",".join(validate_model.COLUMNS[:5]))
