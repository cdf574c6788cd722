"""`kvsim simulate --uncertainty` and `kvsim plan --uncertainty` end to end, on small workloads."""

import json

from click.testing import CliRunner

from kvsim.cli import main

SIMULATE = [
    "simulate",
    "--trace",
    "azure-conv",
    "--num-requests",
    "60",
    "--rate",
    "20",
    "--model",
    "llama-2-7b",
    "--gpu",
    "a100-40gb",
    "--allocator",
    "paged",
    "--allocator",
    "reserved:max",
    "--uncertainty",
    "--jobs",
    "1",
]


def test_simulate_uncertainty_prints_intervals_and_verdicts_and_keeps_its_cases(tmp_path):
    out = tmp_path / "runs"
    first = CliRunner().invoke(main, [*SIMULATE, "--out", str(out), "--report"])
    assert first.exit_code == 0, first.output
    report = (out / "report.html").read_text()
    assert 'id="uncertainty"' in report and "range over the cases" in report  # verdict table, error bars
    assert "under uncertainty (low..high)" in first.output
    assert "differences robust in every case:" in first.output
    doc = json.loads((out / "uncertainty" / "uncertainty.json").read_text())
    terms = {t["name"] for t in doc["terms"]}
    assert {
        "paged_decode_factor",
        "gemm_flops_efficiency",
        "engine.vllm.step_s",
        "engine.vllm.request_s",
    } <= terms  # the A100-40GB roofline and vLLM v1's engine model
    assert "step_overhead_s" not in terms  # the engine model replaces the roofline's flat placeholder
    for label, per_metric in doc["intervals"].items():
        for metric, iv in per_metric.items():
            assert iv["low"] <= iv["nominal"] <= iv["high"], (label, metric)
    # reserved:max reserves each request's max length: 8 in a batch against paged's 18, TTFT p99 7.2 s against 0.31 s
    ttft = next(v for v in doc["verdicts"] if v["metric"] == "ttft_p99_s")
    assert (ttft["better"], ttft["robust"]) == ("paged:block_size=16", True)
    assert "  robust, TTFT s p99: paged:block_size=16 < reserved:max" in first.output
    again = CliRunner().invoke(main, [*SIMULATE, "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "uncertainty" / "uncertainty.json").read_text())["verdicts"] == doc["verdicts"]
    # without --uncertainty a rerun drops the verdicts it no longer makes (its cases stay for a later one)
    plain = CliRunner().invoke(main, [*SIMULATE[:-3], "--out", str(out)])
    assert plain.exit_code == 0, plain.output
    assert not (out / "uncertainty" / "uncertainty.json").exists()
    assert any((out / "uncertainty" / "cases").iterdir())


def test_plan_uncertainty_gives_gpu_counts_as_ranges_and_a_recommendation_across_them():
    result = CliRunner().invoke(
        main,
        [
            "plan",
            "--trace",
            "azure-conv",
            "--num-requests",
            "100",
            "--gpu",
            "a100-40gb",
            "--allocator",
            "paged",
            "--slo",
            "ttft_p99=2s",
            "--target-rate",
            "2x",
            "--allow-rejections",
            "--min-duration-s",
            "20",
            "--min-requests-per-replica",
            "100",
            "--uncertainty",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "under the cost model's uncertainty" in result.output
    assert "recommended at nominal: gpu=a100-40gb paged with" in result.output
    assert (
        "meets the SLOs across the range (at the pessimistic corner): gpu=a100-40gb paged with"
        in result.output
    )
