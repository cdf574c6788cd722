"""Latency CDFs: TTFT, TPOT, end-to-end and normalized latency, one line per configuration.

Input: ``{label: columns}``, where columns are ``requests.csv``'s (docs/outputs.md) as ``{column: sequence}``; at
least ``ttft_s``, ``tpot_s``, ``e2e_s``, ``normalized_latency_s_per_token``. Empty cells (rejected requests,
single-token outputs) are ``nan`` and left out of that metric's CDF. Above ``max_points`` requests each line is
drawn through ``max_points`` evenly spaced quantiles (each an actual sample), so the shape and the tail stay exact
at those points.
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


def latency_cdf_figure(requests_by_label: dict[str, dict], *, max_points: int = 1000) -> go.Figure:
    """A 2×2 grid of CDFs, one line per label, the same colour in every panel."""
    if not requests_by_label:
        raise KvsimError("latency CDF: no configurations given")
    fig = make_subplots(rows=2, cols=2, subplot_titles=list(METRIC_TO_TITLE.values()), vertical_spacing=0.14)
    for label, columns in requests_by_label.items():
        missing = [m for m in METRIC_TO_TITLE if m not in columns]
        if missing:
            raise KvsimError(f"latency CDF of {label}: missing column(s) {', '.join(missing)}")
        for j, (metric, title) in enumerate(METRIC_TO_TITLE.items()):
            x, p = cdf_points(columns[metric], max_points)
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
    for j, title in enumerate(METRIC_TO_TITLE.values()):
        fig.update_xaxes(title_text=title, row=j // 2 + 1, col=j % 2 + 1)
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
