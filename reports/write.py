"""The public entry points: run folders, sweep rows or calibration rows in, one HTML report out.

``write_report`` is what ``kvsim simulate --report`` and ``kvsim report RUN_DIR...`` call. When several runs
share a label (a sweep folder: the same configuration at several rates) the report switches to the sweep form:
summary table plus throughput/latency against rate, without a timeline per point.
"""

import html
from collections import Counter
from pathlib import Path

from kvsim.errors import KvsimError
from kvsim.reports.figures import (
    calibration_figure,
    capacity_figure,
    latency_cdf_figure,
    memory_breakdown_figure,
    memory_timeline_figure,
    rate_sweep_figure,
)
from kvsim.reports.figures.calibration import held_out_mape
from kvsim.reports.figures.capacity import cost_per_million_requests_usd
from kvsim.reports.figures.memory_breakdown import breakdown_rows
from kvsim.reports.figures.uncertainty import uncertainty_figure
from kvsim.reports.glossary import COUNTER_TO_MEANING, HEADER_TO_HELP, REJECTED, SATURATED
from kvsim.reports.page import table_html, terms_html, write_page
from kvsim.reports.profile import (
    calibration_rows,
    measurements_beside,
    quality_in_words,
    quality_table,
    read_profile,
)
from kvsim.reports.rejections import HEADER as REJECTION_HEADER
from kvsim.reports.rejections import rejection_rows
from kvsim.reports.runs import RunResult, find_run_dirs, read_run, study_note
from kvsim.reports.summary import cost_model_in_words, header_help, shared_in_words, summary_table
from kvsim.reports.sweep import sweep_rows_from_runs
from kvsim.reports.uncertainty import METRICS as UNCERTAINTY_METRICS
from kvsim.reports.uncertainty import read_uncertainty, uncertainty_html

# A report with more runs than this shows one timeline per run only up to here (each is up to ~2000 points).
MAX_TIMELINES = 8


def write_report(run_dirs: list[Path], out_html: Path, *, title: str | None = None) -> Path:
    """Report on run folders (or folders holding run folders): summary table, memory breakdown, latency CDFs,
    memory timelines; or the sweep form when labels repeat. Returns ``out_html``."""
    runs = [read_run(d) for d in find_run_dirs(list(run_dirs))]
    if not runs:
        raise KvsimError("no run folders given; pass the --out folder of `kvsim simulate`")
    labels = [r.label for r in runs]
    if max(Counter(labels).values()) > 1:
        return _write_runs_as_sweep(runs, out_html, title=title)
    figures = [
        memory_breakdown_figure([row for r in runs for row in breakdown_rows(r.label, r.summary["memory"])]),
        latency_cdf_figure({r.label: r.requests for r in runs}),
    ]
    with_timeline = [r for r in runs if r.timeline is not None]
    figures += [memory_timeline_figure(r.timeline, label=r.label) for r in with_timeline[:MAX_TIMELINES]]
    note = study_note(runs) + _sources_note(runs)  # runs of other models, GPUs or traces: said first
    if len(with_timeline) > MAX_TIMELINES:
        note += f" Timelines shown for the first {MAX_TIMELINES} of {len(with_timeline)} runs."
    without = [r.label for r in runs if r.timeline is None]
    if without:
        note += f" No memory timeline for {', '.join(without)}: run with --no-timeline (summary and breakdown only)."
    header, rows, shared = summary_table(runs)
    table = _shared_line(shared, len(runs)) + table_html(header, rows, header_help=header_help(header))
    # kvsim simulate --uncertainty's verdicts, when the runs' --out folder has them
    judged = read_uncertainty(find_run_dirs(list(run_dirs)), labels)
    if judged is not None:
        table += uncertainty_html(judged)
        titles = {metric: title for metric, (title, _) in UNCERTAINTY_METRICS.items()}
        figures.insert(0, uncertainty_figure(judged["intervals"], titles))
    table += _explanations(runs, header)
    return write_page(
        out_html, title=title or "kvsim report: " + ", ".join(labels), note=note, table=table, figures=figures
    )


def _shared_line(shared: dict[str, str], num_runs: int) -> str:
    words = shared_in_words(shared, num_runs)
    return f'<p class="shared" id="shared">{html.escape(words)}</p>' if words else ""


def _explanations(runs: list[RunResult], header: list[str], *, saturated: bool = True) -> str:
    """Under the summary table: rejected requests by reason (when any), then the legend of the terms the
    table and figures use."""
    parts = []
    rows = rejection_rows(runs)
    if rows:
        parts.append("<h2>Rejected requests by reason</h2>")
        parts.append(table_html(REJECTION_HEADER, rows, table_id="rejections"))
    terms = {"Rejected": REJECTED}
    if saturated:
        terms["Saturated"] = SATURATED
    if "Prefix-cache hits (% of tokens)" in header:
        terms["Prefix-cache hits"] = HEADER_TO_HELP["Prefix-cache hits (% of tokens)"]
    counters = dict.fromkeys(k for r in runs for k in (r.summary.get("allocator_stats") or {}))
    terms.update({k: COUNTER_TO_MEANING[k] for k in counters if k in COUNTER_TO_MEANING})
    return "".join(parts) + terms_html(terms)


