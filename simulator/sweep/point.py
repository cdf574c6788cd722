"""The point runner that runs kvsim's simulator: a flat dict of fields -> a run folder and its summary.

A point's fields are the ``SimConfig`` fields (``allocator``, ``gpu``, ``tp``, ``max_num_seqs``, ...) plus the
workload fields below. Everything the sweep and the planner vary goes through this one function, so a grid
can vary any config field without code here knowing about it.

Workload fields:
- ``trace``: a bundled trace name (``kvsim traces list``) or a file path (required)
- ``trace_format``: the file's format when it cannot be detected
- ``trace_columns``: a file's columns in other tools' names, ``arrival_s=ts:ms,num_prompt_tokens=in,...``
  (``kvsim.traces.loaders.columns``)
- ``num_requests``: keep the first N requests; or ``cut_s``: keep those arriving in the first S seconds
- ``rate``: rescale arrival times to this mean rate, requests/s; or ``rate_scale``: × the trace's own rate
- ``arrival``, ``cv``: the arrival process of a length dataset (``poisson``, or ``gamma`` with ``cv``)

The order, the same in ``kvsim simulate``, ``sweep`` and ``plan`` (``Workload.load``): cut first, then rescale
the requests kept, so the rate offered is the rate asked for (docs/outputs.md "Workload").
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvsim.errors import KvsimError
from kvsim.simulator.config import SimConfig

WORKLOAD_FIELDS = (
    "trace",
    "trace_format",
    "trace_columns",
    "num_requests",
    "cut_s",
    "rate",
    "rate_scale",
    "arrival",
    "cv",
)
# the workload fields that pick which requests are drawn: a sweep point's seed derives from these alone, so
# points that differ in rate or in the system under test replay the same request sample
SEED_FIELDS = ("trace", "trace_format", "trace_columns", "num_requests", "cut_s", "arrival", "cv")


def known_fields() -> tuple[str, ...]:
    return (*(f.name for f in dataclasses.fields(SimConfig)), *WORKLOAD_FIELDS)


@dataclass(frozen=True)
class Workload:
    """Which requests, at which rate."""

    trace: str
    trace_format: str | None = None
    trace_columns: str | None = None  # FIELD=COLUMN[:UNIT],... (kvsim.traces.loaders.columns)
    num_requests: int | None = None
    cut_s: float | None = None  # seconds of arrivals kept (at ``rate`` when given, else the trace's own time)
    rate: float | None = None  # requests/s
    rate_scale: float | None = None  # × the (cut) trace's own mean rate
    arrival: str = "poisson"
    cv: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.trace, str) or not self.trace:
            raise KvsimError(
                "no trace: set the `trace` field (a bundled name such as sharegpt, or a file path)"
            )
        for name in ("trace_format", "trace_columns", "arrival"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise KvsimError(f"`{name}` must be text, got {value!r} ({type(value).__name__})")
        if self.trace_columns is not None:  # checked now, not at the first point that loads the trace
            from kvsim.traces.loaders.columns import ColumnMapping

            ColumnMapping.parse(self.trace_columns)
        if self.rate is not None and self.rate_scale is not None:
            raise KvsimError("both `rate` and `rate_scale` set; give the rate (req/s) or the scale, not both")
        if self.num_requests is not None and self.cut_s is not None:
            raise KvsimError(
                "both `num_requests` and `cut_s` set; keep the first N requests or S seconds, not both"
            )
        for name in ("rate", "rate_scale", "num_requests", "cut_s", "cv"):
            value = getattr(self, name)
            if value is None:
                continue
            kind = numbers.Integral if name == "num_requests" else numbers.Real
            if isinstance(value, bool) or not isinstance(value, kind) or not 0 < value < math.inf:
                what = "a positive integer" if name == "num_requests" else "a positive number"
                raise KvsimError(f"`{name}` must be {what}, got {value!r} ({type(value).__name__})")

    def load(self):
        """The trace that runs, in this order (one definition for simulate, sweep and plan):

        1. load: a trace with arrival times, rescaled as a whole to ``rate`` when given; a length dataset gets
           arrivals drawn at ``rate`` (so ``cut_s`` counts seconds at the asked rate either way);
        2. cut: the first ``num_requests`` requests, or those arriving in the first ``cut_s`` seconds;
        3. rescale the requests kept so that their own mean rate, (N - 1) / span, is ``rate`` (or
           ``rate_scale`` × their rate before this step): a part of a trace is rarely exactly as busy as the
           whole, and the rate asked for is the rate offered.

        Imported here to keep ``import kvsim`` light."""
        from kvsim.traces import cut_window, load_trace, mean_rate_per_s, take_first

        trace = load_trace(
            self.trace,
            self.trace_format,
            columns=self.trace_columns,
            rate=self.rate,
            seed=self.seed,
            arrival=self.arrival,
            cv=self.cv,
        )
        if self.num_requests is not None:
            trace = take_first(trace, int(self.num_requests))
        if self.cut_s is not None:
            start_s = float(trace.arrival_s[0])
            trace = cut_window(trace, start_s, start_s + float(self.cut_s))
        if self.rate is not None:
            trace = self._rescaled(trace, float(self.rate), "rate")
        elif self.rate_scale is not None:
            native = mean_rate_per_s(trace)
            if native is None:
                raise KvsimError(f"trace {self.trace!r} spans no time, so `rate_scale` has no rate to scale")
            trace = self._rescaled(trace, native * float(self.rate_scale), "rate_scale")
        return trace

    def _rescaled(self, trace, rate_per_s: float, name: str):
        from kvsim.traces import mean_rate_per_s, rescale_to_rate

        if mean_rate_per_s(trace) is None:
            raise KvsimError(
                f"`{name}`: the {len(trace)} request(s) kept of {self.trace!r} arrive at one instant, so they "
                "have no rate to rescale; keep more (num_requests, cut_s) or drop the rate"
            )
        return rescale_to_rate(trace, rate_per_s)


def split_fields(fields: dict[str, Any]) -> tuple[SimConfig, Workload]:
    """A flat point -> (SimConfig, Workload); an unknown field is an error that lists the known ones."""
    unknown = sorted(set(fields) - set(known_fields()))
    if unknown:
        raise KvsimError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known_fields()))}")
    workload_values = {k: v for k, v in fields.items() if k in WORKLOAD_FIELDS}
    if "trace" not in workload_values:
        raise KvsimError("no trace: set the `trace` field (a bundled name such as sharegpt, or a file path)")
    config_values = {k: v for k, v in fields.items() if k not in WORKLOAD_FIELDS}
    try:
        config = SimConfig.from_dict(config_values)
    except TypeError as exc:  # a value of the wrong type that __post_init__ did not catch
        raise KvsimError(f"bad config value: {exc}") from exc
    return config, Workload(**workload_values, seed=config.seed)


def simulate_point(fields: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Run one simulation and write its run folder into ``out_dir``; return its summary, whose ``workload``
    also names the offered rate ``request_rate_per_s`` (the sweep table's column)."""
    from kvsim.simulator.run import simulate

    config, workload = split_fields(fields)
    trace = workload.load()
    result = simulate(config, trace)
    result.write(Path(out_dir))
    offered = result.summary["workload"]
    return {**result.summary, "workload": {**offered, "request_rate_per_s": offered["offered_rate_per_s"]}}
