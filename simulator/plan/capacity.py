"""Capacity planning: per candidate configuration (GPU type × TP × allocator × other settings), the max
sustainable rate of one replica, and for a target rate the fewest replicas that serve it.

Per candidate:
1. bisect the rate of one replica (max_rate.py) -> r1;
2. with a target rate R: from the estimate n = ceil(R / r1) (linear scaling), *simulate* n replicas behind
   the router at R; if n passes, try n − 1, n − 2, n − 4, ... until one fails; if n fails, try n + 1,
   n + 2, n + 4, ... (up to ``MAX_REPLICAS``) until one passes; then bisect between the two. The reported
   count passed its simulation and one fewer failed its own (or it is 1): no count is extrapolated.
A probe passes when every SLO holds, the replicas keep up with the offered rate, the queue does not grow,
and (unless ``allow_rejections``) no request is rejected (evaluate.py); each probe runs long enough to show
an overload (probe_trace.py).
GPUs = replicas × TP; cost = GPUs × price per GPU-hour. Candidates run in parallel through the sweep's
backends (process pool or Ray); each candidate's search is sequential.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kvsim.errors import KvsimError
from kvsim.simulator.config import SimConfig
from kvsim.simulator.cost.base import CostModel
from kvsim.simulator.plan.evaluate import evaluate_at_rate, load_source
from kvsim.simulator.plan.max_rate import DEFAULT_REL_TOL, Probe, check_search, find_max_rate
from kvsim.simulator.plan.prices import price_per_gpu_hour
from kvsim.simulator.plan.probe_trace import DEFAULT_MIN_DURATION_S, DEFAULT_MIN_REQUESTS_PER_REPLICA
from kvsim.simulator.plan.slo import parse_slos
from kvsim.simulator.plan.stability import DEFAULT_GROWTH_PER_S, DEFAULT_MIN_GROWTH_S
from kvsim.simulator.plan.throughput import DEFAULT_THROUGHPUT_TOL
from kvsim.simulator.sweep.backends import PointTask, execute
from kvsim.simulator.sweep.grid import Grid, point_id

MAX_REPLICAS = 256  # the replica search gives up (infeasible) when this many still fail


@dataclass(frozen=True)
class PlanSettings:
    """What every candidate is held to. SLOs are kept as their strings so the settings travel as JSON."""

    slos: tuple[str, ...]
    target_rate_per_s: float | None = None
    start_rate_per_s: float = 1.0
    rel_tol: float = DEFAULT_REL_TOL
    growth_per_s: float = DEFAULT_GROWTH_PER_S
    min_growth_s: float = DEFAULT_MIN_GROWTH_S
    throughput_tol: float = DEFAULT_THROUGHPUT_TOL
    min_duration_s: float = DEFAULT_MIN_DURATION_S
    min_requests_per_replica: int = DEFAULT_MIN_REQUESTS_PER_REPLICA
    allow_rejections: bool = False

    def __post_init__(self) -> None:
        parse_slos(self.slos)  # fail at the boundary, before any worker starts
        if self.target_rate_per_s is not None and not self.target_rate_per_s > 0:
            raise KvsimError(f"--target-rate must be > 0 req/s, got {self.target_rate_per_s}")
        check_search(self.start_rate_per_s, self.rel_tol)  # once, before any candidate runs
        if not 0 < self.throughput_tol < 1:
            raise KvsimError(f"throughput_tol must be in (0, 1), got {self.throughput_tol}; 0.05 means 5 %")
        if isinstance(self.min_duration_s, bool) or not self.min_duration_s >= 0:
            raise KvsimError(f"--min-duration-s must be >= 0 seconds, got {self.min_duration_s!r}")
        if isinstance(self.min_requests_per_replica, bool) or not (
            isinstance(self.min_requests_per_replica, int) and self.min_requests_per_replica >= 0
        ):
            raise KvsimError(
                f"--min-requests-per-replica must be an integer >= 0, got {self.min_requests_per_replica!r}"
            )


def plan_candidate(
    fields: Mapping[str, Any], settings: PlanSettings, *, cost_model: CostModel | None = None
) -> dict[str, Any]:
    """Search one candidate; returns its row (without cost, which the caller adds) and its probe log.
    ``cost_model`` replaces the one the fields name (tests use ConstantCostModel)."""
    slos = parse_slos(settings.slos)
    source = load_source(fields)
    probes: list[dict[str, Any]] = []

    def evaluate(num_replicas: int, rate: float) -> Probe:
        probe = evaluate_at_rate(
            {**fields, "num_replicas": num_replicas},
            rate,
            slos,
            cost_model=cost_model,
            source=source,
            min_duration_s=settings.min_duration_s,
            min_requests_per_replica=settings.min_requests_per_replica,
            throughput_tol=settings.throughput_tol,
            growth_per_s=settings.growth_per_s,
            min_growth_s=settings.min_growth_s,
            allow_rejections=settings.allow_rejections,
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
        why = (
            f" (at {lowest.rate_per_s:.4g} req/s: {'; '.join(lowest.reasons)})"
            if lowest and lowest.reasons
            else ""
        )
        row.update(num_replicas=None, feasible=False, note=f"one replica fails at every rate tried{why}")
        return {"row": row, "probes": probes}
    estimate = max(1, math.ceil(target / search.max_rate_per_s - 1e-9))
    tried = fewest_replicas(lambda n: evaluate(n, target), min(estimate, MAX_REPLICAS))
    runs = ", ".join(f"{n} {'pass' if p.ok else 'fail'}" for n, p in sorted(tried.items()))
    how = f"linear estimate {estimate}; simulated at {target:.4g} req/s: {runs}"
    passing = [n for n, p in sorted(tried.items()) if p.ok]
    if not passing:
        most = max(tried)
        row.update(
            num_replicas=None,
            feasible=False,
            note=f"{how}; {most} replicas still fail (the search stops at {MAX_REPLICAS}): "
            f"{'; '.join(tried[most].reasons)}",
        )
        return {"row": row, "probes": probes}
    num = passing[0]
    row.update({f"target_{k}": v for k, v in tried[num].metrics.items()})
    below = f"; {num - 1} fail: {'; '.join(tried[num - 1].reasons)}" if num > 1 else ""
    row.update(num_replicas=num, feasible=True, note=how + below)
    return {"row": row, "probes": probes}


def fewest_replicas(evaluate: Callable[[int], Probe], estimate: int) -> dict[int, Probe]:
    """Every count simulated, by count. Assumes that a count that passes has every larger count pass: from
    ``estimate``, step away (1, 2, 4, ... replicas) until the answer is bracketed, then bisect. When any
    count passes, the smallest passing one ``n`` is in the result, and so is ``n - 1`` (failing) unless
    ``n == 1``."""
    tried: dict[int, Probe] = {}

    def passes(n: int) -> bool:
        if n not in tried:
            tried[n] = evaluate(n)
        return tried[n].ok

    step = 1
    if passes(estimate):
        fail, ok = 0, estimate  # 0 replicas: fails by definition
        while ok > 1:
            n = max(1, ok - step)
            if not passes(n):
                fail = n
                break
            ok, step = n, step * 2
    else:
        fail, ok = estimate, None
        while fail < MAX_REPLICAS:
            n = min(MAX_REPLICAS, fail + step)
            if passes(n):
                ok = n
                break
            fail, step = n, step * 2
        if ok is None:
            return tried
    while ok - fail > 1:
        mid = (ok + fail) // 2
        if passes(mid):
            ok = mid
        else:
            fail = mid
    return tried


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
    term_values: Sequence[str | None] | None = None,
) -> list[dict[str, Any]]:
    """Every candidate's row, in grid order, with cost and its probe log (``probes``: every simulation run
    for it, in order); failed candidates carry their error. ``term_values``: per candidate (grid order), the
    uncertainty case its search runs at (``kvsim plan --uncertainty``'s corners); None: nominal."""
    from tqdm import tqdm

    if jobs < 1:
        raise KvsimError(f"--jobs must be at least 1, got {jobs}")

    settings_dict = {**asdict(settings), "slos": list(settings.slos)}
    tasks = []
    for index, point in enumerate(candidates.points()):
        config = {**base, **point, "plan": settings_dict}
        if term_values is not None and term_values[index] is not None:
            config["term_values"] = term_values[index]
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
            "label": _label(task.point, varied, fields),
            **task.point,
            "status": outcome["status"],
            "error": outcome["error"],
        }
        row.update(outcome["summary"] or {})
        probes_json = outcome["files"].get("probes.json")
        row["probes"] = json.loads(probes_json) if probes_json else []
        gpu, tp = str(fields.get("gpu", SimConfig.gpu)), int(fields.get("tp", SimConfig.tp))
        row.setdefault("model", str(fields.get("model", SimConfig.model)))
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


def _label(point: Mapping[str, Any], varied: Sequence[str], fields: Mapping[str, Any]) -> str:
    """The candidate's values of the dimensions that vary (all of them when none does; its allocator when it
    has no dimension, a lone candidate of the base settings)."""
    keys = [k for k in point if k in varied] or list(point)
    if not keys:
        return str(fields.get("allocator", SimConfig.allocator))
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
