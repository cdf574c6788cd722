"""Throughput and normalized latency against request rate, one line per configuration (vLLM paper Fig. 12 form).

Rows: one dict per sweep point (a plain list of dicts, or the rows of a CSV with these columns)::

    {"label": "paged:block_size=16", "request_rate_per_s": 2.0,
     "normalized_latency_s_per_token": 0.031,   # mean over finished requests (summary.json latency...mean)
     "throughput_requests_per_s": 1.98,
     "output_tokens_per_s": 650.0}              # optional

``kvsim sweep``'s ``results.csv`` has these columns; ``kvsim.reports.sweep.sweep_rows_from_runs`` builds the rows
from run folders. Points are drawn in rate order; a row whose latency is empty/None (nothing finished) is a gap in
that panel; a row without a rate (a failed sweep point, ``status=error``) is left out.
"""

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kvsim.errors import KvsimError
from kvsim.reports.palette import colour_for

REQUIRED = ("label", "request_rate_per_s", "normalized_latency_s_per_token", "throughput_requests_per_s")


def rate_sweep_figure(rows: list[dict]) -> go.Figure:
    """Left: mean normalized latency (s/token) vs rate; right: throughput (requests/s) vs rate."""
    if not rows:
        raise KvsimError("rate sweep: no rows; run `kvsim sweep` over a grid of rates first")
    for i, row in enumerate(rows):
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise KvsimError(
                f"rate sweep: row {i} lacks {', '.join(missing)}; each row needs {', '.join(REQUIRED)}"
            )
    rows = [r for r in rows if _number(r["request_rate_per_s"]) is not None and r.get("status") != "error"]
    if not rows:
        raise KvsimError(
            "rate sweep: no row has a request rate (every point failed?); see the sweep's error column"
        )
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=["Normalized latency", "Throughput"],
        horizontal_spacing=0.1,
    )
    labels = list(dict.fromkeys(r["label"] for r in rows))
    for label in labels:
        points = sorted(
            (r for r in rows if r["label"] == label), key=lambda r: float(r["request_rate_per_s"])
        )
        rate = [float(r["request_rate_per_s"]) for r in points]
        for col, key, unit, fmt in (
            (1, "normalized_latency_s_per_token", "s/token", ".4g"),
            (2, "throughput_requests_per_s", "requests/s", ".4g"),
        ):
            y = [_number(r.get(key)) for r in points]
            tokens = [_number(r.get("output_tokens_per_s")) for r in points]
            fig.add_trace(
                go.Scatter(
                    x=rate,
                    y=y,
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    showlegend=col == 1,
                    line={"color": colour_for(label)},
                    customdata=tokens,
                    hovertemplate=(
                        f"{label}<br>rate: %{{x:.4g}} requests/s<br>%{{y:{fmt}}} {unit}"
                        + ("<br>%{customdata:.4g} output tokens/s" if col == 2 else "")
                        + "<extra></extra>"
                    ),
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="Request rate (requests/s)")
    fig.update_yaxes(title_text="Mean normalized latency (s/token)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="Throughput (requests/s)", rangemode="tozero", row=1, col=2)
    fig.update_layout(title="Throughput and normalized latency against request rate")
    return fig


def _number(value) -> float | None:
    """A cell as float; ``None``, ``""`` and ``nan`` become ``None`` (a gap in the line)."""
    if value is None or value == "":
        return None
    value = float(value)
    return None if math.isnan(value) else value
