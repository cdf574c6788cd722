"""Writing into --out (simulator/out_folder.py, docs/outputs.md "Writing"): a run folder is whole or absent, an
--out holds one command's results, and a file-system failure is a one-line error with exit code 2."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from kvsim.cli import main
from kvsim.errors import KvsimError
from kvsim.simulator import outputs
from kvsim.simulator.out_folder import atomic_folder, is_temporary

AZURE_ROWS = [
    ("2023-11-16 18:15:46.0000000", 300, 40),
    ("2023-11-16 18:15:46.5000000", 120, 12),
    ("2023-11-16 18:15:47.2500000", 900, 80),
    ("2023-11-16 18:15:48.0000000", 50, 3),
]
PAGED = "paged_block_size-16"


@pytest.fixture
def trace_file(tmp_path):
    path = tmp_path / "tiny.csv"
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens", *(f"{t},{c},{g}" for t, c, g in AZURE_ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _simulate(trace_file, out, *more):
    args = ["simulate", "--trace", str(trace_file), "--allocator", "paged", *more, "--out", str(out)]
    return CliRunner().invoke(main, args)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- a run folder is written whole, or not at all -------------------------------------------------------------


def test_an_interrupted_write_leaves_no_run_folder_and_no_partial_one(trace_file, tmp_path, monkeypatch):
    """Ctrl-C while requests.csv is written left a full summary.json beside a header-only requests.csv, which
    `kvsim report` drew."""

    def interrupted(result, path):
        path.write_text("request_id,replica\n")  # the header, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "write_requests_csv", interrupted)
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["simulate", "--trace", str(trace_file), "--out", str(out)])
    assert "Aborted!" in result.output  # click's answer to Ctrl-C
    assert _listing(out) == ["simulate.json"]  # no run folder, no partial one


def test_a_rewrite_replaces_the_folder_whole_and_a_failed_one_keeps_the_old(
    trace_file, tmp_path, monkeypatch
):
    out = tmp_path / "runs"
    assert _simulate(trace_file, out).exit_code == 0
    before = (out / PAGED / "requests.csv").read_bytes()
    (out / PAGED / "stray.txt").write_text("from an earlier version")

    def disk_full(result, path):
        path.write_text("request_id")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(outputs, "write_timeline_csv", disk_full)
    failed = _simulate(trace_file, out)
    assert failed.exit_code == 2
    assert failed.output.strip().splitlines()[-1].startswith("Error: cannot write run folder")
    assert "the disk is full" in failed.output and "Traceback" not in failed.output
    assert (out / PAGED / "requests.csv").read_bytes() == before  # the old folder, untouched
    assert not [p for p in out.iterdir() if is_temporary(p)]

    monkeypatch.undo()
    assert _simulate(trace_file, out).exit_code == 0
    assert not (out / PAGED / "stray.txt").exists()  # replaced whole, nothing of the old folder left


def test_a_partial_folder_left_by_a_dead_process_is_ignored_by_report_and_cleaned_by_the_next_write(
    trace_file, tmp_path
):
    out = tmp_path / "runs"
    assert _simulate(trace_file, out).exit_code == 0
    leftover = out / f".{PAGED}.partial-999999999"  # no such process
    leftover.mkdir()
    (leftover / "summary.json").write_text((out / PAGED / "summary.json").read_text())
    (leftover / "requests.csv").write_text("request_id\n")
    report = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output  # the partial folder is not read as a run
    given = CliRunner().invoke(main, ["report", str(leftover), "--out", str(tmp_path / "r.html")])
    assert given.exit_code == 2 and "an incomplete run folder" in given.output
    assert _simulate(trace_file, out).exit_code == 0
    assert not leftover.exists()


def test_atomic_folder_removes_its_partial_folder_on_any_error(tmp_path):
    with pytest.raises(ValueError), atomic_folder(tmp_path / "run") as partial:
        (partial / "config.json").write_text("{}")
        raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


# --- tracebacks that are now one-line errors --------------------------------------------------------------------


def test_out_under_a_file_is_a_clear_error(trace_file, tmp_path):
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "runs"):
        result = _simulate(trace_file, out)
        assert result.exit_code == 2, result.output
        assert "Error:" in result.output and "is a file" in result.output
        assert "Traceback" not in result.output


def test_an_out_that_cannot_be_made_is_a_clear_error(trace_file, tmp_path, monkeypatch):
    """No permission (tests run as root, so the refusal is simulated: file modes do not stop root)."""

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    result = _simulate(trace_file, tmp_path / "runs")
    assert result.exit_code == 2, result.output
    assert "Error: cannot write" in result.output and "permission denied" in result.output


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's read-only /sys")
def test_a_missing_parent_in_a_read_only_place_is_a_clear_error(trace_file):
    result = _simulate(trace_file, Path("/sys/kvsim-test/runs"))
    assert result.exit_code == 2, result.output
    assert result.output.startswith(
        "Error: cannot write --out folder /sys/kvsim-test/runs: "
    )  # before simulating


def test_sweep_out_under_a_file_is_a_clear_error(trace_file, tmp_path):
    (tmp_path / "file").write_text("x")
    args = [
        "sweep",
        "--set",
        f"trace={trace_file}",
        "--grid",
        "rate=1,2",
        "--out",
        str(tmp_path / "file" / "s"),
    ]
    result = CliRunner().invoke(main, [*args, "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "is a file" in result.output and "Traceback" not in result.output


# --- one command's results per --out ------------------------------------------------------------------------


def test_a_different_command_into_the_same_out_is_refused_unless_overwrite(trace_file, tmp_path):
    """Re-running into an --out left the old configurations beside the new ones; `report` then compared a
    Llama-2-7B/A100 run with a Llama-3-8B/H100 one as one study."""
    out = tmp_path / "runs"
    assert _simulate(trace_file, out, "--allocator", "reserved:max").exit_code == 0
    other = ["--model", "llama-3-8b", "--gpu", "h100-sxm"]
    refused = _simulate(trace_file, out, *other)
    assert refused.exit_code == 2, refused.output
    message = refused.output
    assert message.startswith(f"Error: --out {out} holds results not written by this command")
    assert "model None -> 'llama-3-8b'" in message and "--overwrite" in message
    assert _listing(out) == ["comparison.csv", PAGED, "reserved_max", "simulate.json"]  # untouched

    assert _simulate(trace_file, out, *other, "--overwrite").exit_code == 0
    assert _listing(out) == ["comparison.csv", PAGED, "simulate.json"]  # the old study is gone
    assert json.loads((out / PAGED / "config.json").read_text())["model"] == "llama-3-8b"


def test_the_same_command_may_rerun_and_add_allocators_but_not_drop_them(trace_file, tmp_path):
    out = tmp_path / "runs"
    assert _simulate(trace_file, out).exit_code == 0
    assert _simulate(trace_file, out, "--report").exit_code == 0  # output options are not inputs
    grown = _simulate(trace_file, out, "--allocator", "reserved:max")
    assert grown.exit_code == 0, grown.output
    assert _listing(out) == [
        "comparison.csv",
        PAGED,
        "reserved_max",
        "simulate.json",
    ]  # report.html: stale, gone
    dropped = CliRunner().invoke(main, ["simulate", "--trace", str(trace_file), "--out", str(out)])
    assert dropped.exit_code == 2
    assert "allocator(s) reserved:max that this command does not run" in dropped.output


def test_run_folders_no_record_accounts_for_are_refused(trace_file, tmp_path):
    out = tmp_path / "runs"
    assert _simulate(trace_file, out).exit_code == 0
    os.remove(out / "simulate.json")  # as a folder written by an earlier kvsim
    result = _simulate(trace_file, out)
    assert result.exit_code == 2
    assert f"run folders {PAGED} with no simulate.json" in result.output


def test_overwrite_clears_kvsim_outputs_only(trace_file, tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "plan.csv").write_text("label,max_sustainable_rate_per_s\n")
    assert _simulate(trace_file, out).exit_code == 2  # a plan's files: another command's
    assert _simulate(trace_file, out, "--overwrite").exit_code == 0
    assert _listing(out) == ["comparison.csv", "notes.txt", PAGED, "simulate.json"]


def test_the_python_api_write_raises_a_kvsim_error_for_a_full_disk(tmp_path, monkeypatch):
    from kvsim.simulator import SimConfig, simulate
    from kvsim.traces import load_trace, take_first

    result = simulate(SimConfig(scheduler="vllm-v0"), take_first(load_trace("azure-conv"), 20))

    def disk_full(result, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "write_requests_csv", disk_full)
    with pytest.raises(KvsimError, match="the disk is full"):
        result.write(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []
