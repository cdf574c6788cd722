"""A CPU smoke calibration shared by the calibrate tests that need a measurements CSV and its profile; the tests
import fitted_json.py beside them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def smoke_calibration(tmp_path_factory):
    """(measurements CSV, profile JSON) of a CPU smoke run: tiny shapes, torch reference kernels."""
    from kvsim.calibrate.run import calibrate

    out = tmp_path_factory.mktemp("smoke-calibration")
    result = calibrate("cpu", out=out, budget_s=30, impl="reference", show_progress=False)
    return result.measurements_path, result.profile_path
