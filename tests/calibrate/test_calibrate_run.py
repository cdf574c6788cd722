"""The calibration pipeline end to end on CPU (tiny shapes, torch references), refitting from CSV, and the
refusals. Runs on the GPU machine too (no hypothesis here); there the `gpu` test profiles for real."""

import json
import os
import subprocess
import sys

import pytest

from kvsim.calibrate.measurements import load_measurements
from kvsim.calibrate.run import fit_only, gpu_key
from kvsim.calibrate.sweeps import coarse_to_fine
from kvsim.errors import KvsimError
from kvsim.simulator.batch import Batch
from kvsim.simulator.cost import load_profile, make_cost_model

# The GPU machine has none of these: `python -m kvsim.calibrate` must run without them.
ABSENT_ON_GPU_MACHINE = ("simpy", "plotly", "tqdm", "hypothesis")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One CPU smoke run through `python -m kvsim.calibrate`, with the GPU machine's missing modules blocked."""
    out = tmp_path_factory.mktemp("smoke")
    code = (
        f"import sys; sys.modules.update(dict.fromkeys({ABSENT_ON_GPU_MACHINE!r}));"
        "from kvsim.calibrate.__main__ import main;"
        f"sys.exit(main(['--device', 'cpu', '--impl', 'reference', '--out', {str(out)!r}, '--budget-s', '60']))"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_cpu_smoke_run_writes_a_profile_marked_not_representative(smoke_run):
    out, stdout = smoke_run
    profile = load_profile(out / "profile-cpu.json")
    assert profile.source == "cpu-smoke" and profile.representative is False
    assert profile.device.name == "cpu" and profile.device.torch
    for term in ("gemm", "attn_decode_paged", "attn_decode_contiguous", "attn_prefill_paged"):
        assert profile.terms[term].fit.n >= 6 and profile.terms[term].source is None
    # unmeasurable on one device: the fallback GPU's measured NCCL all-reduce (Vidur's), marked as not kvsim's
    assert profile.terms["allreduce"].source == "measured" and profile.terms["allreduce"].fit is not None
    assert profile.terms["step_overhead"].source == "roofline"
    assert "VMM map cost not measured" in stdout and "MAPE holdout" in stdout
    rows = load_measurements(out / "measurements-cpu.csv").rows
    assert {r["term"] for r in rows} >= {
        "gemm.qkv",
        "gemm.lm_head",
        "attn_decode_paged",
        "attn_prefill_contiguous",
    }


def test_the_smoke_profile_plugs_into_the_cost_model_and_says_it_is_not_representative(smoke_run):
    cost = make_cost_model("llama-2-7b", "a100-80gb", profile=smoke_run[0] / "profile-cpu.json")
    assert cost.source == "cpu-smoke" and "NOT representative" in cost.description
    assert cost.step_time(Batch(num_decode_seqs=2, decode_kv_tokens=100, decode_kv_blocks=8)).total_s > 0


def test_fit_only_refits_the_same_profile_from_the_csv(smoke_run, tmp_path):
    out, _ = smoke_run
    refit = fit_only(out / "measurements-cpu.csv", tmp_path)
    assert refit.profile_path == tmp_path / "profile-cpu.json"
    assert refit.profile == load_profile(out / "profile-cpu.json")


def test_a_broken_measurements_csv_names_line_and_field(smoke_run, tmp_path):
    lines = (smoke_run[0] / "measurements-cpu.csv").read_text().splitlines()
    header = lines[1].split(",")
    cells = lines[2].split(",")
    cells[header.index("median_s")] = "fast"
    (tmp_path / "m.csv").write_text("\n".join([*lines[:2], ",".join(cells), *lines[3:]]) + "\n")
    with pytest.raises(KvsimError, match=r"m\.csv, line 3, field 'median_s': 'fast' is not a number"):
        fit_only(tmp_path / "m.csv")
    (tmp_path / "n.csv").write_text("term,median_s\ngemm,1\n")
    with pytest.raises(KvsimError, match="line 1: expected a '# kvsim-measurements"):
        fit_only(tmp_path / "n.csv")


def test_no_gpu_is_a_clear_refusal_that_says_how_to_refit():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from kvsim.calibrate.run import calibrate

    with pytest.raises(KvsimError, match=r"no CUDA GPU.*--fit-only"):
        calibrate("cuda")


def test_a_tiny_budget_thins_the_grid_instead_of_overrunning(tmp_path):
    pytest.importorskip("torch")
    from kvsim.calibrate.run import calibrate

    result = calibrate("cpu", out=tmp_path, budget_s=1e-4, impl="reference", show_progress=False)
    measured = result.profile.extra["points_measured"]
    assert all(int(count.split("/")[0]) < int(count.split("/")[1]) for count in measured.values())
    assert json.loads((tmp_path / "profile-cpu.json").read_text())["source"] == "cpu-smoke"


def test_coarse_to_fine_visits_every_point_once_largest_first():
    order = coarse_to_fine(11)
    assert sorted(order) == list(range(11)) and order[:3] == [10, 0, 8]
    assert coarse_to_fine(0) == [] and coarse_to_fine(1) == [0]


@pytest.mark.parametrize(
    ("raw", "memory_gib", "key"),
    [
        ("NVIDIA H100 80GB HBM3", 80, "h100-sxm"),
        ("NVIDIA A100-SXM4-40GB", 40, "a100-40gb"),
        ("NVIDIA A100-SXM4-80GB", 80, "a100-80gb"),
        ("NVIDIA H200", 141, "h200"),
        ("NVIDIA L4", 24, "l4"),
        ("NVIDIA H100 PCIe", 80, "nvidia-h100-pcie"),
    ],
)
def test_cuda_device_names_map_to_presets(raw, memory_gib, key):
    assert gpu_key(raw, memory_gib * 2**30) == key


@pytest.mark.gpu
def test_gpu_calibration_fits_every_attention_term(tmp_path):
    from kvsim.calibrate.run import calibrate

    result = calibrate("cuda", "llama-3-8b", out=tmp_path, budget_s=30, show_progress=False)
    assert result.profile.source == "measured" and result.profile.representative
    for term in ("gemm", "attn_decode_paged", "attn_decode_contiguous", "attn_prefill_paged"):
        assert result.profile.terms[term].source is None


def test_kvsim_calibrate_cli_refits_and_refuses_without_a_gpu(smoke_run, tmp_path):
    from click.testing import CliRunner

    from kvsim.cli import main

    result = CliRunner().invoke(
        main, ["calibrate", "--fit-only", str(smoke_run[0] / "measurements-cpu.csv"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "paged / contiguous decode latency" in result.output and (tmp_path / "profile-cpu.json").exists()
    result = CliRunner().invoke(main, ["calibrate", "--fit-only", str(tmp_path / "absent.csv")])
    assert result.exit_code == 2 and "Error: cannot read measurements" in result.output


def test_progress_bar_works_without_tqdm(monkeypatch, capsys):
    from kvsim.calibrate.progress import Progress

    monkeypatch.setitem(sys.modules, "tqdm", None)
    with Progress(3, "decode") as bar:
        bar.update()
        bar.close("budget reached after 1 of 3 points")
    assert "decode: 1/3 points, budget reached" in capsys.readouterr().err


def test_vmm_measurement_without_a_driver_is_a_recorded_skip():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the gpu test measures it")
    from kvsim.calibrate.measurements import Measurements
    from kvsim.calibrate.vmm import measure_vmm

    measurements = Measurements({"device": {}})
    reasons = measure_vmm(measurements)
    assert reasons and reasons[0].startswith("VMM map cost not measured") and measurements.rows == []


def test_sigterm_stops_the_sweeps_and_still_writes_a_fitted_profile(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import signal

    from kvsim.calibrate.run import calibrate
    from kvsim.calibrate.sweeps import Sweeper

    measure_gemm = Sweeper.measure_gemm

    def measure_then_get_killed(self, point):
        measure_gemm(self, point)
        os.kill(os.getpid(), signal.SIGTERM)  # as `timeout` does to the GPU script's calibration step

    monkeypatch.setattr(Sweeper, "measure_gemm", measure_then_get_killed)
    result = calibrate("cpu", out=tmp_path, budget_s=60, impl="reference", show_progress=False)
    assert result.profile.extra["points_measured"] == {
        "gemm": "1/20",
        "decode": "0/54",
        "prefill": "0/18",
        "elementwise": "0/35",
        "kv_write": "0/24",
        "sampling": "0/12",
    }
    assert any("SIGTERM" in reason for reason in result.skipped)
    assert result.profile_path.exists() and len(load_measurements(result.measurements_path).rows) == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again
