"""Headline metrics under the cost model's uncertainty: one panel per metric, each configuration's nominal value
with an error bar from the lowest to the highest value across the cases (``kvsim simulate --uncertainty``).

Input: ``{label: {metric: {"nominal", "low", "high"}}}`` (uncertainty.json's ``intervals``) and
``{metric: title}``, panels in that order.
"""

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kvsim.reports.palette import colour_for


def uncertainty_figure(intervals: dict[str, dict[str, dict]], metric_to_title: dict[str, str]) -> go.Figure:
    metrics = list(metric_to_title)
    cols = 2
    rows = math.ceil(len(metrics) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[metric_to_title[m] for m in metrics])
    labels = list(intervals)
    for i, metric in enumerate(metrics):
        row, col = i // cols + 1, i % cols + 1
        for label in labels:
            iv = intervals[label].get(metric) or {}
            nominal, low, high = iv.get("nominal"), iv.get("low"), iv.get("high")
            if nominal is None or low is None or high is None:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[label],
                    y=[nominal],
                    mode="markers",
                    marker={"color": colour_for(label), "size": 9},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [high - nominal],
                        "arrayminus": [nominal - low],
                    },
                    name=label,
                    legendgroup=label,
                    showlegend=i == 0,
                    hovertemplate=f"{label}<br>nominal %{{y:.4g}}<br>range {low:.4g} to {high:.4g}<extra></extra>",
                ),
                row=row,
                col=col,
            )
        fig.update_xaxes(showticklabels=False, row=row, col=col)
    fig.update_layout(
        title="Headline metrics under the cost model's uncertainty (marker: nominal; bar: range over the cases)",
        height=280 * rows,
    )
    return fig
