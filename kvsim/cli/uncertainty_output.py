"""``--uncertainty`` for ``kvsim simulate``: the cases run, the intervals beside the table, the verdicts.

The nominal runs are the command's own (as fast as without the option); the cases run afterwards through the
sweep backends (``--jobs`` processes, or Ray with ``--ray-address``) and are kept in OUT/uncertainty/cases, so
an interrupted or repeated command finds the runs it already has.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path

from kvsim.simulator.out_folder import write_file_atomic, write_text_atomic
from kvsim.simulator.uncertainty.run import UncertaintyResult, run_uncertainty
from kvsim.simulator.uncertainty.terms import UncertainTerm
from kvsim.simulator.uncertainty.verdict import HEADLINE_METRICS

UNCERTAINTY_DIR = "uncertainty"  # inside --out: cases/, uncertainty.json, verdicts.csv
# How a metric's values print (the comparison table's formats)
_FORMATS = {"throughput_tok_s": ".1f"}


def run_for_simulate(
    results, fields: dict, workload_fields: dict, out: Path | None, *, jobs: int, ray_address: str | None
) -> UncertaintyResult:
    """The cases of a ``kvsim simulate`` comparison: ``results`` its nominal runs, ``fields`` the SimConfig
    fields they share (each run's allocator added), ``workload_fields`` the trace and workload keys."""
    configs, terms_by_label, nominal = {}, {}, {}
    for result in results:
        configs[result.label] = {**fields, **workload_fields, "allocator": result.config.allocator}
        declared = result.resolved["cost_model"].get("uncertain_terms", [])
        terms_by_label[result.label] = [UncertainTerm(**term) for term in declared]
        nominal[result.label] = result.summary
    seed = int(fields.get("seed") or 0)
    if out is None:  # nowhere to keep the cases: they run in a temporary folder (not resumable)
        with tempfile.TemporaryDirectory(prefix="kvsim-uncertainty-") as tmp:
            return run_uncertainty(
                configs,
                terms_by_label,
                Path(tmp),
                nominal=nominal,
                jobs=jobs,
                ray_address=ray_address,
                seed=seed,
            )
    folder = Path(out) / UNCERTAINTY_DIR
    result = run_uncertainty(
        configs,
        terms_by_label,
        folder,
        nominal=nominal,
        jobs=jobs,
        ray_address=ray_address,
        seed=seed,
        progress=sys.stderr.isatty(),
    )
    write_text_atomic(
        folder / "uncertainty.json",
        json.dumps(result.as_dict(), indent=1, sort_keys=True) + "\n",
        "uncertainty",
    )
    write_file_atomic(folder / "verdicts.csv", lambda p: _write_verdicts(result, p), "verdicts")
    return result


def _write_verdicts(result: UncertaintyResult, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(
            ["metric", "better", "worse", "num_holds", "num_cases", "robust", "decided_by", "verdict"]
        )
        for v in result.verdicts:
            writer.writerow(
                [
                    v.metric,
                    v.better,
                    v.worse,
                    v.num_holds,
                    v.num_cases,
                    v.robust,
                    v.decided_by or "",
                    v.sentence(),
                ]
            )


def _cell(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    return format(value, _FORMATS.get(metric, ".4f"))


def interval_table(result: UncertaintyResult) -> str:
    """Each headline metric's range across the cases, one column per configuration (``low..high``)."""
    header = ["under uncertainty (low..high)", *result.labels]
    rows = []
    for metric, (label, _, _) in HEADLINE_METRICS.items():
        cells = []
        for config in result.labels:
            iv = result.intervals[config][metric]
            cells.append(f"{_cell(iv.low, metric)}..{_cell(iv.high, metric)}")
        rows.append((label, cells))
    widths = [max(len(header[0]), *(len(name) for name, _ in rows))]
    for j in range(len(result.labels)):
        widths.append(max(len(header[j + 1]), *(len(cells[j]) for _, cells in rows)))
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    for name, cells in rows:
        lines.append("  ".join([name.ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells, widths[1:]))]))
    return "\n".join(lines)


def verdict_lines(result: UncertaintyResult) -> list[str]:
    """The terms and their ranking; per metric the differences that hold in every case, then each fragile
    difference in one line with the term that decides it."""
    num_cases = len(result.cases)
    ranked = ", ".join(term for term, effect in result.ranking if effect > 0)
    lines = [
        f"{num_cases} cases over {sum(t.uncertain for t in result.terms)} uncertain terms "
        f"(one at a time, then corners of the most influential: kvsim.simulator.uncertainty); "
        f"terms by their largest one-at-a-time effect on a headline metric: {ranked or 'none has any'}"
    ]
    robust = [v for v in result.verdicts if v.robust]
    fragile = [v for v in result.verdicts if not v.robust]
    lines.append(
        f"differences robust in every case: {len(robust)} of {len(result.verdicts)} (pairs within 1% at nominal: "
        "not judged)"
    )
    for metric, (label, _, higher) in HEADLINE_METRICS.items():
        pairs = [f"{v.better} {'>' if higher else '<'} {v.worse}" for v in robust if v.metric == metric]
        if pairs:
            lines.append(f"  robust, {label}: {', '.join(pairs)}")
    lines += [f"  fragile: {v.sentence()}" for v in fragile]
    lines += [f"  failed case: {failure}" for failure in result.failures]
    return lines
