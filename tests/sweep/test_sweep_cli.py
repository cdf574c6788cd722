"""`kvsim sweep` and `kvsim plan` end to end on a small trace (the real simulator, roofline costs)."""

import csv

import numpy as np
import pytest
from click.testing import CliRunner

from kvsim.cli import main
from kvsim.traces import Provenance, Trace, save_trace


@pytest.fixture
def small_trace(tmp_path):
    rng = np.random.default_rng(0)
    num = 40
    trace = Trace(
        request_id=np.arange(num),
        arrival_s=np.cumsum(rng.exponential(0.5, num)),
        num_prompt_tokens=rng.integers(16, 256, num),
        num_output_tokens=rng.integers(8, 128, num),
        provenance=Provenance("small test trace"),
    )
    path = tmp_path / "small.jsonl"
    save_trace(trace, path)
    return str(path)


def test_sweep_writes_one_row_per_point_and_a_run_folder_each(tmp_path, small_trace):
    out = tmp_path / "sweep"
    args = ["sweep", "--set", f"trace={small_trace}", "--grid", "allocator=paged,reserved:pow2",
            "--grid", "rate=2,4", "--out", str(out), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["allocator"], r["rate"], r["status"]) for r in rows] == [
        ("paged", "2", "ok"), ("paged", "4", "ok"), ("reserved:pow2", "2", "ok"), ("reserved:pow2", "4", "ok"),
    ]  # fmt: skip
    assert float(rows[1]["request_rate_per_s"]) == pytest.approx(4.0)
    assert len({r["seed"] for r in rows}) == 1  # same trace fields: same request sample everywhere
    for row in rows:
        assert {"config.json", "summary.json", "requests.csv", "point.json"} <= {
            p.name for p in (out / row["run_dir"]).iterdir()
        }
    assert "4 points (4 run now, 0 resumed), 0 failed" in result.output

    again = CliRunner().invoke(main, [*args, "--resume"])
    assert "4 points (0 run now, 4 resumed)" in again.output


def test_sweep_records_a_bad_point_goes_on_lists_it_and_exits_1(tmp_path, small_trace):
    out = tmp_path / "sweep"
    args = ["sweep", "--set", f"trace={small_trace}", "--grid", "tp=1,3", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert rows[1]["error"].startswith("KvsimError")
    listed = result.output[result.output.index("1 of 2 points failed:") :].splitlines()
    assert listed[1].startswith(f"  point 1 (tp=3; points/{rows[1]['point_id']}): KvsimError")


def test_every_point_failing_is_an_error_with_exit_status_2(tmp_path, small_trace):
    args = [
        "sweep",
        "--set",
        f"trace={small_trace}",
        "--grid",
        "tp=3,5",
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "2 of 2 points failed:" in result.output and "Error: every point failed" in result.output


def test_sweep_names_the_model_gpu_and_trace_and_shows_rejections(tmp_path, small_trace):
    out = tmp_path / "sweep"
    # a 300-token context: requests whose prompt + output exceed it are rejected
    args = ["sweep", "--set", f"trace={small_trace}", "--set", "max_model_len=300", "--grid", "rate=2,4",
            "--out", str(out), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()  # (stderr: the progress line)
    assert lines[0] == f"model llama-2-7b, gpu a100-80gb, trace {small_trace}"  # the defaults, said
    assert lines[1].split() == ["rate", "ttft", "p99", "s", "tpot", "p99", "s", "norm", "lat", "s/tok", "req/s",
                                "rejected"]  # fmt: skip
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    rejected = [r["num_rejected"] for r in rows]
    assert int(rejected[0]) > 0 and [line.split()[-1] for line in lines[2:4]] == rejected
    assert {(r["model"], r["gpu"], r["trace"]) for r in rows} == {("llama-2-7b", "a100-80gb", small_trace)}


def test_a_swept_model_is_a_column_not_a_header(tmp_path, small_trace):
    args = ["sweep", "--set", f"trace={small_trace}", "--grid", "model=llama-2-7b,opt-13b",
            "--out", str(tmp_path / "o"), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"gpu a100-80gb, trace {small_trace}"
    with open(tmp_path / "o" / "results.csv") as f:
        header = next(csv.reader(f))
    assert header.count("model") == 1 and header.index("model") == 2  # the swept column, in grid order


@pytest.mark.parametrize(
    "args, message",
    [
        (["--grid", "rate=5:1:1"], "START <= STOP"),
        (["--grid", "no_such_field=1,2"], "unknown field(s) no_such_field"),
        ([], "nothing to sweep"),
    ],
)
def test_sweep_bad_input_is_a_clear_error(tmp_path, args, message):
    result = CliRunner().invoke(main, ["sweep", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_plan_max_rate_table(tmp_path, small_trace):
    args = ["plan", "--trace", small_trace, "--num-requests", "40", "--slo", "ttft_p99=1s",
            "--rel-tol", "0.2", "--no-progress", "--out", str(tmp_path / "plan")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Max sustainable rate of one replica" in result.output
    with open(tmp_path / "plan" / "plan.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["max_sustainable_rate_per_s"]) > 0


def test_plan_for_a_target_rate_ranks_candidates_and_answers_per_allocator(tmp_path, small_trace):
    args = ["plan", "--trace", small_trace, "--num-requests", "40", "--slo", "ttft_p99=1s", "--rel-tol", "0.2",
            "--allocator", "paged:block_size=16", "--allocator", "reserved:max", "--target-rate", "2x",
            "--no-progress", "--out", str(tmp_path / "plan")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    for heading in ("Ranked", "Pareto front", "By allocator", "price a100-80gb: $2.79/GPU-hour (Lambda"):
        assert heading in result.output
    with open(tmp_path / "plan" / "plan.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == ["paged:block_size=16", "reserved:max"]
    for row in rows:
        assert row["feasible"] == "True"
        assert float(row["total_cost_per_hour_usd"]) == pytest.approx(2.79 * int(row["num_gpus"]))


def test_sweep_from_a_toml_file_with_more_grid_options(tmp_path, small_trace):
    spec = tmp_path / "sweep.toml"
    spec.write_text(
        f'seed = 5\n[base]\ntrace = "{small_trace}"\n[grid]\nallocator = ["paged", "reserved:max"]\n'
    )
    out = tmp_path / "sweep"
    result = CliRunner().invoke(
        main, ["sweep", str(spec), "--grid", "rate=3", "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    with open(out / "results.csv") as f:
        assert [(r["allocator"], r["rate"]) for r in csv.DictReader(f)] == [
            ("paged", "3"),
            ("reserved:max", "3"),
        ]


def test_sweep_without_a_trace_says_how_to_give_one(tmp_path):
    result = CliRunner().invoke(main, ["sweep", "--grid", "rate=1,2", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--set trace=" in result.output


def test_plan_without_a_price_for_a_gpu_fails_before_simulating(tmp_path, small_trace):
    args = ["plan", "--trace", small_trace, "--gpu", "l4", "--slo", "ttft_p99=1s", "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--price l4=USD_PER_GPU_HOUR" in result.output
