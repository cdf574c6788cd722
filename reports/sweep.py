"""Sweep rows (the row format of ``figures/rate_sweep.py``) from run folders, when no sweep table is at hand.

The request rate of a run is ``summary.json``'s ``workload.request_rate_per_s`` when present, else the one its
config asked for, when ``config.json``'s ``trace`` section names it (``rate_per_s``, ``request_rate_per_s`` or
``rate``); otherwise the offered rate measured from ``requests.csv``:
(number of arrivals - 1) / (last arrival - first arrival), which for a Poisson trace is close to, not equal to,
the nominal rate.
"""

import math

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
