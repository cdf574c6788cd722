"""calibrate/validate_step.py: whole decoder layers against their parts and the profile's prediction.

On CPU it runs a tiny model with the torch reference kernels (the numbers mean nothing; the code path is what
is checked); `kvsim calibrate` runs it on the GPU after its sweeps, against the profile it has just fitted."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from kvsim.calibrate import validate_step
from kvsim.calibrate.measurements import load_measurements
from kvsim.calibrate.validate_step import COLUMNS, StepCase
from kvsim.simulator.cost.roofline import roofline_profile
from kvsim.simulator.specs import GPUS


def test_cpu_smoke_run_writes_one_row_per_case_and_kernel(tmp_path, capsys):
    out = tmp_path / "steps.csv"
    assert validate_step.main(["--device", "cpu", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == list(COLUMNS)
    # three CPU cases x two kernels, less the contiguous run of the case with a cached prefix
    assert [(r["kernel"], r["prefill_prefix"], r["launches"]) for r in rows] == [
        ("paged", "0", "5"), ("contiguous", "0", "5"), ("paged", "0", "5"), ("contiguous", "0", "5"),
        ("paged", "16", "6"),
    ]  # fmt: skip
    for r in rows:
        layer, predicted = float(r["measured_layer_us"]), float(r["predicted_us"])
        assert layer > 0 and float(r["sum_of_parts_us"]) > 0 and predicted > 0
        assert abs(float(r["model_err_pct"]) - (predicted / layer - 1) * 100) < 0.05
    assert "with launch overlap: mean |error|" in capsys.readouterr().out


def _layers_csv(path, overlap_us: float) -> None:
    """Eight llama-3-8b decode layers whose kernels, timed alone, each took ``overlap_us`` more."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for i, kernel in enumerate(["paged", "contiguous"] * 4):
            layer_us = 150.0 + 40 * i
            writer.writerow(
                dict(
                    kernel=kernel, decode_seqs=2**i, decode_context=1024, prefill_seqs=0, prefill_q_len=0,
                    prefill_prefix=0, launches=5, measured_layer_us=layer_us,
                    sum_of_parts_us=layer_us + 4 * overlap_us,
                )
            )  # fmt: skip


def test_layers_join_the_measurements_and_the_refit_profile_takes_their_launch_overlap(
    smoke_calibration, tmp_path
):
    smoke_measurements, _ = smoke_calibration
    layers, measurements = tmp_path / "layers.csv", tmp_path / "measurements-cpu.csv"
    _layers_csv(layers, overlap_us=6.0)
    measurements.write_text(smoke_measurements.read_text())
    # predicted with a roofline whose kernel constants (20 us) all exceed the overlap, so none clamps at zero
    roofline = roofline_profile(GPUS["h200"])
    terms = {
        name: dataclasses.replace(t, params={**t.params, "const_s": 20e-6})
        if name.startswith(("gemm", "attn"))
        else t
        for name, t in roofline.terms.items()
    }
    profile = dataclasses.replace(roofline, terms=terms).save(tmp_path / "roofline.json")
    out = tmp_path / "again.csv"
    argv = ["--from-csv", str(layers), "--model", "llama-3-8b", "--profile", str(profile)]
    argv += ["--out", str(out), "--measurements", str(measurements)]
    assert validate_step.main(argv) == 0
    rows = load_measurements(measurements).rows
    assert sum(r["term"] == "launch_overlap" for r in rows) == 8
    profile = json.loads((tmp_path / "profile-cpu.json").read_text())
    assert profile["terms"]["launch_overlap"]["params"]["const_s"] == pytest.approx(6e-6)
    # a second run replaces the layer rows instead of adding to them
    assert validate_step.main(argv) == 0
    assert sum(r["term"] == "launch_overlap" for r in load_measurements(measurements).rows) == 8
    again = list(csv.DictReader(out.open()))
    assert len(again) == 8 and all(float(r["predicted_overlap_us"]) > 0 for r in again)
    # leave-one-out: with every layer saving the same, each layer's overlap is the others' 6 us
    for r in again:
        assert float(r["predicted_us"]) - float(r["predicted_overlap_us"]) == pytest.approx(4 * 6.0, abs=0.05)


def test_a_case_is_the_batch_the_cost_model_is_asked_about():
    mixed = StepCase(decode_seqs=3, decode_context=40, prefill_seqs=2, prefill_q_len=8, prefill_prefix=16)
    paged = mixed.batch("paged")
    assert paged.prefill_q_lens == (8, 8) and paged.prefill_kv_lens == (24, 24)
    assert paged.num_decode_seqs == 3 and paged.decode_kv_tokens == 120
    assert paged.decode_kv_blocks == 3 * 3  # 40 tokens in blocks of 16
    assert mixed.batch("contiguous").decode_kv_blocks == 0


def test_a_gpus_datasheet_roofline_can_be_validated_by_name(tmp_path, capsys):
    """``--profile roofline:GPU`` predicts the layers with that GPU's roofline, the same as its saved file."""
    layers = tmp_path / "layers.csv"
    _layers_csv(layers, overlap_us=6.0)
    by_name, by_file = tmp_path / "by_name.csv", tmp_path / "by_file.csv"
    saved = roofline_profile(GPUS["h100-sxm"]).save(tmp_path / "roofline-h100.json")
    argv = ["--from-csv", str(layers), "--model", "llama-3-8b"]
    assert validate_step.main([*argv, "--profile", "roofline:h100-sxm", "--out", str(by_name)]) == 0
    assert validate_step.main([*argv, "--profile", str(saved), "--out", str(by_file)]) == 0
    assert by_name.read_text() == by_file.read_text()
    a100 = tmp_path / "a100.csv"
    assert validate_step.main([*argv, "--out", str(a100)]) == 0  # the default: A100-80GB's roofline
    assert a100.read_text() != by_name.read_text()
    capsys.readouterr()
    assert validate_step.main([*argv, "--profile", "roofline:h900", "--out", str(tmp_path / "x.csv")]) == 2
    assert "unknown GPU 'h900'" in capsys.readouterr().err
