"""The sweep's results table: one row per point, in grid order, with the swept fields and headline metrics.

Columns (CSV header order): ``index, point_id, <swept fields in grid order>, seed, status,
<IDENTITY_COLUMNS not swept>, <HEADLINE_COLUMNS>, error, run_dir``. A failed point has ``status=error``, its message in ``error`` and empty
metric cells. Every metric comes from the point's ``summary.json`` (docs/outputs.md); the column name says
where and carries the unit. Rows are plain dicts so ``kvsim.reports`` can take them as they are.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# column -> path of keys into summary.json
HEADLINE_COLUMNS: dict[str, tuple[str, ...]] = {
    "label": ("label",),
    # the point's offered rate (the runner reports it beside the summary): kvsim.reports' rate-sweep x axis
    "request_rate_per_s": ("workload", "request_rate_per_s"),
    # = normalized_latency_mean_s_per_token, under the name kvsim.reports' rate-sweep figure reads
    "normalized_latency_s_per_token": ("latency", "normalized_latency_s_per_token", "mean"),
    "num_requests": ("num_requests",),
    "num_finished": ("num_finished",),
    "num_rejected": ("num_rejected",),
    "num_preemptions": ("num_preemptions",),
    "duration_s": ("duration_s",),
    "throughput_requests_per_s": ("throughput", "requests_per_s"),
    "output_tokens_per_s": ("throughput", "output_tokens_per_s"),
    "goodput_requests_per_s": ("goodput", "requests_per_s"),
    "goodput_fraction": ("goodput", "fraction"),
}
# latency metric in summary.json -> (column stem, unit suffix): ttft_s.p99 becomes ttft_p99_s
_LATENCIES = {
    "ttft_s": ("ttft", "s"),
    "tpot_s": ("tpot", "s"),
    "e2e_s": ("e2e", "s"),
    "normalized_latency_s_per_token": ("normalized_latency", "s_per_token"),
    "queueing_delay_s": ("queueing_delay", "s"),
}
for _metric, (_stem, _unit) in _LATENCIES.items():
    for _stat in ("mean", "p50", "p90", "p99"):
        HEADLINE_COLUMNS[f"{_stem}_{_stat}_{_unit}"] = ("latency", _metric, _stat)
for _part in ("token_states", "reserved", "internal_frag", "external_frag", "free", "cached_bytes"):
    _column = _part if _part.endswith("_bytes") else f"{_part}_bytes"
    HEADLINE_COLUMNS[f"mean_{_column}"] = ("memory", "whole_run", _part)
HEADLINE_COLUMNS["kv_capacity_bytes"] = ("memory", "capacity_bytes")
HEADLINE_COLUMNS["peak_used_bytes"] = ("memory", "peak_used_bytes")
HEADLINE_COLUMNS["mean_num_seqs"] = ("batch", "mean_num_seqs")
HEADLINE_COLUMNS["max_num_seqs"] = ("batch", "max_num_seqs")
HEADLINE_COLUMNS["cost_model_source"] = ("cost_model", "source")


# What every point ran on, named in every row even where the sweep does not vary it (SimConfig's defaults filled
# in: a sweep that sets no model runs llama-2-7b).
IDENTITY_COLUMNS = ("model", "gpu", "trace")


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The IDENTITY_COLUMNS of a point's flat config (its fields; the defaults where it has none)."""
    from kvsim.simulator.config import SimConfig

    defaults = {f.name: f.default for f in dataclasses.fields(SimConfig)}
    return {name: config.get(name, defaults.get(name)) for name in IDENTITY_COLUMNS}


def _lookup(summary: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = summary
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def headline(summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """The headline metrics of one summary; None where the summary lacks the value (or there is none)."""
    values = {column: _lookup(summary or {}, path) for column, path in HEADLINE_COLUMNS.items()}
    capacity, token_states = values["kv_capacity_bytes"], values["mean_token_states_bytes"]
    values["token_states_fraction"] = (
        token_states / capacity if capacity and token_states is not None else None
    )
    return values


def columns(grid_names: Sequence[str]) -> list[str]:
    metric_columns = list(headline(None))
    fixed = [name for name in IDENTITY_COLUMNS if name not in grid_names]
    return ["index", "point_id", *grid_names, "seed", "status", *fixed, *metric_columns, "error", "run_dir"]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest round-trip spelling: byte-identical across runs
    return str(value)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], grid_names: Sequence[str]) -> None:
    header = columns(grid_names)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in header])
