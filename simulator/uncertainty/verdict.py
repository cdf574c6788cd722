"""Intervals of the headline metrics across cases, and whether each pair of configurations keeps its order.

A pair's difference on a metric is *robust* when the better configuration at nominal is better in every case
that ran; otherwise it is *fragile*, and the term that decides it is the one whose one-at-a-time cases flip
the order (the one with the largest effect on the difference when several do, or when none does alone).
"""

from __future__ import annotations

from dataclasses import dataclass

# metric -> (label in tables, path into summary.json, higher is better)
HEADLINE_METRICS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "throughput_tok_s": ("throughput out tok/s", ("throughput", "output_tokens_per_s"), True),
    "ttft_p50_s": ("TTFT s p50", ("latency", "ttft_s", "p50"), False),
    "ttft_p99_s": ("TTFT s p99", ("latency", "ttft_s", "p99"), False),
    "tpot_p50_s": ("TPOT s p50", ("latency", "tpot_s", "p50"), False),
    "tpot_p99_s": ("TPOT s p99", ("latency", "tpot_s", "p99"), False),
    "e2e_p50_s": ("e2e s p50", ("latency", "e2e_s", "p50"), False),
    "e2e_p99_s": ("e2e s p99", ("latency", "e2e_s", "p99"), False),
}
# Two values closer than this (relative) are a tie: neither configuration is better in that case.
TIE_RTOL = 1e-9
# A pair whose nominal values differ by less than this (relative) shows no difference to judge (every allocator
# of a run that keeps up finishes at the offered rate: their throughputs differ in the last digits).
MIN_RELATIVE_DIFFERENCE = 0.01


def metric_values(summary: dict | None) -> dict[str, float | None]:
    """The headline metrics of one summary (None where missing)."""
    values: dict[str, float | None] = {}
    for metric, (_, path, _) in HEADLINE_METRICS.items():
        node = summary
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        values[metric] = float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None
    return values


@dataclass(frozen=True)
class Interval:
    nominal: float | None
    low: float | None
    high: float | None
    num_cases: int  # cases with a value (the nominal included)


def interval(values: list[float | None], nominal: float | None) -> Interval:
    present = [v for v in values if v is not None]
    if nominal is not None:
        present.append(nominal)
    if not present:
        return Interval(nominal, None, None, 0)
    return Interval(nominal, min(present), max(present), len(present))


def _order(a: float | None, b: float | None, higher_better: bool) -> int | None:
    """+1: a is better, -1: b is, 0: a tie; None: a value is missing."""
    if a is None or b is None:
        return None
    if abs(a - b) <= TIE_RTOL * max(abs(a), abs(b)):
        return 0
    return 1 if (a > b) == higher_better else -1


@dataclass(frozen=True)
class PairVerdict:
    """Whether ``better`` stays better than ``worse`` on ``metric`` in every case."""

    metric: str
    better: str  # the better configuration at nominal
    worse: str
    num_holds: int  # cases (nominal included) in which ``better`` is strictly better
    num_cases: int  # cases with both values
    robust: bool
    decided_by: str | None  # fragile: the term that decides it (one-at-a-time)
    flipping_terms: tuple[str, ...]  # terms whose one-at-a-time case alone reverses or ties the order

    def sentence(self) -> str:
        label, _, higher = HEADLINE_METRICS[self.metric]
        sign = ">" if higher else "<"
        text = f"{self.better} {sign} {self.worse} on {label} in {self.num_holds} of {self.num_cases} cases"
        if self.robust:
            return f"{text}: robust"
        return f"{text}: not robust; driven by {self.decided_by}"

    def as_dict(self) -> dict:
        return {
            "metric": self.metric,
            "better": self.better,
            "worse": self.worse,
            "num_holds": self.num_holds,
            "num_cases": self.num_cases,
            "robust": self.robust,
            "decided_by": self.decided_by,
            "flipping_terms": list(self.flipping_terms),
            "verdict": self.sentence(),
        }


def pair_verdict(
    metric: str,
    a: str,
    b: str,
    case_values: dict[str, dict[str, float | None]],
    oat: dict[str, tuple[str, str]],
) -> PairVerdict | None:
    """The verdict on ``a`` against ``b`` for ``metric``. ``case_values``: case name -> {configuration ->
    value}, with a ``nominal`` case; ``oat``: one-at-a-time case name -> (term, end). None when the two differ
    by less than ``MIN_RELATIVE_DIFFERENCE`` at nominal (no difference to judge) or a nominal value is missing."""
    _, _, higher = HEADLINE_METRICS[metric]
    nominal = case_values["nominal"]
    sign = _order(nominal.get(a), nominal.get(b), higher)
    if not sign or abs(nominal[a] - nominal[b]) < MIN_RELATIVE_DIFFERENCE * max(
        abs(nominal[a]), abs(nominal[b])
    ):
        return None
    better, worse = (a, b) if sign > 0 else (b, a)
    orders = {name: _order(v.get(better), v.get(worse), higher) for name, v in case_values.items()}
    ran = {name: o for name, o in orders.items() if o is not None}
    holds = sum(o == 1 for o in ran.values())
    robust = holds == len(ran)
    decided_by, flipping = None, ()
    if not robust:
        flipping, decided_by = _deciding_term(better, worse, case_values, oat, orders)
    return PairVerdict(metric, better, worse, holds, len(ran), robust, decided_by, flipping)


def _deciding_term(better, worse, case_values, oat, orders) -> tuple[tuple[str, ...], str]:
    """(terms whose one-at-a-time case alone breaks the order, the deciding term): the flipping term with the
    largest effect on the difference; else the term with the largest effect at all."""
    nominal_diff = case_values["nominal"][better] - case_values["nominal"][worse]
    effects: dict[str, float] = {}
    flipping: list[str] = []
    for name, (term, _) in oat.items():
        values = case_values.get(name, {})
        if values.get(better) is None or values.get(worse) is None:
            continue
        effect = abs(values[better] - values[worse] - nominal_diff)
        effects[term] = max(effects.get(term, 0.0), effect)
        if orders.get(name) != 1 and term not in flipping:
            flipping.append(term)
    pool = flipping or list(effects)
    if not pool:
        return (), "an interaction of terms (no one-at-a-time case ran)"
    decided = max(pool, key=lambda term: (effects.get(term, 0.0), term))
    if not flipping:
        decided += " (with others: no term flips it alone)"
    return tuple(flipping), decided


def sensitivity_ranking(
    case_values_by_metric: dict[str, dict[str, dict[str, float | None]]], oat: dict[str, tuple[str, str]]
) -> list[tuple[str, float]]:
    """Terms by their largest one-at-a-time effect on any headline metric of any configuration, relative to
    the nominal value: [(term, effect)], largest first (ties by name)."""
    effects: dict[str, float] = {term: 0.0 for term, _ in oat.values()}
    for case_values in case_values_by_metric.values():
        nominal = case_values["nominal"]
        for name, (term, _) in oat.items():
            for config, value in case_values.get(name, {}).items():
                base = nominal.get(config)
                if value is None or base is None or base == 0:
                    continue
                effects[term] = max(effects[term], abs(value - base) / abs(base))
    return sorted(effects.items(), key=lambda item: (-item[1], item[0]))
