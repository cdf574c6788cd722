"""calibrate/validate_step.py: a whole decoder layer against its parts and the profile's prediction.

On CPU it runs a tiny model with the torch reference kernels (the numbers mean nothing; the code path is what
is checked); the GPU script runs it on the GPU against the profile it has just fitted."""

from __future__ import annotations

import csv

from kvsim.calibrate import validate_step
from kvsim.calibrate.validate_step import COLUMNS, StepCase


def test_cpu_smoke_run_writes_one_row_per_case_and_kernel(tmp_path, capsys):
    out = tmp_path / "steps.csv"
    assert validate_step.main(["--device", "cpu", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == list(COLUMNS)
    # three CPU cases x two kernels, less the contiguous run of the case with a cached prefix
    assert [(r["kernel"], r["prefill_prefix"]) for r in rows] == [
        ("paged", "0"), ("contiguous", "0"), ("paged", "0"), ("contiguous", "0"), ("paged", "16"),
    ]  # fmt: skip
    for r in rows:
        layer, parts, predicted = (
            float(r[k]) for k in ("measured_layer_us", "sum_of_parts_us", "predicted_us")
        )
        assert layer > 0 and parts > 0 and predicted > 0
        assert abs(float(r["model_err_pct"]) - (predicted / layer - 1) * 100) < 0.05
    assert "mean |model err|" in capsys.readouterr().out


def test_a_case_is_the_batch_the_cost_model_is_asked_about():
    mixed = StepCase(decode_seqs=3, decode_context=40, prefill_seqs=2, prefill_q_len=8, prefill_prefix=16)
    paged = mixed.batch("paged")
    assert paged.prefill_q_lens == (8, 8) and paged.prefill_kv_lens == (24, 24)
    assert paged.num_decode_seqs == 3 and paged.decode_kv_tokens == 120
    assert paged.decode_kv_blocks == 3 * 3  # 40 tokens in blocks of 16
    assert mixed.batch("contiguous").decode_kv_blocks == 0