def write_sweep_report(
    rows: list[dict],
    out_html: Path,
    *,
    title: str | None = None,
    capacity_rows: list[dict] | None = None,
) -> Path:
    """Report on a sweep table (rows as in ``figures/rate_sweep.py``), optionally with ``kvsim plan``'s capacity
    rows (as in ``figures/capacity.py``)."""
    header = [
        "Configuration",
        "Request rate (requests/s)",
        "Throughput (requests/s)",
        "Output tokens/s",
        "Normalized latency mean (s/token)",
    ]
    keys = [
        "label",
        "request_rate_per_s",
        "throughput_requests_per_s",
        "output_tokens_per_s",
        "normalized_latency_s_per_token",
    ]
    table = table_html(header, [[_cell(r.get(k)) for k in keys] for r in rows])
    figures = [rate_sweep_figure(rows)]
    if capacity_rows:
        figures.append(capacity_figure(capacity_rows))
        cap_header = [
            "Configuration",
            "Max sustainable rate (requests/s)",
            "Cost (USD/hour)",
            "USD per million requests",
        ]
        cap = [
            [
                r["label"],
                _cell(r.get("max_sustainable_rate_per_s")),
                _cell(r.get("cost_per_hour_usd")),
                cost_per_million_requests_usd(r),
            ]
            for r in capacity_rows
        ]
        table += table_html(cap_header, cap, table_id="capacity")
    note = f"Sweep of {len(rows)} points over {len({r['label'] for r in rows})} configurations."
    return write_page(out_html, title=title or "kvsim sweep report", note=note, table=table, figures=figures)


def write_capacity_report(rows: list[dict], out_html: Path, *, title: str | None = None) -> Path:
    """Report on ``kvsim plan``'s table alone (rows as in ``figures/capacity.py``)."""
    header = [
        "Configuration",
        "Max sustainable rate (requests/s)",
        "Cost (USD/hour)",
        "GPUs",
        "USD per million requests",
    ]
    body = [
        [
            r["label"],
            _cell(r.get("max_sustainable_rate_per_s")),
            _cell(r.get("cost_per_hour_usd")),
            _cell(r.get("num_gpus")),
            cost_per_million_requests_usd(r),
        ]
        for r in rows
    ]
    note = f"Capacity plan over {len(rows)} configurations."
    return write_page(
        out_html,
        title=title or "kvsim capacity plan",
        note=note,
        table=table_html(header, body),
        figures=[capacity_figure(rows)],
    )


def write_profile_report(
    profile_path: Path, out_html: Path, *, measurements_path: Path | None = None, title: str | None = None
) -> Path:
    """Report on a calibration profile: per-term source and held-out quality, then measured against predicted
    for every measured point (from ``measurements_path``, default ``measurements-<gpu>.csv`` beside it)."""
    profile_path = Path(profile_path)
    profile = read_profile(profile_path)
    measurements_path = measurements_path or measurements_beside(profile_path)
    header, body = quality_table(profile)
    figures = []
    if measurements_path is not None:
        rows = calibration_rows(profile, Path(measurements_path))
        if rows:
            figures.append(calibration_figure(rows, quality_by_op=quality_in_words(profile)))
    device = ", ".join(f"{k}: {v}" for k, v in vars(profile.device).items() if v is not None)
    note = f"Source: {profile.source}. Device: {device}."
    if not profile.representative:
        note += " NOT REPRESENTATIVE (a CPU smoke run): these numbers exercise the pipeline and mean nothing."
    if measurements_path is None:
        note += " No measurements CSV beside the profile: quality table only."
    else:
        note += (
            f" Points: {measurements_path} against the shipped parameters, which were fitted on all points"
            " (in-sample); held-out quality as calibration recorded it."
        )
    return write_page(
        out_html,
        title=title or f"kvsim calibration profile: {profile.device.name}",
        note=note,
        table=table_html(header, body),
        figures=figures,
    )


def write_calibration_report(
    rows: list[dict],
    out_html: Path,
    *,
    title: str | None = None,
    device: dict | None = None,
) -> Path:
    """Report on calibration points (rows as in ``figures/calibration.py``); ``device`` is the profile's
    ``device`` section, shown above the table."""
    ops = list(dict.fromkeys(r["op"] for r in rows))
    header = ["Op", "Points", "Held-out points", "Held-out MAPE (%)"]
    body = []
    for op in ops:
        op_rows = [r for r in rows if r["op"] == op]
        num_held_out = sum(1 for r in op_rows if str(r["held_out"]).strip().lower() in ("true", "1", "yes"))
        body.append([op, len(op_rows), num_held_out, held_out_mape(op_rows)])
    device_words = ", ".join(f"{k}: {v}" for k, v in (device or {}).items()) or "device not given"
    note = f"Measured on {device_words}. MAPE over held-out points only (never in-sample)."
    figures = [calibration_figure(rows)]
    return write_page(
        out_html,
        title=title or "kvsim calibration report",
        note=note,
        table=table_html(header, body),
        figures=figures,
    )


def _write_runs_as_sweep(runs: list[RunResult], out_html: Path, *, title: str | None) -> Path:
    rows = sweep_rows_from_runs(runs)
    if not rows:
        raise KvsimError("sweep report: no run has a request rate (config trace rate or >= 2 arrivals)")
    rates = [row["request_rate_per_s"] for row in rows]
    header, body, shared = summary_table(runs, lead=("Request rate (requests/s)", rates))
    table = _shared_line(shared, len(runs)) + table_html(header, body, header_help=header_help(header))
    table += _explanations(runs, header, saturated=False)
    note = f"{len(runs)} runs of {len({r.label for r in runs})} configurations. "
    note += study_note(runs, workload=False) + _sources_note(runs)
    return write_page(
        out_html,
        title=title or "kvsim sweep report",
        note=note,
        table=table,
        figures=[rate_sweep_figure(rows)],
    )


def _sources_note(runs: list[RunResult]) -> str:
    sources = sorted(
        {
            cost_model_in_words(r.summary.get("cost_model") or r.config.get("cost_model"), long=True)
            for r in runs
        }
    )
    return "Step times: " + "; ".join(sources) + "."


def _cell(value):
    """CSV cells arrive as text: numbers back to float so the table formats them."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value or None
    return value
