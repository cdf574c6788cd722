"""Memory breakdown per configuration as 100% stacked bars, whole run and saturated window (vLLM paper Fig. 2).

Rows: one dict per (configuration, window), e.g. from ``summary.json``'s ``memory`` (see ``breakdown_rows``)::

    {"label": "paged:block_size=16", "window": "whole_run" | "saturated", "capacity_bytes": 12e9,
     "token_states": ..., "reserved": ..., "internal_frag": ..., "external_frag": ..., "free": ...}

Parts are time-weighted mean bytes per GPU (DESIGN §3). A saturated row whose parts are ``None`` (the run never
waited for memory) is drawn as no bar, and the x label says "never saturated".
"""

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kvsim.errors import KvsimError
from kvsim.reports.palette import MEMORY_PARTS, PART_TO_COLOUR, PART_TO_NAME

WINDOW_TO_TITLE = {"whole_run": "Whole run", "saturated": "Saturated (a request waits for memory)"}
GIB = 2**30


def breakdown_rows(label: str, memory: dict) -> list[dict]:
    """``summary.json``'s ``memory`` section -> the two rows this figure takes."""
    return [
        {"label": label, "window": window, "capacity_bytes": memory["capacity_bytes"], **memory[window]}
        for window in WINDOW_TO_TITLE
        if window in memory
    ]


def memory_breakdown_figure(rows: list[dict]) -> go.Figure:
    """Stacked bars of the five parts in % of KV capacity: one bar per label, one panel per window."""
    windows = [w for w in WINDOW_TO_TITLE if any(r["window"] == w for r in rows)]
    if not windows:
        raise KvsimError("memory breakdown: no rows with window 'whole_run' or 'saturated'")
    labels = list(dict.fromkeys(r["label"] for r in rows))  # first-seen order
    fig = make_subplots(
        rows=1,
        cols=len(windows),
        shared_yaxes=True,
        subplot_titles=[WINDOW_TO_TITLE[w] for w in windows],
        horizontal_spacing=0.04,
    )
    for col, window in enumerate(windows, start=1):
        by_label = {r["label"]: r for r in rows if r["window"] == window}
        x = [_x_label(lbl, by_label.get(lbl)) for lbl in labels]
        for part in MEMORY_PARTS:
            bytes_ = [_part_bytes(by_label.get(lbl), part) for lbl in labels]
            caps = [float(by_label[lbl]["capacity_bytes"]) if lbl in by_label else None for lbl in labels]
            pct = [None if b is None else 100.0 * b / c for b, c in zip(bytes_, caps)]
            fig.add_trace(
                go.Bar(
                    x=x,
                    y=pct,
                    name=PART_TO_NAME[part],
                    legendgroup=part,
                    showlegend=col == 1,
                    marker_color=PART_TO_COLOUR[part],
                    text=[None if p is None else f"{p:.1f}%" for p in pct],
                    textposition="inside",
                    customdata=[[None if b is None else b / GIB, b] for b in bytes_],
                    hovertemplate=(
                        f"%{{x}}<br>{PART_TO_NAME[part]}: %{{y:.2f}}% of capacity"
                        "<br>%{customdata[0]:.3f} GiB (%{customdata[1]:,.0f} bytes)<extra></extra>"
                    ),
                ),
                row=1,
                col=col,
            )
    fig.update_layout(
        barmode="stack",
        title="KV memory breakdown (time-weighted mean, % of KV capacity per GPU)",
        legend_traceorder="normal",
        uniformtext={
            "minsize": 9,
            "mode": "hide",
        },  # no unreadable % labels in thin segments (hover has them)
    )
    fig.update_yaxes(title_text="Share of KV capacity (%)", range=[0, 100], row=1, col=1)
    fig.update_xaxes(title_text="Configuration")
    return fig


def _part_bytes(row: dict | None, part: str) -> float | None:
    if row is None or row.get(part) is None:
        return None
    return float(row[part])


def _x_label(label: str, row: dict | None) -> str:
    if row is None or all(row.get(p) is None for p in MEMORY_PARTS):
        return f"{label}<br>(never saturated)"
    return label
