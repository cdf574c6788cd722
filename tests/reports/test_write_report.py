"""write_report and friends, and `kvsim report`: one self-contained, deterministic, small HTML file."""

import csv
import json

import pytest
from click.testing import CliRunner
from plotly.offline import get_plotlyjs

from kvsim.cli import main
from kvsim.errors import KvsimError
from kvsim.reports import write_calibration_report, write_report, write_sweep_report

PLOTLY_JS_MARKER = "plotly.js v"  # the banner at the top of the embedded bundle


def test_report_embeds_plotly_once_and_has_a_summary_table_then_one_figure_per_view(make_run, tmp_path):
    runs = [make_run("a", label="paged:block_size=16"), make_run("b", label="reserved:max", seed=1)]
    out = write_report(runs, tmp_path / "report.html")
    text = out.read_text()
    assert text.count(PLOTLY_JS_MARKER) == 1
    assert "https://" not in text.split("</head>")[1]  # nothing fetched at view time
    assert '<table class="summary" id="summary">' in text
    assert text.index('id="summary"') < text.index('id="figure-1"')
    # breakdown, latency CDFs, one timeline per run
    assert [f"figure-{i}" in text for i in range(1, 6)] == [True, True, True, True, False]
    assert (
        "Step times: roofline estimate from datasheet peaks, not measured (roofline profile for a100-40gb)."
        in text
    )
    assert text.count("<td>roofline, not measured</td>") == 2


def test_report_says_measured_when_the_cost_model_was_measured(make_run, tmp_path):
    text = write_report([make_run(source="measured")], tmp_path / "r.html").read_text()
    assert "measured on a GPU (calibrated profile)" in text
    assert "<td>measured</td>" in text
    assert "not measured" not in text


def test_same_runs_give_a_byte_identical_report(make_run, tmp_path):
    run = make_run()
    first = write_report([run], tmp_path / "1.html").read_bytes()
    assert write_report([run], tmp_path / "2.html").read_bytes() == first


def test_a_folder_of_runs_expands_to_its_runs_in_path_order(make_run, tmp_path):
    make_run("side/b-vattention", label="vattention")
    make_run("side/a-paged", label="paged")
    text = write_report([tmp_path / "side"], tmp_path / "r.html").read_text()
    assert text.index("<td>paged</td>") < text.index("<td>vattention</td>")


def test_an_hour_long_timeline_stays_small(make_run, tmp_path):
    # An hour of azure-conv is ~19k requests and ~30k state changes per replica (kvsim simulate, paged, llama-2-7b,
    # a100-80gb); here 2 replicas. The data must stay well below plotly.js itself (~4.6 MiB).
    run = make_run(num_timeline_rows=30_000, num_replicas=2, num_requests=20_000)
    plotly_js_bytes = len(get_plotlyjs())
    data_bytes = write_report([run], tmp_path / "r.html").stat().st_size - plotly_js_bytes
    assert data_bytes < 1.5 * 2**20


def test_runs_sharing_a_label_become_a_sweep_report(make_run, tmp_path):
    runs = [make_run(f"r{rate}", label="paged", rate_per_s=rate, seed=int(rate)) for rate in (1.0, 2.0, 4.0)]
    text = write_report(runs, tmp_path / "sweep.html").read_text()
    assert "Throughput and normalized latency against request rate" in text
    assert "figure-2" not in text


def test_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(KvsimError, match=r"no summary\.json"):
        write_report([tmp_path / "empty"], tmp_path / "r.html")
    with pytest.raises(KvsimError, match="no run folders given"):
        write_report([], tmp_path / "r.html")


def test_a_run_missing_a_column_names_the_file_and_column(make_run, tmp_path):
    run = make_run()
    lines = (run / "timeline.csv").read_text().splitlines()
    (run / "timeline.csv").write_text("\n".join([lines[0].replace(",free,", ",fre,"), *lines[1:]]))
    with pytest.raises(KvsimError, match=r"timeline.csv: missing column\(s\) free"):
        write_report([run], tmp_path / "r.html")


def test_sweep_and_calibration_reports_from_rows(tmp_path):
    sweep = [
        {
            "label": "paged",
            "request_rate_per_s": r,
            "normalized_latency_s_per_token": 0.03,
            "throughput_requests_per_s": r,
        }
        for r in (1, 2)
    ]
    capacity = [{"label": "paged", "max_sustainable_rate_per_s": 2.0, "cost_per_hour_usd": 4.0}]
    text = write_sweep_report(sweep, tmp_path / "s.html", capacity_rows=capacity).read_text()
    assert 'id="capacity"' in text and "figure-2" in text
    calibration = [{"op": "gemm", "measured_s": 1.0, "predicted_s": 1.1, "held_out": True}]
    text = write_calibration_report(calibration, tmp_path / "c.html", device={"name": "H100"}).read_text()
    assert "Measured on name: H100" in text and "held-out MAPE 10.00%" in text


