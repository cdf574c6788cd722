"""Sweep rows (the row format of ``figures/rate_sweep.py``) from run folders, when no sweep table is at hand.

The request rate of a run is ``summary.json``'s ``workload.request_rate_per_s`` when present, else the one its
config asked for, when ``config.json``'s ``trace`` section names it (``rate_per_s``, ``request_rate_per_s`` or
``rate``); otherwise the offered rate measured from ``requests.csv``:
(number of arrivals - 1) / (last arrival - first arrival), which for a Poisson trace is close to, not equal to,
the nominal rate.
"""

import json
import math
from pathlib import Path

import numpy as np

from kvsim.reports.runs import RunResult

RATE_KEYS = ("rate_per_s", "request_rate_per_s", "rate")


def request_rate_per_s(run: RunResult) -> float | None:
    workload = run.summary.get("workload")  # what `kvsim sweep`'s point runner reports
    if isinstance(workload, dict) and workload.get("request_rate_per_s"):
        return float(workload["request_rate_per_s"])
    trace = run.config.get("trace")
    if isinstance(trace, dict):
        for key in RATE_KEYS:
            value = trace.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                return float(value)
    arrival_s = np.sort(run.requests["arrival_s"][np.isfinite(run.requests["arrival_s"])])
    if len(arrival_s) < 2 or arrival_s[-1] <= arrival_s[0]:
        return None
    return float((len(arrival_s) - 1) / (arrival_s[-1] - arrival_s[0]))


def sweep_rows_from_runs(runs: list[RunResult]) -> list[dict]:
    """One rate-sweep row per run, in the runs' order."""
    rows = []
    for run in runs:
        latency = run.summary.get("latency", {}).get("normalized_latency_s_per_token", {})
        throughput = run.summary.get("throughput", {})
        rows.append(
            {
                "label": run.label,
                "request_rate_per_s": request_rate_per_s(run),
                "normalized_latency_s_per_token": _finite(latency.get("mean")),
                "throughput_requests_per_s": _finite(throughput.get("requests_per_s")),
                "output_tokens_per_s": _finite(throughput.get("output_tokens_per_s")),
            }
        )
    return [r for r in rows if r["request_rate_per_s"] is not None]


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# Swept fields that are the x axis (or already in the label) rather than a separate line.
NOT_SERIES_FIELDS = frozenset({"rate", "rate_scale", "allocator"})


def sweep_table_rows(sweep_dir: Path) -> list[dict]:
    """``kvsim sweep``'s ``results.csv`` as rate-sweep rows, one line per configuration: when the grid sweeps
    fields other than rate and allocator (gpu, block_size, ...), they join the label (``paged gpu=h100-sxm``),
    so points of different configurations are never drawn as one line."""
    import csv

    with (sweep_dir / "results.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    spec_path = sweep_dir / "sweep.json"
    grid_names = (
        list(json.loads(spec_path.read_text(encoding="utf-8")).get("grid", {})) if spec_path.is_file() else []
    )
    series_fields = [g for g in grid_names if g not in NOT_SERIES_FIELDS]
    for row in rows:
        row["label"] = row.get("label") or row.get("allocator") or "?"
        row["label"] += "".join(f" {g}={row[g]}" for g in series_fields if row.get(g, "") != "")
    return rows
