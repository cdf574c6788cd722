"""Calibration quality: measured against predicted latency per op, held-out points marked, MAPE shown.

Rows: one dict per measured point (a plain list of dicts, or the rows of a CSV with these columns)::

    {"op": "decode_attention_paged", "measured_s": 1.2e-4, "predicted_s": 1.25e-4, "held_out": True}

``held_out`` is true for points the fit did not see (the random or extrapolation split of issue 5); the MAPE in
each panel title is computed here from those points only, ``mean(|predicted - measured| / measured)``, never
in-sample. Panels are log-log with the y = x line; one panel per op, in first-seen order.
"""

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kvsim.errors import KvsimError

FIT_COLOUR = "#4c72b0"
HELD_OUT_COLOUR = "#c44e52"
MAX_COLS = 3


def held_out_mape(rows: list[dict]) -> float | None:
    """Mean absolute percentage error (%) over held-out rows; None when there are none."""
    points = [(float(r["measured_s"]), float(r["predicted_s"])) for r in rows if _truthy(r["held_out"])]
    if not points:
        return None
    measured, predicted = np.array(points).T
    return float(100.0 * np.mean(np.abs(predicted - measured) / measured))


def calibration_figure(rows: list[dict], *, quality_by_op: dict[str, str] | None = None) -> go.Figure:
    """One log-log panel per op: fit points and held-out points, MAPE (held-out) in the panel title.

    ``quality_by_op`` replaces the computed MAPE in an op's title with the quality calibration recorded (e.g. a
    profile's held-out MAPE when every point given here was in the final fit)."""
    if not rows:
        raise KvsimError("calibration: no rows; pass the measurements of a profile (kvsim calibrate)")
    for i, row in enumerate(rows):
        missing = [k for k in ("op", "measured_s", "predicted_s", "held_out") if k not in row]
        if missing:
            raise KvsimError(f"calibration: row {i} lacks {', '.join(missing)}")
        if float(row["measured_s"]) <= 0:
            raise KvsimError(
                f"calibration: row {i} ({row['op']}) has measured_s <= 0; a latency must be positive"
            )
    ops = list(dict.fromkeys(r["op"] for r in rows))
    cols = min(MAX_COLS, len(ops))
    nrows = math.ceil(len(ops) / cols)
    titles = []
    for op in ops:
        if quality_by_op and op in quality_by_op:
            titles.append(f"{op}<br>{quality_by_op[op]}")
            continue
        mape = held_out_mape([r for r in rows if r["op"] == op])
        titles.append(
            f"{op}<br>held-out MAPE {mape:.2f}%" if mape is not None else f"{op}<br>no held-out points"
        )
    fig = make_subplots(
        rows=nrows, cols=cols, subplot_titles=titles, vertical_spacing=0.18 / max(1, nrows - 1) + 0.08
    )
    for k, op in enumerate(ops):
        r, c = k // cols + 1, k % cols + 1
        op_rows = [x for x in rows if x["op"] == op]
        values = [float(x[key]) for x in op_rows for key in ("measured_s", "predicted_s")]
        lo, hi = min(values), max(values)
        fig.add_trace(
            go.Scatter(
                x=[lo, hi],
                y=[lo, hi],
                mode="lines",
                line={"color": "#999999", "dash": "dash"},
                name="predicted = measured",
                legendgroup="ideal",
                showlegend=k == 0,
                hoverinfo="skip",
            ),
            row=r,
            col=c,
        )
        for held_out, name, colour, symbol in (
            (False, "in the fit", FIT_COLOUR, "circle"),
            (True, "held out", HELD_OUT_COLOUR, "x"),
        ):
            points = [x for x in op_rows if _truthy(x["held_out"]) == held_out]
            measured = [float(x["measured_s"]) for x in points]
            predicted = [float(x["predicted_s"]) for x in points]
            fig.add_trace(
                go.Scatter(
                    x=measured,
                    y=predicted,
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=k == 0,
                    marker={"color": colour, "symbol": symbol, "size": 7},
                    customdata=[100.0 * (p - m) / m for m, p in zip(measured, predicted)],
                    hovertemplate=(
                        f"{op} ({name})<br>measured: %{{x:.4g}} s<br>predicted: %{{y:.4g}} s"
                        "<br>error: %{customdata:+.2f}%<extra></extra>"
                    ),
                ),
                row=r,
                col=c,
            )
        fig.update_xaxes(type="log", title_text="Measured (s)", row=r, col=c)
        fig.update_yaxes(type="log", title_text="Predicted (s)", row=r, col=c)
    fig.update_layout(
        title="Cost model calibration: predicted against measured latency", height=max(420, 360 * nrows)
    )
    return fig


def _truthy(value) -> bool:
    """CSV cells arrive as text: 'True'/'true'/'1' are held out, 'False'/'false'/'0'/'' are not."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)
