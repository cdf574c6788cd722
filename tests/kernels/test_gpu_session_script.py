"""scripts/gpu_session.sh: its CPU-checkable parts, through its dry-run mode."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "scripts" / "gpu_session.sh"
MAX_FILES_BACK = 8  # what a GPU loan brings back from $OUT (/work/.library/device/README.md, Limits)
NAME_BACK = re.compile(r"[A-Za-z0-9._-]+")  # ... named in letters, digits, '.', '_' and '-' alone


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
        "1/8 install",
        "2/8 versions",
        "3/8 kernel tests",
        "4/8 kernel benchmark",
        "5/8 VMM mapping beside GPU work",
        "6/8 calibration",
        "7/8 whole-model check",
        "8/8 summary",
    ):
        assert step in result.stdout
    # logs and small outputs of steps 3-5 come back packed in one tarball
    with tarfile.open(out / "gpu_session-extras.tar.gz") as extras:
        assert "tests collected" in extras.extractfile("kernel_tests.log").read().decode()
        assert extras.extractfile("kernel_bench.csv").read().decode().startswith("kind,layout,")
        assert "NOT meaningful" in extras.extractfile("kernel_bench_summary.txt").read().decode()
    # the CPU smoke calibration: sweeps, fit, then whole layers refitted into the profile
    assert (out / "step_validation-cpu.csv").read_text().startswith("kernel,decode_seqs,")
    profile = (out / "profile-cpu.json").read_text()
    for term in ("rmsnorm", "kv_write_paged", "kv_write_contiguous", "sampling", "sampling_top_p"):
        assert f'"{term}"' in profile
    assert "launch_overlap_rows" in (out / "measurements-cpu.csv").read_text().splitlines()[0]
    # the whole-model check on a tiny model: one row per batch, predicted beside measured
    rows = (out / "model_validation-cpu.csv").read_text().splitlines()
    assert rows[0].startswith("decode_seqs,decode_context,prefill_seqs,") and len(rows) == 4
    # everything comes back from a GPU loan: few enough files, plainly named, at most 2 folders down
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= MAX_FILES_BACK, sorted(p.name for p in files)
    for path in files:
        relative = path.relative_to(out)
        assert len(relative.parts) <= 3 and all(NAME_BACK.fullmatch(part) for part in relative.parts)
    assert "gpu_session: OK" in result.stdout


def test_the_gpu_run_writes_few_enough_files_to_come_back():
    # The GPU branch writes more than the dry run (logs, the VMM JSON). Every file the script names under $OUT,
    # the three that calibration writes there and a session log the caller may tee into it must fit.
    text = SCRIPT.read_text()
    named = {re.sub(r"-(cpu|\$key)\.", "-<gpu>.", m) for m in re.findall(r'"\$OUT/([^"\s]+)"', text)}
    calibration = {"profile-<gpu>.json", "measurements-<gpu>.csv", "step_validation-<gpu>.csv"}
    assert len(named | calibration | {"session.log"}) <= MAX_FILES_BACK, sorted(named)


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
        'soft_step "vmm overlap" 60 "$PY" -m kvsim.calibrate.vmm_overlap --out "$WORK/vmm_overlap.json"'
        in text
    )
    assert (
        'soft_step "whole-model check" "$MODEL_CHECK_MAX_S" "$PY" -m kvsim.calibrate.validate_model' in text
    )
    assert "trap pack EXIT" in text
    assert (
        '-m kvsim.calibrate --device cuda --tp 1,2,4,8 --out "$OUT" \\\n      --budget-s "$budget_s"' in text
    )
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)  # parses
