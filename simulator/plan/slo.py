"""Latency SLOs: ``--slo ttft_p99=2s``, ``--slo tpot_p99=100ms``, ``--slo queueing_delay_p99=1s``.

An SLO bounds one statistic of one per-request latency of summary.json's ``latency`` table (docs/outputs.md):
metric ``ttft``, ``tpot``, ``e2e``, ``queueing_delay`` or ``normalized_latency`` (seconds per output token),
statistic ``mean``, ``p50``, ``p90``, ``p99`` or ``max``. A run meets the SLO when that value is <= the bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kvsim.errors import KvsimError

# SLO metric -> its key in summary.json's latency table
METRIC_TO_SUMMARY_KEY = {
    "ttft": "ttft_s",
    "tpot": "tpot_s",
    "e2e": "e2e_s",
    "queueing_delay": "queueing_delay_s",
    "normalized_latency": "normalized_latency_s_per_token",
}
STATS = ("mean", "p50", "p90", "p99", "max")
UNIT_TO_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6}

_SLO_RE = re.compile(
    r"^(?P<metric>[a-z0-9_]+)_(?P<stat>mean|p50|p90|p99|max)=(?P<value>[0-9.eE+-]+)(?P<unit>s|ms|us)?$"
)


@dataclass(frozen=True)
class Slo:
    """``metric``'s ``stat`` must be <= ``bound_s`` (seconds; seconds per token for normalized_latency)."""

    metric: str
    stat: str
    bound_s: float

    def __post_init__(self) -> None:
        if self.metric not in METRIC_TO_SUMMARY_KEY:
            raise KvsimError(f"SLO metric {self.metric!r}: choose one of {', '.join(METRIC_TO_SUMMARY_KEY)}")
        if self.stat not in STATS:
            raise KvsimError(f"SLO statistic {self.stat!r}: choose one of {', '.join(STATS)}")
        if not self.bound_s > 0:
            raise KvsimError(f"SLO {self.name}: the bound must be > 0, got {self.bound_s}")

    @classmethod
    def parse(cls, text: str) -> Slo:
        match = _SLO_RE.match(text.strip().replace(" ", ""))
        if not match:
            raise KvsimError(
                f"--slo {text!r}: write METRIC_STAT=VALUE[s|ms|us], e.g. ttft_p99=2s, tpot_p99=100ms, "
                f"queueing_delay_p99=1s (metrics: {', '.join(METRIC_TO_SUMMARY_KEY)}; stats: {', '.join(STATS)})"
            )
        try:
            value = float(match["value"])
        except ValueError as exc:
            raise KvsimError(f"--slo {text!r}: {match['value']!r} is not a number") from exc
        return cls(match["metric"], match["stat"], value * UNIT_TO_S[match["unit"] or "s"])

    @property
    def name(self) -> str:
        return f"{self.metric}_{self.stat}"

    def measured(self, summary: Mapping[str, Any]) -> float | None:
        """The run's value of this statistic; None when the run has none (e.g. no finished request)."""
        stats = summary.get("latency", {}).get(METRIC_TO_SUMMARY_KEY[self.metric]) or {}
        return stats.get(self.stat)

    def __str__(self) -> str:
        return f"{self.name}<={self.bound_s:g}s"


def parse_slos(texts: Iterable[str]) -> tuple[Slo, ...]:
    slos = tuple(Slo.parse(t) for t in texts)
    names = [s.name for s in slos]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise KvsimError(f"--slo {', '.join(repeated)} given more than once; keep one bound per statistic")
    return slos


def slo_violations(slos: Iterable[Slo], summary: Mapping[str, Any]) -> list[str]:
    """One line per SLO the run misses; a missing value (no finished request) counts as a miss."""
    misses = []
    for slo in slos:
        value = slo.measured(summary)
        if value is None:
            misses.append(f"{slo.name}: no value (no finished request)")
        elif value > slo.bound_s:
            misses.append(f"{slo.name}={value:.4g}s > {slo.bound_s:g}s")
    return misses
