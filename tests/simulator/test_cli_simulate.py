"""`kvsim simulate` end to end through click's CliRunner, on a small Azure-format trace file."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from kvsim.cli import main

AZURE_ROWS = [
    ("2023-11-16 18:15:46.0000000", 300, 40),
    ("2023-11-16 18:15:46.5000000", 120, 12),
    ("2023-11-16 18:15:47.2500000", 900, 80),
    ("2023-11-16 18:15:48.0000000", 50, 3),
]
REQUESTS_HEADER = (
    "request_id,replica,arrival_s,num_prompt_tokens,num_output_tokens,first_scheduled_s,first_token_s,finish_s,"
    "ttft_s,tpot_s,e2e_s,normalized_latency_s_per_token,queueing_delay_s,num_preemptions,num_cached_tokens,kv_evicted_fraction,"
    "rejected_reason"
)
TIMELINE_HEADER = (
    "time_s,replica,token_states,reserved,internal_frag,external_frag,free,cached_bytes,num_running,"
    "num_waiting,num_swapped,num_batched_seqs,num_batched_tokens"
)

PREFIX_CACHE_HEADER = (
    ",prefix_cache_query_tokens,prefix_cache_hit_tokens,prefix_cache_query_blocks,prefix_cache_hit_blocks,"
    "prefix_cache_evicted_blocks"
)


@pytest.fixture
def trace_file(tmp_path):
    path = tmp_path / "tiny.csv"
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens", *(f"{t},{c},{g}" for t, c, g in AZURE_ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_two_allocators_side_by_side_write_run_folders(trace_file, tmp_path):
    out = tmp_path / "runs"
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--trace",
            str(trace_file),
            "--model",
            "llama-2-7b",
            "--gpu",
            "a100-80gb",
            "--allocator",
            "paged",
            "--allocator",
            "paged:block_size=32",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0].split()
    assert header == ["paged:block_size=16", "paged:block_size=32"]
    for row in ("mem token_states", "TTFT s p99", "preemptions", "rejections", "cost model"):
        assert row in result.output
    for folder in ("paged_block_size-16", "paged_block_size-32"):
        run_dir = out / folder
        assert (run_dir / "requests.csv").read_text().splitlines()[0] == REQUESTS_HEADER
        # vllm (v1) caches prefixes by default: the timeline carries the prefix cache's counters too
        assert (run_dir / "timeline.csv").read_text().splitlines()[0] == TIMELINE_HEADER + PREFIX_CACHE_HEADER
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["num_finished"] == 4
        config = json.loads((run_dir / "config.json").read_text())
        assert config["model"] == "llama-2-7b" and config["trace"]["num_requests"] == 4
    with (out / "comparison.csv").open() as f:
        assert [row["label"] for row in csv.DictReader(f)] == ["paged:block_size=16", "paged:block_size=32"]


@pytest.mark.parametrize(
    "name, text",
    [
        ("run.toml", 'trace = "{trace}"\nmodel = "llama-2-7b"\nmax_num_seqs = 1\nallocator = ["paged"]\n'),
        ("run.yaml", "trace: {trace}\nmodel: llama-2-7b\nmax_num_seqs: 1\nallocator: [paged]\n"),
    ],
)
def test_a_config_file_mirrors_the_options_and_the_command_line_wins(trace_file, tmp_path, name, text):
    config = tmp_path / name
    config.write_text(text.format(trace=trace_file))
    result = CliRunner().invoke(
        main, ["simulate", "--config", str(config), "--max-num-seqs", "2", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    resolved = json.loads((tmp_path / "o" / "paged_block_size-16" / "config.json").read_text())
    assert resolved["max_num_seqs"] == 2
    assert resolved["model"] == "llama-2-7b" and resolved["allocator"] == "paged:block_size=16"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--allocator", "nosuch"], "nosuch"),
        (["--model", "gpt-9"], "unknown model"),
        (["--model", "llama-2-70b", "--gpu", "l4"], "does not fit"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_status_2(trace_file, args, message):
    result = CliRunner().invoke(main, ["simulate", "--trace", str(trace_file), *args])
    assert result.exit_code == 2
    assert "Error:" in result.output and message in result.output


def test_unknown_toml_key_is_named(trace_file, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(f'trace = "{trace_file}"\nmax_num_seq = 3\n')
    result = CliRunner().invoke(main, ["simulate", "--config", str(config)])
    assert result.exit_code == 2 and "max_num_seq" in result.output


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'swap_space_gib = "4"',
            "config key swap_space_gib must be a number, got '4' (str); write it without quotes",
        ),
        (
            "max_num_seqs = 2.5",
            "config key max_num_seqs must be an integer (or leave it unset), got 2.5 (float)",
        ),
        ('enable_chunked_prefill = "yes"', "config key enable_chunked_prefill must be true or false"),
        ("max_model_len = 1.5", "max_model_len must be an integer (or leave it unset)"),
    ],
)
def test_toml_value_of_the_wrong_type_is_named(trace_file, tmp_path, line, message):
    """A quoted number or a fraction for a count: a clear error, not a traceback or a run with 2.5 sequences."""
    config = tmp_path / "bad.toml"
    config.write_text(f'trace = "{trace_file}"\n{line}\n')
    result = CliRunner().invoke(main, ["simulate", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output and message in result.output


def test_no_timeline_writes_the_same_run_folder_less_its_timeline(trace_file, tmp_path):
    """--no-timeline (TOML ``timeline = false``): the same summary and requests.csv, no timeline.csv (a stale one
    from an earlier run into the same folder goes too), config.json says so, and the report still builds."""
    base = ["simulate", "--trace", str(trace_file), "--model", "llama-2-7b", "--allocator", "paged"]
    with_rows, without = tmp_path / "with", tmp_path / "without"
    assert CliRunner().invoke(main, [*base, "--out", str(with_rows)]).exit_code == 0
    assert CliRunner().invoke(main, [*base, "--out", str(without)]).exit_code == 0  # then rerun without rows
    config = tmp_path / "run.toml"
    config.write_text("timeline = false\nreport = true\n")
    result = CliRunner().invoke(main, [*base, "--config", str(config), "--out", str(without)])
    assert result.exit_code == 0, result.output
    kept, dropped = with_rows / "paged_block_size-16", without / "paged_block_size-16"
    assert (kept / "timeline.csv").is_file() and not (dropped / "timeline.csv").exists()
    for name in ("summary.json", "requests.csv"):
        assert (dropped / name).read_bytes() == (kept / name).read_bytes()
    assert json.loads((kept / "config.json").read_text())["timeline"] is True
    assert json.loads((dropped / "config.json").read_text())["timeline"] is False
    report = (without / "report.html").read_text()
    assert "No memory timeline for paged:block_size=16: run with --no-timeline" in report
    # the command line wins over the file
    again = CliRunner().invoke(main, [*base, "--config", str(config), "--timeline", "--out", str(without)])
    assert again.exit_code == 0, again.output
    assert (dropped / "timeline.csv").read_bytes() == (kept / "timeline.csv").read_bytes()


def test_a_timeline_key_that_is_not_a_boolean_is_a_clear_error(trace_file, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('timeline = "no"\n')
    result = CliRunner().invoke(main, ["simulate", "--trace", str(trace_file), "--config", str(config)])
    assert result.exit_code == 2
    assert f"Error: {config}: config key timeline must be true or false, got 'no' (str)" in result.output


@pytest.mark.parametrize("max_model_len, noted", [(100_000, True), (4096, False), (2048, False)])
def test_a_max_model_len_above_the_model_s_context_is_run_with_a_note(trace_file, max_model_len, noted):
    args = ["simulate", "--trace", str(trace_file), "--max-model-len", str(max_model_len)]  # llama-2-7b
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    note = "note: max_model_len 100000 is above llama-2-7b's context of 4096 tokens"
    assert (note in result.stderr) == noted
    assert "note:" not in result.stdout  # the comparison table stays clean for scripts
