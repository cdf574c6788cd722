"""``kvsim simulate --uncertainty``'s verdicts in the report: read ``OUT/uncertainty/uncertainty.json`` beside the
run folders, an error-bar figure of the headline metrics and a table that marks each difference robust or
fragile (with the term that decides a fragile one)."""

import json
from pathlib import Path

from kvsim.reports.page import table_html

UNCERTAINTY_FILE = Path("uncertainty") / "uncertainty.json"
# metric key in uncertainty.json -> (panel and table title, higher is better)
METRICS = {
    "throughput_tok_s": ("Output tokens/s", True),
    "ttft_p50_s": ("TTFT p50 (s)", False),
    "ttft_p99_s": ("TTFT p99 (s)", False),
    "tpot_p50_s": ("TPOT p50 (s)", False),
    "tpot_p99_s": ("TPOT p99 (s)", False),
    "e2e_p50_s": ("End-to-end p50 (s)", False),
    "e2e_p99_s": ("End-to-end p99 (s)", False),
}
HEADER = ["Metric", "Difference (nominal)", "Holds in", "Verdict", "Decided by"]


def read_uncertainty(run_dirs: list[Path], labels: list[str]) -> dict | None:
    """The verdicts of the runs' ``--out`` folder when every run folder sits in one and its verdicts are about
    exactly these labels; None otherwise (no --uncertainty, or runs from several studies)."""
    parents = {Path(d).resolve().parent for d in run_dirs}
    if len(parents) != 1:
        return None
    path = next(iter(parents)) / UNCERTAINTY_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if sorted(doc.get("intervals", {})) != sorted(labels):
        return None
    return doc


def verdict_rows(doc: dict) -> list[list]:
    rows = []
    for v in doc["verdicts"]:
        title, higher = METRICS.get(v["metric"], (v["metric"], False))
        rows.append(
            [
                title,
                f"{v['better']} {'>' if higher else '<'} {v['worse']}",
                f"{v['num_holds']} of {v['num_cases']} cases",
                "robust" if v["robust"] else "fragile",
                v["decided_by"] or "",
            ]
        )
    rows.sort(
        key=lambda r: (r[3] == "robust", r[0])
    )  # fragile first: what the reader must not take as a finding
    return rows


def uncertainty_html(doc: dict) -> str:
    """The verdict table with its heading and a line on the terms."""
    terms = ", ".join(f"{t['name']} ({t['kind']})" for t in doc["terms"] if t["high"] > t["low"])
    ranking = ", ".join(s["term"] for s in doc["sensitivity"] if s["largest_relative_effect"] > 0)
    intro = (
        f"<h2>Under the cost model's uncertainty</h2><p>{len(doc['cases'])} cases over the uncertain terms {terms}; "
        f"by one-at-a-time effect: {ranking}. A difference is robust when it holds in every case, fragile "
        "otherwise; the term named decides it.</p>"
    )
    return intro + table_html(HEADER, verdict_rows(doc), table_id="uncertainty")
