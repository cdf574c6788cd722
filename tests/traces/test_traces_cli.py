"""`kvsim traces`: golden output for stats, JSON for machines, generate and convert, and clean errors."""

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kvsim.cli import main
from kvsim.traces import load_trace, read_file

AZURE_CONV_STATS = """\
source            azure-conv (Azure/AzurePublicDataset data/AzureLLMInferenceTrace_conv.csv)
license           CC-BY-4.0; Patel et al., Splitwise: Efficient Generative LLM Inference Using Phase Splitting, ISCA 2024
requests          19,366
span              3,501.7 s
rate              5.530 req/s
inter-arrival CV  1.094
tokens                 mean  median    p99     max
prompt              1,154.7   1,020  4,142  14,050
output                211.1     129    601   1,000
"""


def run(*args):
    return CliRunner().invoke(main, ["traces", *map(str, args)])


def test_stats_golden_output():
    result = run("stats", "azure-conv")
    assert result.exit_code == 0, result.output
    assert result.output == AZURE_CONV_STATS


def test_stats_columns_are_sized_to_their_numbers_so_large_ones_never_touch(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("arrival_s,num_prompt_tokens,num_output_tokens\n0,123456789012,98765432109\n1,5,3\n")
    result = run("stats", path)
    assert result.exit_code == 0, result.output
    table = result.output.splitlines()[-3:]
    assert table[1].split() == [
        "prompt",
        "61,728,394,508.5",
        "61,728,394,508",
        "122,222,221,122",
        "123,456,789,012",
    ]
    assert table[2].split() == [
        "output",
        "49,382,716,056.0",
        "49,382,716,056",
        "97,777,777,788",
        "98,765,432,109",
    ]
    # fixed width: every column ends where its header ends, with at least two spaces before each cell
    header_ends = [m.end() for m in re.finditer(r"\S+", table[0])][1:]
    for line in table[1:]:
        cells = list(re.finditer(r"\S+", line))[1:]
        assert [m.end() for m in cells] == header_ends
        assert all(line[m.start() - 2 : m.start()] == "  " for m in cells)


def test_stats_json_for_machines():
    result = run("stats", "azure-conv", "--json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert s["num_requests"] == 19_366
    assert round(s["num_prompt_tokens"]["mean"]) == 1_155
    assert round(s["num_output_tokens"]["mean"]) == 211
    assert round(s["rate_per_s"], 2) == 5.53


def test_stats_of_a_length_dataset_takes_rate_and_seed():
    s = json.loads(run("stats", "sharegpt", "--rate", "4", "--seed", "3", "--json").output)
    assert s["rate_per_s"] == pytest.approx(4.0, rel=5 / len(load_trace("sharegpt")) ** 0.5)
    assert "poisson arrivals at 4 req/s, seed 3" in s["notes"]
    gamma = json.loads(run("stats", "sharegpt", "--arrival", "gamma", "--cv", "3", "--json").output)
    assert gamma["interarrival_cv"] > 2.5


def test_list_shows_every_bundled_trace_with_counts_and_provenance():
    result = run("list")
    assert result.exit_code == 0, result.output
    for name, count in [
        ("azure-conv", "19,366"),
        ("azure-code", "8,819"),
        ("mooncake-synthetic", "3,993"),
        ("sharegpt", "30,731"),
        ("arxiv", "28,257"),
        ("bwb", "33,768"),
    ]:
        line = next(line for line in result.output.splitlines() if line.startswith(name))
        assert f"{count} requests" in line
    assert "CC-BY-4.0" in result.output and "Mooncake" in result.output
    rows = json.loads(run("list", "--json").output)
    assert [row["name"] for row in rows][:2] == ["azure-conv", "azure-code"]
    assert rows[3]["span_s"] is None and rows[3]["kind"].startswith("lengths")


def test_generate_writes_a_seeded_trace(tmp_path):
    args = [
        "generate",
        tmp_path / "a.jsonl",
        "--num-requests",
        200,
        "--rate",
        5,
        "--arrival",
        "gamma",
        "--cv",
        2,
        "--prompt",
        "uniform:10:20",
        "--output",
        "fixed:7",
        "--n",
        2,
        "--seed",
        4,
    ]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "wrote 200 requests" in result.output
    trace = read_file(tmp_path / "a.jsonl")
    assert len(trace) == 200 and set(trace.num_output_tokens.tolist()) == {7}
    assert trace.num_prompt_tokens.min() >= 10 and trace.num_prompt_tokens.max() <= 20
    assert all(r.n == 2 for r in trace)
    args[1] = tmp_path / "b.jsonl"
    run(*args)
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


def test_generate_shared_prefix_workload_as_csv(tmp_path):
    result = run(
        "generate", tmp_path / "p.csv", "--num-requests", 50, "--prefix-groups", 2, "--prefix-tokens", 1024
    )
    assert result.exit_code == 0, result.output
    s = json.loads(run("stats", tmp_path / "p.csv", "--json").output)
    assert s["prefix_blocks"]["num_unique_blocks"] < s["prefix_blocks"]["num_blocks"]


def test_convert_between_formats_with_transforms(tmp_path):
    result = run("convert", "azure-conv", tmp_path / "c.csv", "--window", 0, 600, "--max-requests", 1000)
    assert result.exit_code == 0, result.output
    trace = read_file(tmp_path / "c.csv")
    assert len(trace) == 1000 and trace.arrival_s.max() < 600
    assert run("convert", tmp_path / "c.csv", tmp_path / "c.jsonl").exit_code == 0
    assert list(read_file(tmp_path / "c.jsonl")) == list(trace)
    sub = run("convert", "azure-conv", tmp_path / "s.jsonl", "--subsample", 0.1, "--seed", 1)
    assert sub.exit_code == 0 and 1_500 < len(read_file(tmp_path / "s.jsonl")) < 2_400


def test_a_bad_line_7_fails_cleanly_naming_the_line_and_field(tmp_path):
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"] + ["2023-11-16 18:15:46.6805900,374,44"] * 9
    rows[6] = "2023-11-16 18:15:47.0000000,374,oops"
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(rows) + "\n")
    result = run("stats", path)
    assert result.exit_code == 2
    assert result.output == f"Error: {path}, line 7, field 'GeneratedTokens': not an integer: 'oops'\n"


def test_the_installed_command_prints_no_traceback(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1]}\n' * 6
        + '{"timestamp": 7, "input_length": 0, "output_length": 1, "hash_ids": [1]}\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "kvsim", "traces", "stats", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "line 7, field 'input_length': token count must be >= 1, got 0" in proc.stderr


def test_bad_options_are_clean_errors(tmp_path):
    result = run("generate", tmp_path / "x.jsonl", "--prompt", "zipf:3")
    assert result.exit_code == 2 and "unknown length distribution 'zipf:3'" in result.output
    result = run("stats", "azure-conv", "--arrivals-from", "azure-code")
    assert result.exit_code == 2 and "has its own arrival times" in result.output
    result = run("convert", "azure-conv", tmp_path / "x.parquet")
    assert result.exit_code == 2 and "--to jsonl or --to csv" in result.output


def test_the_traces_command_imports_no_torch_triton_plotly_or_simpy():
    code = (
        "import sys, kvsim.cli.traces, kvsim.traces; "
        "print(sorted(m for m in ('torch', 'triton', 'plotly', 'simpy') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr
