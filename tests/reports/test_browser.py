"""A generated report in a real headless Chromium: no console errors, every figure drawn, the table there.

Drives Debian's chromium (/usr/bin/chromium; CI installs it) through Playwright's Python client, without
Playwright's own browser download. Skipped, with the reason, only when no chromium binary is found.
"""

import shutil
from pathlib import Path

import pytest

from kvsim.reports import write_report

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium binary (apt-get install chromium; CI installs it)"
    ),
]


def open_report(html_path: Path, screenshot_path: Path) -> dict:
    """Load the report offline, wait for plotly to draw, screenshot the page; return what the page shows."""
    try:
        from playwright import sync_api
    except ImportError:  # chromium is here, so the test must run: a missing client is a failure, not a skip
        pytest.fail("chromium is installed but playwright is not: pip install -e '.[test]'")
    messages: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on(
                "console", lambda m: messages.append(f"{m.type}: {m.text}") if m.type == "error" else None
            )
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            page.on(
                "request", lambda r: None if r.url.startswith(("file:", "data:")) else messages.append(r.url)
            )
            page.goto(html_path.resolve().as_uri(), wait_until="load")
            page.wait_for_function(
                "Array.from(document.querySelectorAll('.plotly-graph-div'))"
                ".every(d => d.classList.contains('js-plotly-plot') && d.querySelector('.main-svg'))",
                timeout=30_000,
            )
            shown = page.evaluate(
                """() => ({
                    containers: document.querySelectorAll('.plotly-graph-div').length,
                    traces_per_figure: Array.from(document.querySelectorAll('.js-plotly-plot'))
                        .map(d => d.querySelectorAll('.trace').length),
                    summary_rows: document.querySelectorAll('#summary tbody tr').length,
                    summary_header: Array.from(document.querySelectorAll('#summary th')).map(th => th.textContent),
                })"""
            )
            # hover the first bar of the first figure: plotly draws its hover label with the exact values
            bar = page.locator("#figure-1 .trace.bars .point path").first.bounding_box()
            page.mouse.move(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
            page.wait_for_selector("#figure-1 .hoverlayer .hovertext", timeout=5_000)
            shown["hover_text"] = page.locator("#figure-1 .hoverlayer .hovertext").first.text_content()
            page.screenshot(path=str(screenshot_path), full_page=True)
        finally:
            browser.close()
    return {**shown, "messages": messages}


def test_report_renders_every_figure_in_chromium_without_errors(make_run, tmp_path):
    runs = [
        make_run("paged", label="paged:block_size=16"),
        make_run("max", label="reserved:max", seed=1, saturated=False),
        make_run("va", label="vattention", seed=2, num_replicas=2, num_timeline_rows=5000),
    ]
    html_path = write_report(runs, tmp_path / "report.html")
    shown = open_report(html_path, tmp_path / "report.png")

    assert shown["messages"] == []  # no console errors, no network requests
    assert shown["containers"] == 2 + 3  # breakdown, CDFs, one timeline per run
    # drawn traces per figure: 5 parts × 2 panels; 3 configs × 4 CDFs; 5 parts + queue + batch per timeline
    assert shown["traces_per_figure"] == [10, 12, 7, 7, 7]
    assert shown["summary_rows"] == 3
    # the first bar: token states of the first run, whole run; the fixture sets 55% of 12 GiB
    assert (
        shown["hover_text"]
        == "paged:block_size=16Token states: 55.00% of capacity6.600 GiB (7,086,696,038 bytes)"
    )
    assert "Cost model" in shown["summary_header"]
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_simulate_with_report_renders_in_chromium(tmp_path):
    """The issue's bar: `kvsim simulate ... --report` on a real (small) run gives a report that renders."""
    from click.testing import CliRunner

    from kvsim.cli import main

    args = [
        "simulate",
        "--trace",
        "azure-conv",
        "--num-requests",
        "40",
        "--model",
        "opt-13b",
        "--gpu",
        "a100-40gb",
        "--allocator",
        "paged",
        "--allocator",
        "reserved:max",
        "--out",
        str(tmp_path / "runs"),
        "--report",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    shown = open_report(tmp_path / "runs" / "report.html", tmp_path / "simulate-report.png")

    assert shown["messages"] == []
    assert shown["containers"] == 2 + 2
    assert shown["traces_per_figure"][:2] == [10, 8]  # 5 parts × 2 windows; 2 configs × 4 CDFs
    assert all(n >= 7 for n in shown["traces_per_figure"][2:])  # 5 parts + queue + batch (+ cached line)
    assert shown["summary_rows"] == 2


def test_the_summary_table_scrolls_inside_its_box_and_the_page_fits_1400_px(make_run, tmp_path):
    """Issue 19: the table was wider than the page (columns clipped at 1400 px). Now the page never scrolls
    sideways; a table wider than its box scrolls inside it, its first column kept in view."""
    import json

    from playwright import sync_api

    runs = []
    for i, label in enumerate(
        ["paged:block_size=16,enable_prefix_caching=true", "reserved:max", "vattention"]
    ):
        run = make_run(f"r{i}", label=label, seed=i)
        summary = json.loads((run / "summary.json").read_text())
        summary["allocator_stats"] = {"num_pages_mapped": 128512, "map_s": 5.14048, "map_charged_s": 0.0585}
        summary["kv_evicted_fraction"] = {"mean": 0.31}
        summary["prefix_cache"] = {"hit_rate_tokens": 0.25, "hit_rate_blocks": 0.2, "num_evicted_blocks": 7}
        (run / "summary.json").write_text(json.dumps(summary))
        runs.append(run)
    html_path = write_report(runs, tmp_path / "report.html")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(html_path.resolve().as_uri(), wait_until="load")
            shown = page.evaluate(
                """() => {
                    const box = document.querySelector('#summary').parentElement;
                    box.scrollLeft = box.scrollWidth;  // scrolled to the last column
                    const first = document.querySelector('#summary tbody td').getBoundingClientRect();
                    return {
                        page_width: document.documentElement.scrollWidth,
                        box_overflow: getComputedStyle(box).overflowX,
                        box_right: box.getBoundingClientRect().right,
                        first_left: first.left,
                        box_left: box.getBoundingClientRect().left,
                    };
                }"""
            )
        finally:
            browser.close()
    assert shown["page_width"] <= 1400
    assert shown["box_overflow"] == "auto" and shown["box_right"] <= 1400
    assert abs(shown["first_left"] - shown["box_left"]) < 2  # the configuration column stays in view
