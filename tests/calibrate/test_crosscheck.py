"""calibrate/crosscheck.py: a profile scored on measurements it was not fitted on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kvsim.calibrate import crosscheck
from kvsim.calibrate.measurements import load_measurements
from kvsim.simulator.cost.profile import load_profile


def test_scores_each_term_with_the_term_the_cost_model_would_use(smoke_calibration, capsys):
    measurements_path, profile_path = smoke_calibration
    profile, rows = load_profile(profile_path), load_measurements(measurements_path).rows
    # a per-op fit of the profiled model's QKV GEMM that differs from the pooled one (the smoke run has too few
    # points per op to fit its own)
    pooled = profile.terms["gemm"]
    per_op = dataclasses.replace(pooled, params={**pooled.params, "const_s": 2 * pooled.params["const_s"]})
    profile = dataclasses.replace(profile, terms={**profile.terms, "gemm.qkv": per_op})
    own = crosscheck.score(profile, rows, profile.model)
    other = crosscheck.score(profile, rows, "some-other-model")
    assert set(own) == {r["term"] for r in rows if r["term"].startswith(("gemm.", "attn_"))}
    # attention terms do not depend on the model; another model's GEMMs get the pooled fit, not the per-op one
    for name in own:
        assert own[name][0] == other[name][0] > 0
        if name.startswith("attn_"):
            assert own[name][1] == other[name][1]
    op_rows = [r for r in rows if r["term"] == "gemm.qkv"]
    assert own["gemm.qkv"][1] != other["gemm.qkv"][1]
    for scores, term in ((own, per_op), (other, pooled)):
        expected = sum(
            abs(term.predict(flops=float(r["flops"]), bytes=float(r["bytes"])) / float(r["median_s"]) - 1)
            for r in op_rows
        )
        assert scores["gemm.qkv"][1] == pytest.approx(100 * expected / len(op_rows))
        ratios = [
            term.predict(flops=float(r["flops"]), bytes=float(r["bytes"])) / float(r["median_s"])
            for r in op_rows
        ]
        assert scores["gemm.qkv"][2] == pytest.approx(float(np.median(ratios)))
    # the per-op fit doubled the constant: its predictions can only be longer
    assert own["gemm.qkv"][2] > other["gemm.qkv"][2]
    assert crosscheck.main(["--profile", str(profile_path), str(measurements_path)]) == 0
    assert "attn_decode_paged" in capsys.readouterr().out


def test_a_gpus_datasheet_roofline_can_be_scored_by_name(smoke_calibration, capsys):
    measurements_path, _ = smoke_calibration
    assert crosscheck.main(["--profile", "roofline:h100-sxm", str(measurements_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("profile roofline:h100-sxm (from the datasheet): MAPE %")
    assert "attn_decode_paged" in out and " x" in out
    assert crosscheck.main(["--profile", "roofline:h900", str(measurements_path)]) == 2
    assert "unknown GPU 'h900'" in capsys.readouterr().err
