"""``kvsim plan --uncertainty``: the GPU count and the max rate as ranges over the cost model's uncertainty.

Per candidate: each uncertain term one at a time at its low and high end, one replica at an overload rate
(twice its nominal max sustainable rate), where the throughput it achieves is its capacity; the end that
lowers that throughput is the term's pessimistic end. The *pessimistic corner* puts every term at its
pessimistic end, the *optimistic corner* at the other; the candidate search (``plan.capacity``) runs again at
each. A recommendation that passes at the pessimistic corner meets the SLOs across the range (assuming, as the
replica search does, that a slower cost model needs at least as many replicas); it is named apart from the
nominal one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kvsim.simulator.sweep.backends import PointTask, execute
from kvsim.simulator.sweep.grid import Grid, point_id
from kvsim.simulator.uncertainty.cases import one_at_a_time
from kvsim.simulator.uncertainty.terms import UncertainTerm, format_term_values

OVERLOAD = 2.0  # × the nominal max sustainable rate of one replica: the throughput probe's rate
# A term whose two ends change that throughput by less than this (relative) is taken to have no direction and
# stays nominal in both corners (on the README's what-if, attn_prefill_paged_scale moved paged's by 0.05%). The
# direction is measured, not assumed: at overload it can be the unexpected one (vAttention at 64 KiB pages on
# the H100 sustained 2.4% more with step_overhead_s at its high end than at its low end).
MIN_THROUGHPUT_EFFECT = 0.005


def candidate_terms(fields: Mapping[str, Any]) -> list[UncertainTerm]:
    """The uncertain terms of one candidate (its cost model's, its engine's, its allocator's)."""
    from kvsim.simulator.cost import make_cost_model
    from kvsim.simulator.plan.evaluate import WORKLOAD_CHOICE
    from kvsim.simulator.specs import ModelSpec
    from kvsim.simulator.sweep.point import split_fields
    from kvsim.simulator.uncertainty.terms import run_terms

    config, _ = split_fields({k: v for k, v in fields.items() if k not in WORKLOAD_CHOICE})
    model = ModelSpec.from_name(config.model)
    cost = make_cost_model(
        model, config.gpu, config.tp, profile=config.profile, paged_decode_factor=config.paged_decode_factor
    )
    return [t for t in run_terms(config, cost) if t.uncertain]


def throughput_point(config: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """PointRunner: one replica of ``config`` at ``config["overload_rate"]``; the throughput it achieves."""
    from kvsim.simulator.plan.capacity import PlanSettings
    from kvsim.simulator.plan.evaluate import evaluate_at_rate

    config = dict(config)
    plan = config.pop("plan")
    rate = config.pop("overload_rate")
    settings = PlanSettings(**{**plan, "slos": tuple(plan["slos"])})
    probe = evaluate_at_rate(
        {**config, "num_replicas": 1},
        rate,
        (),
        min_duration_s=settings.min_duration_s,
        min_requests_per_replica=settings.min_requests_per_replica,
        allow_rejections=True,
    )
    return {"achieved_rate_per_s": probe.metrics["achieved_rate_per_s"]}


def corners(
    candidates: Grid,
    base: Mapping[str, Any],
    settings,
    nominal_rows: Sequence[Mapping[str, Any]],
    *,
    jobs: int = 1,
    ray_address: str | None = None,
) -> list[dict[str, Any]]:
    """Per candidate (grid order): its terms, each term's one-at-a-time throughput, and its pessimistic and
    optimistic corners as ``term_values`` (None: no uncertain term)."""
    settings_dict = {**asdict(settings), "slos": list(settings.slos)}
    per_candidate, tasks, keys = [], [], []
    for index, point in enumerate(candidates.points()):
        fields = {**base, **point}
        terms = candidate_terms(fields)
        nominal_rate = nominal_rows[index].get("max_sustainable_rate_per_s") or settings.start_rate_per_s
        per_candidate.append({"terms": terms, "effects": {}})
        for case in one_at_a_time(terms):
            config = {
                **fields,
                "term_values": format_term_values(case.values),
                "plan": settings_dict,
                "overload_rate": OVERLOAD * nominal_rate,
            }
            keys.append((index, case.term, case.end))
            tasks.append(PointTask(len(tasks), point_id(config), {"case": case.name}, config))
    for outcome in execute(tasks, throughput_point, jobs=jobs, ray_address=ray_address):
        index, term, end = keys[outcome["index"]]
        achieved = (outcome["summary"] or {}).get("achieved_rate_per_s")
        per_candidate[index]["effects"].setdefault(term, {})[end] = achieved
    result = []
    for entry in per_candidate:
        pessimistic, optimistic, ends = {}, {}, {}
        for term in entry["terms"]:
            measured = entry["effects"].get(term.name, {})
            low, high = measured.get("low"), measured.get("high")
            if low is None or high is None or abs(high - low) <= MIN_THROUGHPUT_EFFECT * max(low, high):
                continue  # no effect on throughput (or a failed probe): nominal in both corners
            worse, better = ("low", "high") if low < high else ("high", "low")
            pessimistic[term.name], optimistic[term.name] = getattr(term, worse), getattr(term, better)
            ends[term.name] = {"pessimistic": worse, "throughput_low_end": low, "throughput_high_end": high}
        result.append(
            {
                "terms": [t.as_dict() for t in entry["terms"]],
                "throughput_one_at_a_time": ends,
                "pessimistic": format_term_values(pessimistic),
                "optimistic": format_term_values(optimistic),
            }
        )
    return result


def _count(row: Mapping[str, Any]) -> int | None:
    return row.get("num_gpus") if row.get("feasible") else None


def summarize(
    nominal: Sequence[Mapping[str, Any]],
    pessimistic: Sequence[Mapping[str, Any]],
    optimistic: Sequence[Mapping[str, Any]],
    ranked,
    latency_key: str,
) -> dict[str, Any]:
    """Per candidate the GPU count and max rate as ranges, and the two recommendations."""
    per_candidate = []
    for nom, pes, opt in zip(nominal, pessimistic, optimistic):
        rates = [r.get("max_sustainable_rate_per_s") for r in (opt, nom, pes)]
        per_candidate.append(
            {
                "label": nom.get("label"),
                "num_gpus": {"nominal": _count(nom), "optimistic": _count(opt), "pessimistic": _count(pes)},
                "max_sustainable_rate_per_s": {
                    "optimistic": rates[0],
                    "nominal": rates[1],
                    "pessimistic": rates[2],
                },
            }
        )
    best_nominal = next(iter(r for r in ranked(nominal, latency_key) if r.get("feasible")), None)
    best_robust = next(iter(r for r in ranked(pessimistic, latency_key) if r.get("feasible")), None)
    return {
        "candidates": per_candidate,
        "recommended_nominal": best_nominal and {k: best_nominal.get(k) for k in ("label", "num_gpus")},
        "recommended_across_range": best_robust and {k: best_robust.get(k) for k in ("label", "num_gpus")},
    }


def lines(summary: Mapping[str, Any]) -> list[str]:
    """The ranges and the recommendations, for the terminal."""

    def gpus(n) -> str:
        return "infeasible" if n is None else f"{n} GPU{'s' * (n != 1)}"

    def rate(r) -> str:
        return "-" if r is None else f"{r:.3g}"

    out = [
        "",
        "Under the cost model's uncertainty (optimistic and pessimistic corners; kvsim.simulator.uncertainty)",
    ]
    for c in summary["candidates"]:
        n, r = c["num_gpus"], c["max_sustainable_rate_per_s"]
        counts = sorted({x for x in (n["optimistic"], n["pessimistic"], n["nominal"]) if x is not None})
        spread = (
            "-".join(str(x) for x in (counts[0], counts[-1]))
            if len(counts) > 1
            else (counts[0] if counts else None)
        )
        tail = "" if n["pessimistic"] is not None else "; infeasible at the pessimistic corner"
        out.append(
            f"  {c['label']}: {gpus(n['nominal'])}; {spread if spread is not None else 'none'} under the cost "
            f"model's uncertainty{tail}; max rate of one replica {rate(r['nominal'])} req/s "
            f"({rate(r['pessimistic'])}-{rate(r['optimistic'])})"
        )
    nominal, robust = summary["recommended_nominal"], summary["recommended_across_range"]
    out.append(
        "  recommended at nominal: "
        + (f"{nominal['label']} with {gpus(nominal['num_gpus'])}" if nominal else "none feasible")
    )
    out.append(
        "  meets the SLOs across the range (at the pessimistic corner): "
        + (f"{robust['label']} with {gpus(robust['num_gpus'])}" if robust else "none feasible")
    )
    return out
