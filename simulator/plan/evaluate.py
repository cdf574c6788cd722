"""One probe of the planner: simulate a configuration at one arrival rate and judge it by three tests: every
SLO holds (slo.py), the configuration keeps up with the offered rate (throughput.py), and its queue does not
grow (stability.py); and, unless rejections are allowed, it rejects no request.

The workload at a rate: the first ``num_requests`` of the trace, or more of it (then cycled) until the probe
spans ``min_duration_s`` of arrivals and ``min_requests_per_replica`` requests per replica (probe_trace.py),
rescaled to the rate. Where the first N suffice the workload is the same at every rate (the same requests
offered faster), so feasibility is monotone in the rate; where they do not, a faster probe takes more
requests of the same trace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kvsim.simulator.cost.base import CostModel
from kvsim.simulator.plan.max_rate import Probe
from kvsim.simulator.plan.probe_trace import (
    DEFAULT_MIN_DURATION_S,
    DEFAULT_MIN_REQUESTS_PER_REPLICA,
    probe_trace,
)
from kvsim.simulator.plan.slo import Slo, slo_violations
from kvsim.simulator.plan.stability import DEFAULT_GROWTH_PER_S, DEFAULT_MIN_GROWTH_S, queue_growth
from kvsim.simulator.plan.throughput import DEFAULT_THROUGHPUT_TOL, throughput_check
from kvsim.simulator.sweep.point import split_fields
from kvsim.traces import Trace

# metric shown in tables -> path in summary.json
PROBE_METRICS = {
    "ttft_p99_s": ("latency", "ttft_s", "p99"),
    "tpot_p99_s": ("latency", "tpot_s", "p99"),
    "e2e_p99_s": ("latency", "e2e_s", "p99"),
    "queueing_delay_p99_s": ("latency", "queueing_delay_s", "p99"),
    "normalized_latency_mean_s_per_token": ("latency", "normalized_latency_s_per_token", "mean"),
    "throughput_requests_per_s": ("throughput", "requests_per_s"),
    "num_requests": ("num_requests",),
    "num_rejected": ("num_rejected",),
}
WORKLOAD_CHOICE = ("rate", "rate_scale", "num_requests")  # what a probe decides, not the fields


def load_source(fields: Mapping[str, Any]) -> Trace:
    """The whole trace the fields name, at its own times (a length dataset: arrivals drawn at 1 req/s)."""
    _, workload = split_fields({k: v for k, v in fields.items() if k not in WORKLOAD_CHOICE})
    return workload.load()


def evaluate_at_rate(
    fields: Mapping[str, Any],
    rate_per_s: float,
    slos: Sequence[Slo],
    *,
    cost_model: CostModel | None = None,
    source: Trace | None = None,
    min_duration_s: float = DEFAULT_MIN_DURATION_S,
    min_requests_per_replica: int = DEFAULT_MIN_REQUESTS_PER_REPLICA,
    throughput_tol: float = DEFAULT_THROUGHPUT_TOL,
    growth_per_s: float = DEFAULT_GROWTH_PER_S,
    min_growth_s: float = DEFAULT_MIN_GROWTH_S,
    allow_rejections: bool = False,
) -> Probe:
    """Simulate ``fields`` (SimConfig + workload fields, see sweep/point.py) at ``rate_per_s``.

    ``cost_model`` replaces the one the config names (tests use ConstantCostModel); ``source`` is
    ``load_source(fields)`` when the caller has it already (a search loads the trace once)."""
    from kvsim.simulator.run import simulate

    config, _ = split_fields({k: v for k, v in fields.items() if k not in WORKLOAD_CHOICE})
    source = load_source(fields) if source is None else source
    num_requests = int(fields.get("num_requests") or len(source))
    probe = probe_trace(
        source,
        num_requests,
        rate_per_s,
        config.num_replicas,
        min_duration_s=min_duration_s,
        min_requests_per_replica=min_requests_per_replica,
    )
    trace = probe.trace
    result = simulate(config, trace, cost_model=cost_model, keep_timeline=False)
    summary = result.summary
    accepted = np.ones(len(trace), dtype=bool)
    accepted[list(result.recorder.rejected_reason)] = False
    arrival_s = trace.arrival_s[accepted]
    stability = queue_growth(
        arrival_s,
        result.recorder.first_scheduled_s[accepted] - arrival_s,
        growth_per_s=growth_per_s,
        min_growth_s=min_growth_s,
    )
    throughput = throughput_check(arrival_s, result.recorder.finish_s[accepted], tol=throughput_tol)
    reasons = slo_violations(slos, summary)
    if not throughput.keeps_up:
        reasons.append(throughput.reason)
    if not stability.stable:
        reasons.append(stability.reason)
    if not accepted.any():
        reasons.append("every request was rejected (see rejected_by_reason)")
    elif summary["num_rejected"] and not allow_rejections:
        reasons.append(_rejections(summary))
    metrics = {name: _lookup(summary, path) for name, path in PROBE_METRICS.items()}
    metrics.update(
        offered_rate_per_s=throughput.offered_per_s,
        achieved_rate_per_s=throughput.achieved_per_s,
        queue_growth_per_s=stability.growth_per_s,
        arrivals_s=trace.duration_s,
        workload=probe.how,
    )
    return Probe(rate_per_s, not reasons, tuple(reasons), metrics)


def _lookup(summary: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = summary
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _rejections(summary: Mapping[str, Any]) -> str:
    """``rejects 74 of 1000 requests (74: prompt 3000..4090 + output 7..1000 tokens exceed ...)``."""
    parts = []
    for reason, entry in summary.get("rejected_by_reason", {}).items():
        if isinstance(
            entry, Mapping
        ):  # a template and the range of its numbers (metrics.rejections_by_reason)
            from kvsim.simulator.metrics import render_reason

            parts.append((entry["count"], render_reason(reason, entry["values"])))
        else:
            parts.append((entry, reason))
    reasons = "; ".join(f"{count}: {reason}" for count, reason in sorted(parts, key=lambda p: -p[0]))
    return (
        f"rejects {summary['num_rejected']} of {summary['num_requests']} requests ({reasons}); "
        f"--allow-rejections plans for the accepted ones"
    )
