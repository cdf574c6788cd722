"""``kvsim plan --out`` follows the other commands' writing rules (issue 19 items 3-4, docs/outputs.md): a bad
folder is refused before any simulation with a one-line error, another command's results are never mixed
with a plan unless --overwrite clears them, and plan.csv / plan.json are replaced whole."""

import json

import numpy as np
from click.testing import CliRunner

from kvsim.cli import main
from kvsim.traces import Provenance, Trace, save_trace


def _args(tmp_path):
    num = 60
    trace = Trace(
        request_id=np.arange(num),
        arrival_s=np.arange(num) / 2.0,
        num_prompt_tokens=np.full(num, 64),
        num_output_tokens=np.full(num, 16),
        provenance=Provenance("evenly spaced (test)"),
    )
    save_trace(trace, tmp_path / "t.jsonl")
    return [
        "plan", "--trace", str(tmp_path / "t.jsonl"), "--slo", "ttft_p99=2s", "--min-duration-s", "10",
        "--min-requests-per-replica", "10", "--rel-tol", "0.5", "--no-progress",
    ]  # fmt: skip


def test_an_out_under_a_file_is_a_one_line_error_before_planning(tmp_path):
    (tmp_path / "f").write_text("x")
    result = CliRunner().invoke(main, [*_args(tmp_path), "--out", str(tmp_path / "f" / "out")])
    assert result.exit_code == 2
    assert "is a file, so no folder can be made under it" in result.output
    assert "Traceback" not in result.output and "plan:" not in result.output  # nothing was planned


def test_another_commands_results_are_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    (out / "paged").mkdir(parents=True)
    (out / "paged" / "summary.json").write_text("{}")
    (out / "simulate.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, [*_args(tmp_path), "--out", str(out)])
    assert result.exit_code == 2
    assert "holds results of kvsim simulate, run folder paged" in result.output
    assert "--overwrite" in result.output
    assert not (out / "plan.csv").exists()

    result = CliRunner().invoke(main, [*_args(tmp_path), "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "plan.csv", "plan.json"]


def test_a_second_plan_replaces_the_first_whole(tmp_path):
    out = tmp_path / "out"
    assert CliRunner().invoke(main, [*_args(tmp_path), "--out", str(out)]).exit_code == 0
    result = CliRunner().invoke(main, [*_args(tmp_path), "--out", str(out), "--target-rate", "3x"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "plan.json").read_text())["settings"]["target_rate_per_s"] is not None
    assert sorted(p.name for p in out.iterdir()) == ["plan.csv", "plan.json"]  # no temporaries left
