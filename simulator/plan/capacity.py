"""Capacity planning: per candidate configuration (GPU type × TP × allocator × other settings), the max
sustainable rate of one replica, and for a target rate the fewest replicas that serve it.

Per candidate:
1. bisect the rate of one replica (max_rate.py) -> r1;
2. with a target rate R: start from n = ceil(R / r1) replicas (linear scaling, an estimate), then *simulate*
   n replicas behind the router at R and move n down while n − 1 still passes, or up (at most
   ``MAX_EXTRA_REPLICAS`` times) until one passes. The reported count is the one a simulation confirmed.
GPUs = replicas × TP; cost = GPUs × price per GPU-hour. Candidates run in parallel through the sweep's
backends (process pool or Ray); each candidate's search is sequential.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kvsim.errors import KvsimError
from kvsim.simulator.config import SimConfig
from kvsim.simulator.cost.base import CostModel
from kvsim.simulator.plan.evaluate import evaluate_at_rate
from kvsim.simulator.plan.max_rate import DEFAULT_REL_TOL, Probe, find_max_rate
from kvsim.simulator.plan.prices import price_per_gpu_hour
from kvsim.simulator.plan.slo import parse_slos
from kvsim.simulator.plan.stability import DEFAULT_GROWTH_PER_S, DEFAULT_MIN_GROWTH_S
from kvsim.simulator.sweep.backends import PointTask, execute
from kvsim.simulator.sweep.grid import Grid, point_id

MAX_EXTRA_REPLICAS = 3  # verification steps above the linear estimate before calling a candidate infeasible
MAX_REPLICAS = 256


@dataclass(frozen=True)
class PlanSettings:
    """What every candidate is held to. SLOs are kept as their strings so the settings travel as JSON."""

    slos: tuple[str, ...]
    target_rate_per_s: float | None = None
    start_rate_per_s: float = 1.0
    rel_tol: float = DEFAULT_REL_TOL
    growth_per_s: float = DEFAULT_GROWTH_PER_S
    min_growth_s: float = DEFAULT_MIN_GROWTH_S

    def __post_init__(self) -> None:
        parse_slos(self.slos)  # fail at the boundary, before any worker starts
        if self.target_rate_per_s is not None and not self.target_rate_per_s > 0:
            raise KvsimError(f"--target-rate must be > 0 req/s, got {self.target_rate_per_s}")


def plan_candidate(
    fields: Mapping[str, Any], settings: PlanSettings, *, cost_model: CostModel | None = None
) -> dict[str, Any]:
    """Search one candidate; returns its row (without cost, which the caller adds) and its probe log.
    ``cost_model`` replaces the one the fields name (tests use ConstantCostModel)."""
    slos = parse_slos(settings.slos)
    probes: list[dict[str, Any]] = []

    def evaluate(num_replicas: int, rate: float) -> Probe:
        probe = evaluate_at_rate(
            {**fields, "num_replicas": num_replicas},
            rate,
            slos,
            cost_model=cost_model,
            growth_per_s=settings.growth_per_s,
            min_growth_s=settings.min_growth_s,
        )
        probes.append({"num_replicas": num_replicas, **asdict(probe)})
        return probe

    search = find_max_rate(
        lambda rate: evaluate(1, rate), start_rate_per_s=settings.start_rate_per_s, rel_tol=settings.rel_tol
    )
    row: dict[str, Any] = {"max_sustainable_rate_per_s": search.max_rate_per_s, "search": search.note}
    best = [p for p in search.probes if p.ok and p.rate_per_s == search.max_rate_per_s]
    row.update(best[0].metrics if best else {})
    target = settings.target_rate_per_s
    if target is None:
        return {"row": row, "probes": probes}
    if search.max_rate_per_s is None:
        # Why, at the lowest rate tried (an SLO below one request's own latency fails at every rate)
        lowest = min(search.probes, key=lambda p: p.rate_per_s, default=None)
        why = f" (at {lowest.rate_per_s:.4g} req/s: {'; '.join(lowest.reasons)})" if lowest and lowest.reasons else ""
        row.update(num_replicas=None, feasible=False, note=f"one replica fails at every rate tried{why}")
        return {"row": row, "probes": probes}
    num = max(1, math.ceil(target / search.max_rate_per_s - 1e-9))
    if num > MAX_REPLICAS:
        row.update(num_replicas=None, feasible=False, note=f"needs more than {MAX_REPLICAS} replicas")
        return {"row": row, "probes": probes}
    tried: dict[int, Probe] = {num: evaluate(num, target)}
    if tried[num].ok:
        while num > 1:
            tried[num - 1] = evaluate(num - 1, target)
            if not tried[num - 1].ok:
                break
            num -= 1
    else:
        for _ in range(MAX_EXTRA_REPLICAS):
            num += 1
            tried[num] = evaluate(num, target)
            if tried[num].ok:
                break
    chosen = tried[num]
    estimate = max(1, math.ceil(target / search.max_rate_per_s - 1e-9))
    if not chosen.ok:
        row.update(
            num_replicas=None,
            feasible=False,
            note=f"{num} replicas still fail at the target: {'; '.join(chosen.reasons)}",
        )
        return {"row": row, "probes": probes}
    row.update({f"target_{k}": v for k, v in chosen.metrics.items()})
    row.update(
        num_replicas=num,
        feasible=True,
        note=f"linear estimate {estimate} replica{'s' * (estimate > 1)}, simulated {sorted(tried)} at {target:.4g} req/s",
    )
    return {"row": row, "probes": probes}


def plan_point(config: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """PointRunner for the sweep backends: ``config["plan"]`` holds the PlanSettings as a dict."""
    config = dict(config)
    plan = config.pop("plan")
    settings = PlanSettings(**{**plan, "slos": tuple(plan["slos"])})
    result = plan_candidate(config, settings)
    (Path(out_dir) / "probes.json").write_text(json.dumps(result["probes"], indent=1, sort_keys=True) + "\n")
    return result["row"]


def run_plan(
    candidates: Grid,
    base: Mapping[str, Any],
    settings: PlanSettings,
    prices: Mapping[str, float],
    *,
    jobs: int = 1,
    ray_address: str | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Every candidate's row, in grid order, with cost and its probe log (``probes``: every simulation run
    for it, in order); failed candidates carry their error."""
    from tqdm import tqdm

    if jobs < 1:
        raise KvsimError(f"--jobs must be at least 1, got {jobs}")

    settings_dict = {**asdict(settings), "slos": list(settings.slos)}
    tasks = []
    for index, point in enumerate(candidates.points()):
        config = {**base, **point, "plan": settings_dict}
        tasks.append(PointTask(index=index, point_id=point_id(config), point=point, config=config))
    rows: list[dict[str, Any]] = [{} for _ in tasks]
    varied = [name for name, values in candidates.fields if len(values) > 1 and "+" not in name]
    varied += [
        part
        for name, values in candidates.fields
        if len(values) > 1 and "+" in name
        for part in name.split("+")
    ]
    outcomes = execute(tasks, plan_point, jobs=jobs, ray_address=ray_address)
    for outcome in tqdm(outcomes, total=len(tasks), disable=not progress, desc="plan", unit="candidate"):
        task = tasks[outcome["index"]]
        fields = {**base, **task.point}
        row = {
            "index": task.index,
            "label": _label(task.point, varied),
            **task.point,
            "status": outcome["status"],
            "error": outcome["error"],
        }
        row.update(outcome["summary"] or {})
        probes_json = outcome["files"].get("probes.json")
        row["probes"] = json.loads(probes_json) if probes_json else []
        gpu, tp = str(fields.get("gpu", SimConfig.gpu)), int(fields.get("tp", SimConfig.tp))
        row.setdefault("gpu", gpu)
        row.setdefault("tp", tp)
        usd = price_per_gpu_hour(gpu, prices)
        # one replica: the columns kvsim.reports' capacity figure reads (rate and cost of the same unit)
        row["cost_per_hour_usd"] = usd * tp
        if row.get("num_replicas"):
            row["num_gpus"] = row["num_replicas"] * tp
            row["total_cost_per_hour_usd"] = row["num_gpus"] * usd
        rows[task.index] = row
    return rows


