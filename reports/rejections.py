"""Rejected requests by reason, across the runs of a report: ``summary.json``'s ``rejected_by_reason``.

Two forms are read. Current: reason template -> ``{"count": requests, "values": [{"min": .., "max": ..}, ...]}``,
the template's numbers written ``{0}``, ``{1}``, ... and their range over the rejected requests beside it.
Older folders: reason with its numbers written ``N`` -> count. Runs whose reason and count are the same share one
row (a side-by-side comparison usually rejects the same requests for the same reason in every configuration).
"""

import re

from kvsim.reports.runs import RunResult

HEADER = ["Configurations", "Requests", "Reason"]
_PLACEHOLDER = re.compile(r"\{(\d+)\}")


def render_reason(template: str, values: list[dict]) -> str:
    """``"prompt {0} tokens"`` with ``[{"min": 5000, "max": 9000}]`` -> ``"prompt 5000..9000 tokens"``; a
    placeholder without a value stays as it is."""

    def value(match: re.Match) -> str:
        i = int(match.group(1))
        if i >= len(values) or not isinstance(values[i], dict):
            return match.group()
        low, high = values[i].get("min"), values[i].get("max")
        return f"{low}" if low == high else f"{low}..{high}"

    return _PLACEHOLDER.sub(value, template)


def reason_and_count(key: str, entry) -> tuple[str, int | None]:
    """One ``rejected_by_reason`` entry, in either form, as (reason in words, number of requests)."""
    if isinstance(entry, dict):
        return render_reason(key, entry.get("values") or []), entry.get("count")
    return key, entry


def rejection_rows(runs: list[RunResult]) -> list[list]:
    """Rows of ``HEADER``: the configurations (``all N`` when every run of several), the requests, the
    reason; in the order of the runs, then of their reasons."""
    label_groups: dict[tuple[str, int | None], list[str]] = {}
    for run in runs:
        for key, entry in (run.summary.get("rejected_by_reason") or {}).items():
            label_groups.setdefault(reason_and_count(key, entry), []).append(run.label)
    rows = []
    for (reason, count), labels in label_groups.items():
        who = f"all {len(runs)}" if len(runs) > 1 and len(labels) == len(runs) else labels
        rows.append([who, count, reason])
    return rows
