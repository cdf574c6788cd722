"""One probe of the planner: simulate a configuration at one arrival rate and judge it against the SLOs and
the queue-growth criterion (stability.py).

The workload is the same at every rate: the same requests (same seed, same cut), with arrival times
rescaled to the rate, so a higher rate is the same work offered faster and feasibility is monotone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kvsim.simulator.cost.base import CostModel
from kvsim.simulator.plan.max_rate import Probe
from kvsim.simulator.plan.slo import Slo, slo_violations
from kvsim.simulator.plan.stability import DEFAULT_GROWTH_PER_S, DEFAULT_MIN_GROWTH_S, queue_growth
from kvsim.simulator.sweep.point import split_fields

# metric shown in tables -> path in summary.json
PROBE_METRICS = {
    "ttft_p99_s": ("latency", "ttft_s", "p99"),
    "tpot_p99_s": ("latency", "tpot_s", "p99"),
    "e2e_p99_s": ("latency", "e2e_s", "p99"),
    "queueing_delay_p99_s": ("latency", "queueing_delay_s", "p99"),
    "normalized_latency_mean_s_per_token": ("latency", "normalized_latency_s_per_token", "mean"),
    "throughput_requests_per_s": ("throughput", "requests_per_s"),
    "num_rejected": ("num_rejected",),
}


def _lookup(summary: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = summary
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def evaluate_at_rate(
    fields: Mapping[str, Any],
    rate_per_s: float,
    slos: Sequence[Slo],
    *,
    cost_model: CostModel | None = None,
    growth_per_s: float = DEFAULT_GROWTH_PER_S,
    min_growth_s: float = DEFAULT_MIN_GROWTH_S,
) -> Probe:
    """Simulate ``fields`` (SimConfig + workload fields, see sweep/point.py) with ``rate=rate_per_s``.

    ``cost_model`` replaces the one the config names (tests use ConstantCostModel)."""
    from kvsim.simulator.run import simulate

    values = {k: v for k, v in fields.items() if k not in ("rate", "rate_scale")}
    config, workload = split_fields({**values, "rate": rate_per_s})
    trace = workload.load()
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
    reasons = slo_violations(slos, summary)
    if not stability.stable:
        reasons.append(stability.reason)
    if not accepted.any():
        reasons.append("every request was rejected (see rejected_by_reason)")
    metrics = {name: _lookup(summary, path) for name, path in PROBE_METRICS.items()}
    metrics["queue_growth_per_s"] = stability.growth_per_s
    return Probe(rate_per_s, not reasons, tuple(reasons), metrics)
