"""The benchmark: runs end to end (tiny shapes on CPU), and its arithmetic and peaks are right."""

from __future__ import annotations

import csv

import pytest

from kvsim.kernels import bench
from kvsim.kernels.devices import peak_for


def test_quick_run_writes_csv_and_summary(tmp_path, device, capsys):
    out = tmp_path / "kb.csv"
    assert bench.main(["--out", str(out), "--device", device, "--quick"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == bench.COLUMNS
    assert {(r["kind"], r["layout"]) for r in rows} == {
        ("decode", "paged"),
        ("decode", "contiguous"),
        ("prefill", "paged"),
        ("prefill", "contiguous"),
    }
    for r in rows:  # achieved GB/s is bytes / latency, in 10^9 bytes per second
        expected = int(r["bytes"]) / float(r["latency_us"]) / 1e3
        assert float(r["achieved_gbps"]) == pytest.approx(expected, rel=1e-3, abs=0.06)
    decode = next(r for r in rows if r["kind"] == "decode" and r["layout"] == "paged")
    # tiny-gqa at head_dim 128, batch 2 x 80 tokens, fp16: K and V of 2 KV heads, plus q of 4 heads
    assert int(decode["bytes"]) == (2 * 2 * 80 * 2 + 2 * 4) * 128 * 2
    summary = (tmp_path / "kb_summary.txt").read_text()
    if device == "cuda":  # GPU time and the host's launch time are measured apart
        assert all(float(r["host_launch_us"]) > 0 for r in rows)
        assert "host launch of one paged decode call" in summary
    if device == "cpu":
        assert all(r["host_launch_us"] == "" for r in rows)
        assert "NOT meaningful" in capsys.readouterr().out
        assert "NOT meaningful" in summary


def test_summary_reports_the_headline_shape_against_its_goals():
    row = dict(
        kind="decode", layout="paged", heads="llama3-8b", batch=64, context=4096, block_size=16,
        num_kv_splits=2, latency_us=400.0, achieved_gbps=2690.0, frac_hbm_peak=0.803,
        paged_over_contiguous=1.05, achieved_tflops=2.7, device="NVIDIA H100 80GB HBM3",
    )  # fmt: skip
    text = bench.summarize([row], on_gpu=True)
    assert "fraction of HBM peak 0.803 (goal >= 0.70)" in text
    assert "paged/contiguous 1.05 (goal <= 1.2)" in text
    assert "NOT meaningful" not in text


@pytest.mark.parametrize(
    "name, hbm_gbps",
    [
        ("NVIDIA H100 80GB HBM3", 3350.0),
        ("NVIDIA H100 PCIe", 2000.0),
        ("NVIDIA H100 NVL", 3900.0),
        ("NVIDIA H200", 4800.0),
        ("NVIDIA A100-SXM4-80GB", 2039.0),
        ("NVIDIA A100-SXM4-40GB", 1555.0),
        ("NVIDIA L4", 300.0),
    ],
)
def test_device_peaks_match_the_most_specific_entry(name, hbm_gbps):
    assert peak_for(name).hbm_gbps == hbm_gbps


def test_unknown_device_has_no_peak():
    assert peak_for("Some Future GPU") is None


def test_decode_grid_keeps_memory_bounded_and_covers_the_headline():
    grid = bench.decode_grid(quick=False)
    assert all(s["batch"] * s["context"] <= bench.MAX_DECODE_TOKENS for s in grid)
    headline = [s for s in grid if s["heads"] == "llama3-8b" and s["batch"] == 64 and s["context"] == 4096]
    assert {s["block_size"] for s in headline} == {8, 16, 32, 64, 128, 256}
    assert {s["num_kv_splits"] for s in headline} == {None, 1, 2, 4, 8}


def test_budget_skips_what_is_left_and_still_writes_the_files(tmp_path, device, capsys):
    out = tmp_path / "kb.csv"
    assert bench.main(["--out", str(out), "--device", device, "--quick", "--budget-s", "0"]) == 0
    assert out.read_text().strip() == ",".join(bench.COLUMNS)  # header only
    assert "--budget-s 0.0 reached: skipped decode" in capsys.readouterr().out


def test_headline_shape_is_measured_first():
    first = bench.decode_grid(quick=False)[0]
    assert first == dict(bench.HEADLINE, block_size=16, num_kv_splits=None)
