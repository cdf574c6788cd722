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
h2 { font-size: 1.1rem; margin: 1.5rem 0 0.3rem; }
p.note { color: #555; margin-top: 0; }
div.table-box { max-width: 100%; overflow-x: auto; margin: 1rem 0 1.5rem; }
table.summary { border-collapse: collapse; font-size: 0.85rem; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
table.summary th { background: #f2f2f2; vertical-align: bottom; min-width: 4.5rem; }
table.summary th[title] { text-decoration: underline dotted #888; cursor: help; }
table.summary td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.summary td.lines { white-space: nowrap; }
table#summary td { white-space: nowrap; }
p.shared { margin: 0.8rem 0 0; }
table.summary tr > :first-child { position: sticky; left: 0; background: #fff; white-space: nowrap; }
table.summary thead tr > :first-child { background: #f2f2f2; }
span[title] { text-decoration: underline dotted #888; cursor: help; }
dl.terms { font-size: 0.85rem; color: #333; margin: 0 0 2rem; max-width: 70rem; }
dl.terms dt { font-weight: 600; float: left; clear: left; margin-right: 0.5rem; }
dl.terms dd { margin: 0 0 0.3rem 0; }
section.figure { margin-bottom: 2rem; }
"""


class Html(str):
    """Cell text that is already HTML (escaped where it holds data): written as is, not escaped again."""


def table_html(
    header: list[str],
    rows: list[list],
    *,
    table_id: str = "summary",
    header_help: dict[str, str] | None = None,
) -> str:
    """An HTML table in a box that scrolls sideways when the table is wider than the page (the first column
    stays in view); numbers right-aligned, every cell escaped unless it is ``Html``; a list cell is one line per
    item. ``header_help`` gives a column's explanation, shown when the pointer rests on its header."""
    header_help = header_help or {}
    head = "".join(
        f'<th title="{html.escape(header_help[h])}">{html.escape(h)}</th>'
        if h in header_help
        else f"<th>{html.escape(h)}</th>"
        for h in header
    )
    body = []
    for row in rows:
        cells = []
        for cell in row:
            is_num = isinstance(cell, int | float) and not isinstance(cell, bool)
            if isinstance(cell, list | tuple):
                lines = "<br>".join(c if isinstance(c, Html) else html.escape(str(c)) for c in cell)
                cells.append(f'<td class="lines">{lines}</td>')
                continue
            text = _format_cell(cell)
            cells.append(f'<td class="num">{text}</td>' if is_num else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="table-box"><table class="summary" id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def terms_html(term_to_meaning: dict[str, str]) -> str:
    """A legend of the terms a report uses: term, then what it means."""
    if not term_to_meaning:
        return ""
    items = "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(meaning)}</dd>"
        for term, meaning in term_to_meaning.items()
    )
    return f'<h2>Terms</h2><dl class="terms" id="terms">{items}</dl>'


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
    if isinstance(cell, Html):
        return str(cell)
    if isinstance(cell, float):
        return f"{cell:.4g}"
    return html.escape(str(cell))
