"""Config files are typed as strictly as the command line (issue 19 item 6): `kvsim simulate --config` and
`kvsim plan --config` refuse a value its option would not take, naming the file, the key and what it takes,
before any trace is read (`kvsim/cli/config_option.py` checked_value)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kvsim.cli import main

TRACE = """\
request_id,arrival_s,num_prompt_tokens,num_output_tokens
0,0.0,100,10
1,0.5,200,20
2,1.0,300,30
"""


@pytest.fixture
def trace_file(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text(TRACE)
    return path


def _run(tmp_path, command: list[str], name: str, text: str):
    config = tmp_path / name
    config.write_text(text)
    result = CliRunner().invoke(main, [*command, "--config", str(config)])
    return result, config


@pytest.mark.parametrize(
    ("name", "line", "message"),
    [
        # YAML `num_requests: true` ran 1 request; TOML "100" ran and was recorded as a string
        ("run.yaml", "num_requests: true", "config key num_requests must be an integer, got True (bool)"),
        (
            "run.toml",
            'num_requests = "100"',
            "num_requests must be an integer, got '100' (str); write it without",
        ),
        ("run.toml", "num_requests = 2.5", "num_requests must be an integer, got 2.5 (float)"),
        # a TypeError in traces/transforms.py, and a KvsimError only after the trace was read
        ("run.yaml", "rate: [1, 2]", "rate takes one value, not [1, 2]"),
        ("run.toml", 'rate = "fast"', "config key rate must be a number, got 'fast' (str)"),
        ("run.toml", 'cut_s = "10"', "config key cut_s must be a number, got '10' (str)"),
        ("run.toml", "allocator = []", "allocator is an empty list; give at least one value"),
        ("run.toml", "allocator = [true]", "config key allocator must be text, got True (bool)"),
        ("run.toml", "out = 5", "config key out must be a path (text in quotes), got 5 (int)"),
        ("run.toml", 'report = "yes"', "config key report must be true or false, got 'yes' (str)"),
        ("run.toml", 'seed = "x"', "config key seed must be an integer, got 'x' (str)"),
    ],
)
def test_simulate_config_values_of_the_wrong_type_are_named(trace_file, tmp_path, name, line, message):
    quoted = f"'{trace_file}'"
    head = f"trace: {quoted}\n" if name.endswith(".yaml") else f"trace = {quoted}\n"
    result, config = _run(tmp_path, ["simulate"], name, head + line + "\n")
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: {config}: ") and message in result.output, result.output


def test_a_number_for_an_allocator_is_read_as_the_text_the_command_line_would_pass(trace_file, tmp_path):
    """`allocator = 5` was a TypeError ('int' object is not iterable); it is now the spec "5", refused by name
    as --allocator 5 is."""
    result, _ = _run(tmp_path, ["simulate"], "run.toml", f"trace = '{trace_file}'\nallocator = 5\n")
    assert result.exit_code == 2, result.output
    assert "Error: unknown allocator '5'" in result.output


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("plan.yaml", "num_requests: true\n", "config key num_requests must be an integer, got True (bool)"),
        (
            "plan.toml",
            'num_requests = "100"\n',
            "config key num_requests must be an integer, got '100' (str)",
        ),
        ("plan.toml", "num_requests = 2.5\n", "config key num_requests must be an integer, got 2.5 (float)"),
        ("plan.toml", 'rel_tol = "x"\n', "config key rel_tol must be a number, got 'x' (str)"),
        ("plan.toml", 'tp = [1, "a"]\n', "config key tp must be an integer, got 'a' (str)"),
        ("plan.toml", 'progress = "no"\n', "config key progress must be true or false, got 'no' (str)"),
        ("plan.toml", "gpu = []\n", "gpu is an empty list"),
    ],
)
def test_plan_config_values_of_the_wrong_type_are_named(trace_file, tmp_path, name, text, message):
    """click read `num_requests = true` as 1 and 2.5 as 2 (int()); the file is checked before click sees it."""
    head = (
        f"trace: '{trace_file}'\nslo: {{ttft_p99: 2s}}\n"
        if name.endswith(".yaml")
        else (f"trace = '{trace_file}'\nslo = ['ttft_p99=2s']\n")
    )
    result, config = _run(tmp_path, ["plan"], name, head + text)
    assert result.exit_code == 2, result.output
    assert f"Error: {config}: " in result.output and message in result.output, result.output


def test_a_yaml_syntax_error_is_one_line_with_its_line_and_column(tmp_path):
    result, config = _run(tmp_path, ["simulate"], "run.yaml", "trace: [unclosed\n  rate: 1\n")
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith(f"Error: config file {config}: not valid YAML at line 2, column 7: ")
