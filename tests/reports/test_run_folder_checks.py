"""`kvsim report` refuses incomplete run folders (naming them), labels runs that are not one study, and reads a
`kvsim plan --out` folder."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kvsim.cli import main
from kvsim.errors import KvsimError
from kvsim.reports import write_report

AZURE_ROWS = [
    ("2023-11-16 18:15:46.0000000", 300, 40),
    ("2023-11-16 18:15:46.5000000", 120, 12),
    ("2023-11-16 18:15:47.2500000", 900, 80),
    ("2023-11-16 18:15:48.0000000", 50, 3),
]


@pytest.fixture
def real_run(tmp_path):
    """A run folder written by `kvsim simulate` (summary.json records the rows of its CSVs)."""
    trace = tmp_path / "tiny.csv"
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens", *(f"{t},{c},{g}" for t, c, g in AZURE_ROWS)]
    trace.write_text("\n".join(lines) + "\n")
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["simulate", "--trace", str(trace), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out / "paged_block_size-16"


def test_summary_records_the_rows_of_its_csvs(real_run):
    summary = json.loads((real_run / "summary.json").read_text())
    requests = (real_run / "requests.csv").read_text().splitlines()
    timeline = (real_run / "timeline.csv").read_text().splitlines()
    assert summary["num_requests"] == len(requests) - 1 == 4
    assert summary["num_timeline_rows"] == len(timeline) - 1 > 1


@pytest.mark.parametrize(
    "file, damage, message",
    [
        # Ctrl-C's result before: a full summary.json beside a header-only requests.csv
        (
            "requests.csv",
            lambda text: text.splitlines(keepends=True)[0],
            "0 rows, but summary.json says num_requests 4",
        ),
        (
            "requests.csv",
            lambda text: "".join(text.splitlines(keepends=True)[:-1]),
            "3 rows, but summary.json",
        ),
        ("timeline.csv", lambda text: "".join(text.splitlines(keepends=True)[:-1]), "says num_timeline_rows"),
        ("timeline.csv", lambda text: text[:-1], "its last line is cut short"),  # the cells may be cut too
        ("requests.csv", lambda text: text[: text.rindex(",") - 1] + "\n", "cells, the header 17"),
    ],
)
def test_report_refuses_an_incomplete_run_folder_and_names_it(real_run, tmp_path, file, damage, message):
    path = real_run / file
    path.write_text(damage(path.read_text()))
    with pytest.raises(KvsimError, match=message) as error:
        write_report([real_run.parent], tmp_path / "report.html")
    assert str(real_run) in str(error.value)
    result = CliRunner().invoke(main, ["report", str(real_run.parent), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and result.output.startswith("Error: ")
    assert not (tmp_path / "r.html").exists()


def test_report_says_when_runs_are_of_different_models_gpus_or_traces(make_run, tmp_path):
    """They may be compared on purpose, so the report is written, and says so in its header."""
    first, second = make_run("a", label="paged:block_size=16"), make_run("b", label="vattention", seed=1)
    config = json.loads((second / "config.json").read_text())
    (second / "config.json").write_text(json.dumps({**config, "model": "llama-3-8b", "gpu": "h100-sxm"}))
    html = write_report([first, second], tmp_path / "mixed.html").read_text()
    assert "not one study" in html
    assert "model: opt-13b (paged:block_size=16); llama-3-8b (vattention)" in html
    assert "gpu: a100-40gb (paged:block_size=16); h100-sxm (vattention)" in html
    same = write_report([first, make_run("c", label="vattention")], tmp_path / "same.html").read_text()
    assert "not one study" not in same


def test_report_reads_a_plan_folder(tmp_path):
    """`kvsim report PLAN_DIR` said "not a kvsim run folder", though its help says it takes a plan."""
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "plan.csv").write_text(
        "index,label,gpu,status,max_sustainable_rate_per_s,cost_per_hour_usd,num_gpus\n"
        "0,paged h100-sxm,h100-sxm,ok,11.27,3.5,1\n1,vattention h100-sxm,h100-sxm,ok,10.1,3.5,1\n"
    )
    (plan / "plan.json").write_text("{}\n")
    result = CliRunner().invoke(main, ["report", str(plan), "--out", str(tmp_path / "plan.html")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "plan.html").read_text()
    assert "kvsim capacity plan" in html and "vattention h100-sxm" in html
