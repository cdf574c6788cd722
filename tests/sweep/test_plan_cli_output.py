"""What ``kvsim plan`` prints and writes names what was planned (issue 19): the model and the GPU (their
defaults are otherwise invisible), the number of requests the trace really gave, how long a probe runs, a
label for a lone candidate, and the rejections at the target."""

import csv

import numpy as np
from click.testing import CliRunner

from kvsim.cli import main
from kvsim.traces import Provenance, Trace, save_trace


def test_plan_output_names_model_gpu_requests_used_and_rejections(tmp_path):
    num = 300  # fewer than --num-requests' default of 1000
    trace = Trace(
        request_id=np.arange(num),
        arrival_s=np.arange(num) / 2.0,
        num_prompt_tokens=np.full(num, 64),
        num_output_tokens=np.full(num, 16),
        provenance=Provenance("evenly spaced (test)"),
    )
    save_trace(trace, tmp_path / "t.jsonl")
    args = ["plan", "--trace", str(tmp_path / "t.jsonl"), "--slo", "ttft_p99=2s", "--target-rate", "2x"]
    args += [
        "--min-duration-s",
        "20",
        "--min-requests-per-replica",
        "20",
        "--rel-tol",
        "0.2",
        "--no-progress",
    ]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "1 candidate(s) of llama-2-7b on a100-80gb" in result.output  # SimConfig's defaults, said
    assert "(first 300 requests, own rate 2 req/s), target 4 req/s" in result.output
    assert "probes: at least 20 s of arrivals and 20 requests per replica" in result.output
    header = next(line for line in result.output.splitlines() if line.startswith("label "))
    assert "target_num_rejected" in header.split()
    with (tmp_path / "out" / "plan.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["label"] == "paged"  # no dimension varies: the allocator, not a blank
    assert (row["model"], row["gpu"], row["target_num_rejected"]) == ("llama-2-7b", "a100-80gb", "0")
    assert row["feasible"] == "True"
