"""Run a comparison's uncertainty cases through the sweep backends and judge it (issue 23).

``run_uncertainty`` reruns every configuration under each case of ``cases`` (one term at a time first, then
the corners the ranking picks), on this process, a local process pool or a Ray cluster (``sweep.backends``),
and keeps each finished run in ``OUT/cases/<point id>.json``: a rerun finds the runs it already has
(resumable), since a point id hashes the configuration, the workload and the case's values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvsim.errors import KvsimError
from kvsim.simulator.out_folder import os_errors_named, write_text_atomic
from kvsim.simulator.sweep.backends import PointRunner, PointTask, execute
from kvsim.simulator.sweep.grid import point_id
from kvsim.simulator.uncertainty import cases as case_design
from kvsim.simulator.uncertainty.cases import NOMINAL, Case
from kvsim.simulator.uncertainty.terms import UncertainTerm
from kvsim.simulator.uncertainty.verdict import (
    HEADLINE_METRICS,
    Interval,
    PairVerdict,
    interval,
    metric_values,
    pair_verdict,
    sensitivity_ranking,
)


def case_point(fields: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """The point runner of a case: one simulation without a timeline, its headline metrics (nothing written:
    the case's record holds what the verdicts need)."""
    from kvsim.simulator.run import simulate
    from kvsim.simulator.sweep.point import split_fields

    config, workload = split_fields(fields)
    summary = simulate(config, workload.load(), keep_timeline=False).summary
    return {"metrics": metric_values(summary), "num_finished": summary.get("num_finished")}


@dataclass(frozen=True)
class UncertaintyResult:
    labels: list[str]
    terms: list[UncertainTerm]
    cases: list[Case]
    # metric -> case name -> label -> value
    values: dict[str, dict[str, dict[str, float | None]]]
    intervals: dict[str, dict[str, Interval]]  # label -> metric -> interval
    verdicts: list[PairVerdict]
    ranking: list[tuple[str, float]]  # (term, largest relative one-at-a-time effect)
    failures: list[str]  # "case / label: error"
    num_run: int  # runs done now (the others were found in OUT/cases)

    def as_dict(self) -> dict:
        return {
            "terms": [t.as_dict() for t in self.terms],
            "cases": [c.as_dict() for c in self.cases],
            "sensitivity": [{"term": t, "largest_relative_effect": e} for t, e in self.ranking],
            "intervals": {
                label: {m: vars(iv) for m, iv in per_metric.items()}
                for label, per_metric in self.intervals.items()
            },
            "verdicts": [v.as_dict() for v in self.verdicts],
            "values": self.values,
            "failures": self.failures,
        }


def run_uncertainty(
    configs: dict[str, dict[str, Any]],
    terms_by_label: dict[str, list[UncertainTerm]],
    out_dir: Path,
    *,
    nominal: dict[str, dict] | None = None,
    jobs: int = 1,
    ray_address: str | None = None,
    seed: int = 0,
    corners_k: int = case_design.CORNERS_K,
    num_samples: int = case_design.NUM_SAMPLES,
    runner: PointRunner = case_point,
    progress: bool = False,
) -> UncertaintyResult:
    """Judge the comparison of ``configs`` (label -> point fields: SimConfig and workload fields) under the
    uncertain terms each declares (``terms_by_label``). ``nominal``: label -> summary of the nominal runs
    already made (else they run as a case too)."""
    if jobs < 1:
        raise KvsimError(f"--jobs must be at least 1, got {jobs}")
    if corners_k < 0 or num_samples < 0:
        raise KvsimError("uncertainty corners and samples must be >= 0")
    terms = _union(terms_by_label)
    uncertain = [t for t in terms if t.uncertain]
    cases_dir = Path(out_dir) / "cases"
    with os_errors_named(cases_dir, "uncertainty folder"):
        cases_dir.mkdir(parents=True, exist_ok=True)
    records: dict[tuple[str, str], dict] = {}  # (case name, label) -> outcome record
    if nominal is not None:
        for label, summary in nominal.items():
            records[("nominal", label)] = {"status": "ok", "summary": {"metrics": metric_values(summary)}}
    first = case_design.one_at_a_time(uncertain)
    if nominal is None:
        first = [NOMINAL, *first]
    num_run = _run_cases(
        first, configs, terms_by_label, cases_dir, records, jobs, ray_address, runner, progress
    )
    oat = {c.name: (c.term, c.end) for c in first if c.kind == "one-at-a-time"}
    values = _values([NOMINAL, *first], configs, records)
    ranking = sensitivity_ranking(values, oat)
    second = case_design.second_stage(
        uncertain, [t for t, _ in ranking], k=corners_k, num_samples=num_samples, seed=seed
    )
    num_run += _run_cases(
        second, configs, terms_by_label, cases_dir, records, jobs, ray_address, runner, progress
    )
    all_cases = [NOMINAL, *[c for c in first if c.kind != "nominal"], *second]
    values = _values(all_cases, configs, records)
    labels = list(configs)
    intervals = {
        label: {
            metric: interval(
                [per_case[c.name].get(label) for c in all_cases[1:]], per_case["nominal"].get(label)
            )
            for metric, per_case in values.items()
        }
        for label in labels
    }
    verdicts = []
    for metric in HEADLINE_METRICS:
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                verdict = pair_verdict(metric, a, b, values[metric], oat)
                if verdict is not None:
                    verdicts.append(verdict)
    failures = [
        f"{case} / {label}: {rec.get('error')}"
        for (case, label), rec in records.items()
        if rec["status"] != "ok"
    ]
    return UncertaintyResult(
        labels, terms, all_cases, values, intervals, verdicts, ranking, failures, num_run
    )


def _union(terms_by_label: dict[str, list[UncertainTerm]]) -> list[UncertainTerm]:
    by_name: dict[str, UncertainTerm] = {}
    for terms in terms_by_label.values():
        for term in terms:
            known = by_name.setdefault(term.name, term)
            if (known.nominal, known.low, known.high) != (term.nominal, term.low, term.high):
                raise KvsimError(
                    f"uncertain term {term.name} differs between configurations ({known.describe()} against "
                    f"{term.describe()}): they do not model one system, so cases cannot be shared"
                )
    return list(by_name.values())


def _run_cases(
    cases, configs, terms_by_label, cases_dir, records, jobs, ray_address, runner, progress
) -> int:
    """Run (or find) every (case, configuration); fill ``records``; return how many ran now."""
    tasks: list[PointTask] = []
    pid_to_keys: dict[str, list[tuple[str, str]]] = {}
    for case in cases:
        for label, fields in configs.items():
            declared = {t.name for t in terms_by_label[label]}
            term_values = case.term_values(declared)
            if term_values is None and ("nominal", label) in records:  # nothing of this case applies to it
                records[(case.name, label)] = records[("nominal", label)]
                continue
            config = {**fields, "term_values": term_values}
            pid = point_id(config)
            done = _load(cases_dir / f"{pid}.json")
            if done is not None:
                records[(case.name, label)] = done
                continue
            if pid in pid_to_keys:  # the same run twice (a term this configuration does not have)
                pid_to_keys[pid].append((case.name, label))
                continue
            pid_to_keys[pid] = [(case.name, label)]
            tasks.append(PointTask(index=len(tasks), point_id=pid, point={"case": case.name}, config=config))
    from tqdm import tqdm

    with tqdm(total=len(tasks), disable=not progress or not tasks, desc="uncertainty", unit="run") as bar:
        for outcome in execute(tasks, runner, jobs=jobs, ray_address=ray_address):
            task = tasks[outcome["index"]]
            record = {
                "status": outcome["status"],
                "error": outcome["error"],
                "config": task.config,
                "case": task.point["case"],
                "summary": outcome["summary"],
            }
            if outcome["status"] == "ok":
                text = json.dumps(record, indent=1, sort_keys=True) + "\n"
                write_text_atomic(cases_dir / f"{task.point_id}.json", text, "uncertainty case")
            for key in pid_to_keys[task.point_id]:
                records[key] = record
            bar.update()
    return len(tasks)


def _load(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return record if record.get("status") == "ok" else None


def _values(cases, configs, records) -> dict[str, dict[str, dict[str, float | None]]]:
    values: dict[str, dict[str, dict[str, float | None]]] = {m: {} for m in HEADLINE_METRICS}
    for case in cases:
        for label in configs:
            record = records.get((case.name, label))
            metrics = (record or {}).get("summary") or {}
            metrics = metrics.get("metrics", {}) if record and record["status"] == "ok" else {}
            for metric in HEADLINE_METRICS:
                values[metric].setdefault(case.name, {})[label] = metrics.get(metric)
    return values
