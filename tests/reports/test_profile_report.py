"""A calibration profile as a report: the quality table from the profile, the points from its measurements."""

from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from kvsim.calibrate.fit import fit_profile
from kvsim.calibrate.measurements import Measurements
from kvsim.cli import main
from kvsim.reports import write_profile_report
from kvsim.reports.profile import calibration_rows, measurements_beside, quality_in_words
from kvsim.simulator.cost.profile import load_profile
from kvsim.simulator.specs import GPUS

DEVICE = {"name": "test-gpu", "memory_bytes": 80 * 2**30, "num_sms": 132}


@pytest.fixture
def profile_path(tmp_path):
    """A profile fitted (by kvsim.calibrate) from decode timings that are linear in their features, +-2% noise."""
    rng = np.random.default_rng(0)
    measurements = Measurements({"device": DEVICE, "source": "measured", "device_key": "test-gpu"})
    for num_seqs in (1, 2, 4, 8, 16, 32):
        for context in (256, 1024, 4096):
            kv_bytes = num_seqs * context * 4096.0
            seconds = (5e-6 + 1e-12 * kv_bytes + 2e-7 * num_seqs) * rng.uniform(0.98, 1.02)
            timing = SimpleNamespace(median_s=seconds, p10_s=seconds, p90_s=seconds, reps=5)
            measurements.add("attn_decode_contiguous", {"kv_bytes": kv_bytes, "num_seqs": num_seqs}, timing)
    measurements.save(tmp_path / "measurements-test-gpu.csv")
    profile = fit_profile(measurements.meta, measurements.rows, GPUS["a100-80gb"])
    return profile.save(tmp_path / "profile-test-gpu.json")


def test_every_measured_point_of_a_fitted_term_is_compared_with_the_profiles_prediction(profile_path):
    profile = load_profile(profile_path)
    rows = calibration_rows(profile, profile_path.with_name("measurements-test-gpu.csv"))
    assert len(rows) == 18 and {r["op"] for r in rows} == {"attn_decode_contiguous"}
    assert not any(r["held_out"] for r in rows)  # the shipped parameters saw every point
    errors = [abs(r["predicted_s"] - r["measured_s"]) / r["measured_s"] for r in rows]
    assert max(errors) < 0.05  # a 2%-noise linear law is fitted within a few percent
    assert quality_in_words(profile)["attn_decode_contiguous"].startswith("held-out MAPE ")


def test_profile_report_shows_quality_table_points_and_source(profile_path, tmp_path):
    text = write_profile_report(profile_path, tmp_path / "p.html").read_text()
    assert "<td>attn_decode_contiguous</td><td>linear</td><td>measured</td>" in text
    assert "<td>step_overhead</td><td>linear</td><td>roofline</td>" in text  # borrowed terms say so
    assert "<td>allreduce</td><td>linear</td><td>measured</td>" in text  # DGX A100's NCCL (Vidur's)
    assert "figure-1" in text and "NOT REPRESENTATIVE" not in text


def test_cli_reports_a_profile_and_refuses_raw_measurements(profile_path, tmp_path):
    ok = CliRunner().invoke(main, ["report", str(profile_path), "--out", str(tmp_path / "p.html")])
    assert ok.exit_code == 0, ok.output
    raw = CliRunner().invoke(
        main,
        [
            "report",
            str(profile_path.with_name("measurements-test-gpu.csv")),
            "--out",
            str(tmp_path / "m.html"),
        ],
    )
    assert raw.exit_code == 2 and "pass the profile JSON" in raw.output


def test_whole_layer_rows_are_compared_with_their_kernels_less_the_launch_overlap():
    """The shipped H200 profile: its launch_overlap rows are layers, predicted as their kernels timed alone
    less the overlap per call after the first (not as the term's bare constant)."""
    from kvsim.simulator.cost import shipped_profile_path

    path = shipped_profile_path("h200")
    rows = [
        r
        for r in calibration_rows(load_profile(path), measurements_beside(path))
        if r["op"] == "launch_overlap"
    ]
    assert len(rows) == 23
    errors = [abs(r["predicted_s"] / r["measured_s"] - 1) for r in rows]
    assert np.mean(errors) < 0.03
