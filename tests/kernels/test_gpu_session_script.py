"""scripts/gpu_session.sh: its CPU-checkable parts, through its dry-run mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "scripts" / "gpu_session.sh"


def _run(env_changes: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "KVSIM_DEVICE", "TRITON_INTERPRET")}
    env.update(PYTHON=sys.executable, **env_changes)
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_dry_run_checks_every_step_on_cpu(tmp_path, device):
    if device == "cuda":
        pytest.skip("the dry run is the CPU check; on a GPU the script itself runs")
    out = tmp_path / "out"
    result = _run({"OUT": str(out), "KVSIM_GPU_DRY_RUN": "1"}, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for step in (
        "1/7 install",
        "2/7 versions",
        "3/7 kernel tests",
        "4/7 kernel benchmark",
        "5/7 VMM mapping beside GPU work",
        "6/7 calibration",
    ):
        assert step in result.stdout
    assert "tests collected" in (out / "kernel_tests.log").read_text()
    assert (out / "kernel_bench.csv").read_text().startswith("kind,layout,")
    assert "NOT meaningful" in (out / "kernel_bench_summary.txt").read_text()
    # the CPU smoke calibration: sweeps, fit, then whole layers refitted into the profile
    assert (out / "step_validation-cpu.csv").read_text().startswith("kernel,decode_seqs,")
    assert (out / "profile-cpu.json").exists()
    assert "launch_overlap_rows" in (out / "measurements-cpu.csv").read_text().splitlines()[0]
    assert "gpu_session: OK" in result.stdout


def test_refuses_to_start_without_an_output_folder(tmp_path):
    result = _run({"KVSIM_GPU_DRY_RUN": "1"}, tmp_path)
    assert result.returncode != 0
    assert "set OUT to the folder where results go" in result.stderr


def test_script_is_strict_bash():
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in text
    assert "pip install -q --no-deps --no-build-isolation -e ." in text
    assert 'KVSIM_DEVICE=cuda soft_step "kernel tests"' in text
    assert (
        'soft_step "vmm overlap" 60 "$PY" -m kvsim.calibrate.vmm_overlap --out "$OUT/vmm_overlap.json"'
        in text
    )
    assert (
        '-m kvsim.calibrate --device cuda --tp 1,2,4,8 --out "$OUT" \\\n      --budget-s "$budget_s"' in text
    )
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)  # parses
