"""Capacity planning: max sustainable request rate and cost per configuration (from ``kvsim plan``).

Rows: one dict per configuration (a plain list of dicts, or the rows of a CSV with these columns)::

    {"label": "paged:block_size=16 h100-sxm tp=1 x2",
     "max_sustainable_rate_per_s": 7.5,      # highest rate meeting the SLOs (None: not even the lowest rate)
     "cost_per_hour_usd": 8.0,               # optional: the GPUs that sustain that rate, per hour
     "num_gpus": 2}                           # optional: GPUs the plan needs for its target rate

The right panel shows the cost of serving one million requests at the max sustainable rate,
``cost_per_hour_usd / (rate × 3600) × 1e6``, which is what ranks configurations for a fixed load; the hover text
also gives the hourly cost. Bars keep the rows' order (a planner's ranked table).
"""

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kvsim.errors import KvsimError
from kvsim.reports.figures.rate_sweep import _number
from kvsim.reports.palette import colour_for


def cost_per_million_requests_usd(row: dict) -> float | None:
    rate = _number(row.get("max_sustainable_rate_per_s"))
    cost = _number(row.get("cost_per_hour_usd"))
    if rate is None or cost is None or rate <= 0:
        return None
    return cost / (rate * 3600.0) * 1e6


def capacity_figure(rows: list[dict]) -> go.Figure:
    """Left: max sustainable rate per configuration; right (when costs are given): USD per million requests."""
    if not rows:
        raise KvsimError("capacity: no rows; run `kvsim plan` first")
    for i, row in enumerate(rows):
        if "label" not in row or "max_sustainable_rate_per_s" not in row:
            raise KvsimError(f"capacity: row {i} needs 'label' and 'max_sustainable_rate_per_s'")
    has_cost = any(_number(r.get("cost_per_hour_usd")) is not None for r in rows)
    titles = (
        ["Max sustainable rate", "Cost per million requests at that rate"]
        if has_cost
        else ["Max sustainable rate"]
    )
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.12)
    labels = [r["label"] for r in rows]
    colours = [colour_for(lbl) for lbl in labels]
    custom = [
        [_number(r.get("cost_per_hour_usd")), _number(r.get("num_gpus")), cost_per_million_requests_usd(r)]
        for r in rows
    ]
    hover_extra = "<br>%{customdata[0]:$.2f}/hour" if has_cost else ""
    if any(c[1] is not None for c in custom):
        hover_extra += "<br>GPUs for the target rate: %{customdata[1]}"
    fig.add_trace(
        go.Bar(
            x=labels,
            y=[_number(r["max_sustainable_rate_per_s"]) for r in rows],
            marker_color=colours,
            customdata=custom,
            name="max rate",
            showlegend=False,
            hovertemplate="%{x}<br>max sustainable rate: %{y:.4g} requests/s"
            + hover_extra
            + "<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.update_yaxes(title_text="Max sustainable rate (requests/s)", row=1, col=1)
    if has_cost:
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[c[2] for c in custom],
                marker_color=colours,
                customdata=custom,
                name="cost",
                showlegend=False,
                hovertemplate="%{x}<br>%{y:$.4g} per million requests" + hover_extra + "<extra></extra>",
            ),
            row=1,
            col=2,
        )
        fig.update_yaxes(title_text="Cost (USD per million requests)", row=1, col=2)
    fig.update_xaxes(title_text="Configuration")
    fig.update_layout(title="Capacity planning under the SLOs")
    return fig