def _label(point: Mapping[str, Any], varied: Sequence[str]) -> str:
    """The candidate's values of the dimensions that vary (all of them when none does)."""
    keys = [k for k in point if k in varied] or list(point)
    return " ".join(str(point[k]) if k == "allocator" else f"{k}={point[k]}" for k in keys)


def ranked(rows: Sequence[Mapping[str, Any]], latency_key: str) -> list[Mapping[str, Any]]:
    """Feasible candidates by total cost, then GPUs, then latency at the target; the rest after, in order."""
    feasible = [r for r in rows if r.get("feasible")]
    feasible.sort(key=lambda r: (r["total_cost_per_hour_usd"], r["num_gpus"], r.get(latency_key) or math.inf))
    return feasible + [r for r in rows if not r.get("feasible")]


def pareto_front(rows: Sequence[Mapping[str, Any]], latency_key: str) -> list[Mapping[str, Any]]:
    """Feasible rows no other feasible row beats on both total cost and latency (ties kept), cheapest first."""
    points = [r for r in rows if r.get("feasible") and r.get(latency_key) is not None]
    front = [
        r
        for r in points
        if not any(
            o["total_cost_per_hour_usd"] <= r["total_cost_per_hour_usd"]
            and o[latency_key] <= r[latency_key]
            and (
                o["total_cost_per_hour_usd"] < r["total_cost_per_hour_usd"] or o[latency_key] < r[latency_key]
            )
            for o in points
        )
    ]
    return sorted(front, key=lambda r: (r["total_cost_per_hour_usd"], r[latency_key]))
