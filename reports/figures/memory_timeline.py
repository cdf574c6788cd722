"""Memory timeline of one run: the five parts as a stacked area, queue length and batch size below it on a
shared time axis.

Input: the columns of ``timeline.csv`` (docs/outputs.md) as ``{column: sequence}``, at least ``time_s``, the five
memory parts (bytes), ``num_waiting`` and ``num_batched_seqs``; ``replica`` and ``cached_bytes`` are optional.
Replicas are summed. Long timelines are downsampled (``kvsim.reports.downsample``): memory parts by time-weighted
mean per bucket (the stack still sums to capacity), queue length and batch size by per-bucket maximum; the figure
says so in its title when it happens.
"""

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kvsim.errors import KvsimError
from kvsim.reports.downsample import downsample_timeline
from kvsim.reports.palette import MEMORY_PARTS, PART_TO_COLOUR, PART_TO_NAME, colour_for

GIB = 2**30
COUNT_COLUMNS = ["num_waiting", "num_batched_seqs"]


def memory_timeline_figure(timeline: dict, *, label: str, max_points: int = 2000) -> go.Figure:
    """Stacked memory parts (GiB) over time, with queue length and batch size on the same time axis."""
    required = ["time_s", *MEMORY_PARTS, *COUNT_COLUMNS]
    missing = [c for c in required if c not in timeline]
    if missing:
        raise KvsimError(f"memory timeline of {label}: missing column(s) {', '.join(missing)}")
    columns = {k: np.asarray(v, dtype=np.float64) for k, v in timeline.items() if k in [*required, "replica"]}
    has_cached = (
        "cached_bytes" in timeline and np.nanmax(np.asarray(timeline["cached_bytes"], float), initial=0) > 0
    )
    if has_cached:
        columns["cached_bytes"] = np.asarray(timeline["cached_bytes"], dtype=np.float64)
    if len(columns["time_s"]) == 0:
        raise KvsimError(f"memory timeline of {label}: the timeline has no rows")
    mean_columns = list(MEMORY_PARTS) + (["cached_bytes"] if has_cached else [])
    data = downsample_timeline(
        columns, mean_columns=mean_columns, max_columns=COUNT_COLUMNS, max_points=max_points
    )
    t = data["time_s"]
    num_replicas = len(np.unique(columns["replica"])) if "replica" in columns else 1

    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.6, 0.2, 0.2],
        vertical_spacing=0.04,
    )
    for part in MEMORY_PARTS:
        fig.add_trace(
            go.Scatter(
                x=t,
                y=data[part] / GIB,
                name=PART_TO_NAME[part],
                stackgroup="memory",
                line={"shape": "hv", "width": 0.5, "color": PART_TO_COLOUR[part]},
                fillcolor=PART_TO_COLOUR[part],
                customdata=data[part],
                hovertemplate=f"{PART_TO_NAME[part]}: %{{y:.3f}} GiB (%{{customdata:,.0f}} bytes)<extra></extra>",
            ),
            row=1,
            col=1,
        )
    if has_cached:
        fig.add_trace(
            go.Scatter(
                x=t,
                y=data["cached_bytes"] / GIB,
                name="Cached (counted in free)",
                line={"shape": "hv", "dash": "dot", "color": "#333333"},
                hovertemplate="Cached: %{y:.3f} GiB<extra></extra>",
            ),
            row=1,
            col=1,
        )
    peak = "max per bucket" if bool(data["downsampled"]) else "exact"
    for row, (column, name) in enumerate(
        [("num_waiting", "Queue length"), ("num_batched_seqs", "Batch size")], 2
    ):
        fig.add_trace(
            go.Scatter(
                x=t,
                y=data[column],
                name=name,
                line={"shape": "hv", "color": colour_for(label)},
                hovertemplate=f"{name}: %{{y:.0f}} requests ({peak})<extra></extra>",
                showlegend=False,
            ),
            row=row,
            col=1,
        )
    note = (
        f", {len(t)} buckets (memory: time-weighted mean; counts: max)" if bool(data["downsampled"]) else ""
    )
    summed = f", summed over {num_replicas} replicas" if num_replicas > 1 else ""
    fig.update_layout(
        title=f"Memory timeline: {label}{summed}{note}",
        hovermode="x unified",
        height=620,
    )
    fig.update_yaxes(title_text="KV memory (GiB)", row=1, col=1)
    fig.update_yaxes(title_text="Waiting<br>(requests)", rangemode="tozero", row=2, col=1)
    fig.update_yaxes(title_text="Batch size<br>(requests)", rangemode="tozero", row=3, col=1)
    fig.update_xaxes(title_text="Simulated time (s)", row=3, col=1)
    return fig
