"""One self-contained HTML page: title, summary table, then figures; plotly.js embedded once in the head.

Deterministic: figure containers get fixed ids (``figure-1``, ...), so the same inputs give the same file.
"""

import html
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from kvsim.errors import KvsimError

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem 2rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
p.note { color: #555; margin-top: 0; }
table.summary { border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0 2rem; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
table.summary th { background: #f2f2f2; }
table.summary td.num { text-align: right; font-variant-numeric: tabular-nums; }
section.figure { margin-bottom: 2rem; }
"""


def table_html(header: list[str], rows: list[list], *, table_id: str = "summary") -> str:
    """An HTML table; numbers right-aligned, every cell escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            is_num = isinstance(cell, int | float) and not isinstance(cell, bool)
            text = _format_cell(cell)
            cells.append(f'<td class="num">{text}</td>' if is_num else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="summary" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def write_page(
    out_html: Path,
    *,
    title: str,
    note: str,
    table: str,
    figures: list[go.Figure],
) -> Path:
    """Write the page; ``out_html``'s folder is created. Returns the path written."""
    out_html = Path(out_html)
    if out_html.exists() and out_html.is_dir():
        raise KvsimError(f"{out_html}: is a folder; pass a file name such as report.html to --out")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(note)}</p>',
        table,
    ]
    for i, fig in enumerate(figures, start=1):
        div = pio.to_html(
            fig,
            include_plotlyjs=False,
            full_html=False,
            div_id=f"figure-{i}",
            config=PLOTLY_CONFIG,
            default_height=fig.layout.height or 480,
        )
        parts.append(f'<section class="figure">{div}</section>')
    parts.append("</body></html>")
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text("\n".join(parts), encoding="utf-8")
    return out_html


def _format_cell(cell) -> str:
    if cell is None:
        return "—"
    if isinstance(cell, float):
        return f"{cell:.4g}"
    return html.escape(str(cell))
