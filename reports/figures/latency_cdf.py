"""Latency CDFs: TTFT, TPOT, end-to-end and normalized latency, one line per configuration.

Input: ``{label: columns}``, where columns are ``requests.csv``'s (docs/outputs.md) as ``{column: sequence}``; at
least ``ttft_s``, ``tpot_s``, ``e2e_s``, ``normalized_latency_s_per_token``. Empty cells (rejected requests,
single-token outputs) are ``nan`` and left out of that metric's CDF. Above ``max_points`` requests each line is
drawn through ``max_points`` evenly spaced quantiles (each an actual sample), so the shape and the tail stay exact
at those points.

Each panel's x axis starts linear, or logarithmic when the values span over two decades (``axis_type``): under
overload one saturated configuration's tail reaches 100× the others' medians and a linear axis squeezes every
other line against zero. Buttons switch all four axes between linear and log.
"""

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kvsim.errors import KvsimError
from kvsim.reports.palette import colour_for

# column -> panel title with unit
METRIC_TO_TITLE = {
    "ttft_s": "Time to first token (s)",
    "tpot_s": "Time per output token (s)",
    "e2e_s": "End-to-end latency (s)",
    "normalized_latency_s_per_token": "Normalized latency (s/token)",
}


def cdf_points(values, max_points: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(sorted values, cumulative fraction) of the finite values, at most ``max_points`` of them."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return x, x
    if n <= max_points:
        return x, np.arange(1, n + 1) / n
    ranks = np.unique(np.linspace(1, n, max_points).round().astype(int))  # 1-based ranks; first and last kept
    return x[ranks - 1], ranks / n


# A panel whose largest value is more than this many times the smallest median of a line is drawn on a log
# axis: on a linear one, that line's lower half would fit in the leftmost 1% of the panel.
LOG_SPREAD = 100.0


def axis_type(lines: list[np.ndarray]) -> str:
    """``log`` when the largest value over ``lines`` exceeds ``LOG_SPREAD`` × the smallest median of a line
    and every value is positive (a log axis cannot show zero); else ``linear``."""
    lines = [x for x in lines if len(x)]
    if not lines or min(float(x.min()) for x in lines) <= 0:
        return "linear"
    largest = max(float(x.max()) for x in lines)
    smallest_median = min(float(np.median(x)) for x in lines)
    return "log" if largest > LOG_SPREAD * smallest_median else "linear"


def latency_cdf_figure(requests_by_label: dict[str, dict], *, max_points: int = 1000) -> go.Figure:
    """A 2×2 grid of CDFs, one line per label, the same colour in every panel."""
    if not requests_by_label:
        raise KvsimError("latency CDF: no configurations given")
    fig = make_subplots(rows=2, cols=2, subplot_titles=list(METRIC_TO_TITLE.values()), vertical_spacing=0.14)
    metric_to_lines: dict[str, list[np.ndarray]] = {m: [] for m in METRIC_TO_TITLE}
    for label, columns in requests_by_label.items():
        missing = [m for m in METRIC_TO_TITLE if m not in columns]
        if missing:
            raise KvsimError(f"latency CDF of {label}: missing column(s) {', '.join(missing)}")
        for j, (metric, title) in enumerate(METRIC_TO_TITLE.items()):
            x, p = cdf_points(columns[metric], max_points)
            metric_to_lines[metric].append(x)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=p,
                    mode="lines",
                    name=label,
                    legendgroup=label,
                    showlegend=j == 0,
                    line={"color": colour_for(label), "shape": "hv"},
                    hovertemplate=f"{label}<br>{title}: %{{x:.6g}}<br>fraction ≤ x: %{{y:.4f}}<extra></extra>",
                ),
                row=j // 2 + 1,
                col=j % 2 + 1,
            )
    for j, (metric, title) in enumerate(METRIC_TO_TITLE.items()):
        scale = axis_type(metric_to_lines[metric])
        fig.update_xaxes(title_text=title, type=scale, row=j // 2 + 1, col=j % 2 + 1)
        fig.update_yaxes(title_text="Fraction of requests", range=[0, 1.02], row=j // 2 + 1, col=j % 2 + 1)
    # Tails span orders of magnitude under overload: let the reader switch every x axis to log and back.
    axes = ["xaxis", "xaxis2", "xaxis3", "xaxis4"]
    buttons = [
        {"label": f"{scale} x", "method": "relayout", "args": [{f"{a}.type": scale for a in axes}]}
        for scale in ("linear", "log")
    ]
    fig.update_layout(
        title="Latency distributions (CDF over finished requests)",
        height=700,
        updatemenus=[{"type": "buttons", "direction": "right", "x": 1.0, "y": 1.12, "buttons": buttons}],
    )
    return fig