def test_cli_writes_a_report_of_run_folders(make_run, tmp_path):
    run = make_run()
    result = CliRunner().invoke(main, ["report", str(run), "--out", str(tmp_path / "r.html"), "--title", "T"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {tmp_path / 'r.html'}")
    assert "<title>T</title>" in (tmp_path / "r.html").read_text()


def test_cli_reports_the_run_folders_beside_a_simulate_comparison_table(tmp_path):
    """``kvsim report OUT/comparison.csv`` (the table ``simulate --out`` prints and writes) reports OUT's runs."""
    out = tmp_path / "runs"
    simulated = CliRunner().invoke(
        main,
        [
            *("simulate", "--trace", "azure-conv", "--num-requests", "30"),
            *("--allocator", "paged", "--allocator", "reserved:max", "--out", str(out)),
        ],
    )
    assert simulated.exit_code == 0, simulated.output
    result = CliRunner().invoke(main, ["report", str(out / "comparison.csv"), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "r.html").read_text()
    assert "paged:block_size=16" in text and "reserved:max" in text


def test_cli_reads_a_sweep_table_and_a_plan_table(tmp_path):
    sweep_csv, plan_csv = tmp_path / "sweep.csv", tmp_path / "plan.csv"
    with sweep_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["label", "request_rate_per_s", "normalized_latency_s_per_token", "throughput_requests_per_s"]
        )
        w.writerows([["paged", 1, 0.03, 1], ["paged", 2, 0.05, 1.9]])
    plan_csv.write_text("label,max_sustainable_rate_per_s,cost_per_hour_usd\npaged,2.0,4.0\n")
    result = CliRunner().invoke(
        main, ["report", str(sweep_csv), str(plan_csv), "--out", str(tmp_path / "s.html")]
    )
    assert result.exit_code == 0, result.output
    assert 'id="capacity"' in (tmp_path / "s.html").read_text()


def test_cli_bad_input_is_an_error_line_with_exit_2(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({}))
    for args in (
        ["report", str(tmp_path / "missing"), "--out", "r.html"],
        ["report", str(tmp_path / "x.json"), "--out", "r.html"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2
        assert result.output.startswith("Error: ")


def test_cli_reports_a_real_sweep_folder_through_its_results_table(tmp_path):
    sweep = [
        "sweep",
        "--set",
        "trace=azure-conv",
        "--set",
        "model=opt-13b",
        "--set",
        "gpu=a100-40gb",
        "--set",
        "num_requests=30",
        "--grid",
        "allocator=paged,reserved:max",
        "--grid",
        "rate=1,2",
        "--out",
        str(tmp_path / "sweep"),
        "--no-progress",
    ]
    ran = CliRunner().invoke(main, sweep)
    assert ran.exit_code == 0, ran.output
    result = CliRunner().invoke(main, ["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "s.html")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "s.html").read_text()
    assert text.count("<td>paged:block_size=16</td>") == 2 and text.count("<td>reserved:max</td>") == 2
    assert "Throughput and normalized latency against request rate" in text


def test_simulate_report_flag_writes_this_report_of_a_real_run(tmp_path):
    args = [
        "simulate",
        "--trace",
        "azure-conv",
        "--num-requests",
        "30",
        "--model",
        "opt-13b",
        "--gpu",
        "a100-40gb",
        "--allocator",
        "paged",
        "--allocator",
        "vattention",
        "--out",
        str(tmp_path / "runs"),
        "--report",
    ]
    ran = CliRunner().invoke(main, args)
    assert ran.exit_code == 0, ran.output
    text = (tmp_path / "runs" / "report.html").read_text()
    assert text.count(PLOTLY_JS_MARKER) == 1
    assert [f"figure-{i}" in text for i in range(1, 6)] == [True, True, True, True, False]
    assert "<td>roofline, not measured</td>" in text


def test_sweep_table_rows_keep_configurations_that_share_a_label_apart(tmp_path):
    from kvsim.reports.sweep import sweep_table_rows

    (tmp_path / "sweep.json").write_text(
        json.dumps({"grid": {"allocator": ["paged"], "gpu": ["a", "b"], "rate": [1]}})
    )
    (tmp_path / "results.csv").write_text(
        "index,allocator,gpu,rate,status,label,request_rate_per_s\n"
        "0,paged,a,1,ok,paged:block_size=16,1.0\n"
        "1,paged,b,1,ok,paged:block_size=16,1.0\n"
    )
    assert [r["label"] for r in sweep_table_rows(tmp_path)] == [
        "paged:block_size=16 gpu=a",
        "paged:block_size=16 gpu=b",
    ]
