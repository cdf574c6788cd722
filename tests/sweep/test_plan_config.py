"""`kvsim plan --config FILE` (kvsim/cli/config_option.py): a TOML or YAML file mirrors the options one to one,
the command line wins, and a bad key or value is named."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kvsim.cli import main

FLAGS = [
    "--trace", "azure-code", "--num-requests", "60", "--model", "llama-2-7b", "--gpu", "a100-80gb",
    "--allocator", "paged", "--allocator", "reserved:pow2", "--slo", "ttft_p99=2s", "--set", "watermark=0.02",
    "--grid", "max_num_seqs=8,16", "--rel-tol", "0.2", "--min-duration-s", "20", "--min-requests-per-replica",
    "50", "--allow-rejections", "--no-progress",
]  # fmt: skip
YAML = """\
trace: azure-code
num_requests: 60
model: llama-2-7b
gpu: a100-80gb
allocator: [paged, "reserved:pow2"]
slo: {ttft_p99: 2s}
set: {watermark: 0.02}
grid: {max_num_seqs: [8, 16]}
rel_tol: 0.2
min_duration_s: 20
min_requests_per_replica: 50
allow_rejections: true
progress: false
"""
TOML = """\
trace = "azure-code"
num_requests = 60
model = "llama-2-7b"
gpu = ["a100-80gb"]
allocator = ["paged", "reserved:pow2"]
slo = ["ttft_p99=2s"]
set = {watermark = 0.02}
grid = ["max_num_seqs=8,16"]
rel_tol = 0.2
min_duration_s = 20
min_requests_per_replica = 50
allow_rejections = true
progress = false
"""


def _plan(args, out):
    result = CliRunner().invoke(main, ["plan", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    plan = json.loads((out / "plan.json").read_text())
    return plan, result.output


@pytest.mark.parametrize("name, text", [("plan.yaml", YAML), ("plan.toml", TOML)])
def test_a_config_file_plans_what_the_same_flags_plan(tmp_path, name, text):
    config = tmp_path / name
    config.write_text(text)
    from_flags, printed = _plan(FLAGS, tmp_path / "flags")
    from_file, printed_file = _plan(["--config", str(config)], tmp_path / "file")
    assert from_file == from_flags
    assert printed_file.replace(str(tmp_path / "file"), "OUT") == printed.replace(
        str(tmp_path / "flags"), "OUT"
    )
    assert len(from_flags["candidates"]) == 4  # 2 allocators x 2 max_num_seqs
    settings = from_flags["settings"]
    assert (
        settings["min_duration_s"],
        settings["min_requests_per_replica"],
        settings["allow_rejections"],
    ) == (
        20,
        50,
        True,
    )


def test_the_command_line_wins_over_the_file(tmp_path):
    config = tmp_path / "plan.yaml"
    config.write_text(YAML)
    plan, _ = _plan(["--config", str(config), "--rel-tol", "0.3", "--allocator", "paged"], tmp_path / "o")
    assert plan["settings"]["rel_tol"] == 0.3
    assert {c["allocator"] for c in plan["candidates"]} == {"paged"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("trace: azure-code\nslos: {ttft_p99: 2s}\n", "unknown key(s) slos; known: "),
        ("trace: azure-code\nslo: {ttft_p99: 2s}\nmodel: [a, b]\n", "model takes one value"),
        (
            "trace: azure-code\nslo: {ttft_p99: 2s}\nallocator: {paged: 1}\n",
            "allocator takes a list of values",
        ),
        ("trace: [azure-code\n", "not valid YAML"),
    ],
)
def test_a_bad_key_or_value_is_named(tmp_path, text, message):
    config = tmp_path / "plan.yaml"
    config.write_text(text)
    result = CliRunner().invoke(main, ["plan", "--config", str(config)])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rel_tol", 5.0, "--rel-tol must be in \\(0, 1\\), got 5.0"),
        ("rel_tol", 0.0, "--rel-tol must be in \\(0, 1\\)"),
        ("start_rate_per_s", 0.0, "--start-rate must be a finite number > 0 req/s, got 0.0"),
        ("start_rate_per_s", float("nan"), "--start-rate must be a finite number > 0 req/s, got nan"),
    ],
)
def test_plan_settings_refuse_a_rate_search_that_cannot_run_before_any_candidate(field, value, message):
    """The rate search checked these per candidate: every candidate failed the same way, after the plan's
    table had been written."""
    from kvsim.errors import KvsimError
    from kvsim.simulator.plan.capacity import PlanSettings

    with pytest.raises(KvsimError, match=message):
        PlanSettings(slos=("ttft_p99=1s",), **{field: value})
