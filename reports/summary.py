"""The summary table of a simulation report: one row per run, from ``summary.json`` and ``config.json``."""

import html

from kvsim.reports.glossary import COUNTER_TO_MEANING, HEADER_TO_HELP
from kvsim.reports.page import Html
from kvsim.reports.runs import RunResult

HEADER = [
    "Configuration",
    "Scheduler",
    "Model",
    "GPU",
    "Cost model",
    "Requests (finished / total)",
    "Rejected",
    "Throughput (requests/s)",
    "Output tokens/s",
    "TTFT p50 (s)",
    "TTFT p99 (s)",
    "TPOT p50 (s)",
    "Normalized latency mean (s/token)",
    "Token states (% of KV, whole run)",
    "Mean batch size (requests)",
    "KV evicted (mean % of context)",  # PagedEviction's kv_evicted_fraction; empty when nothing evicts
    "Prefix-cache hits (% of tokens)",  # summary.json's prefix_cache; empty without prefix caching
    "Prefix-cache hits (% of blocks)",
    "Cached blocks evicted",
    "Allocator counters",  # summary.json's allocator_stats (e.g. contiguous-growth's copies), empty if none
]
# Columns that only some allocators fill: left out of a table in which no run fills them.
OPTIONAL_COLUMNS = frozenset(HEADER[-5:])
# Columns that describe the system rather than the allocator: when every run has the same value, it is said
# once above the table instead of in every row (the table then fits a laptop screen).
SHARED_COLUMNS = ("Scheduler", "Model", "GPU")


SOURCE_TO_WORDS = {
    "measured": ("measured", "measured on a GPU (calibrated profile)"),
    "roofline": ("roofline, not measured", "roofline estimate from datasheet peaks, not measured"),
}


def cost_model_in_words(cost_model: dict | None, *, long: bool = False) -> str:
    """Where the step times came from, in words a reader cannot miss (DESIGN §5): short for a table cell,
    long (with the profile's description) for the line under the title. A roofline description that already
    says "not measured" stands alone (not "..., not measured (... (not measured))")."""
    cost_model = cost_model or {}
    source = cost_model.get("source")
    short_words, long_words = SOURCE_TO_WORDS.get(source, (f"unknown source ({source!r})",) * 2)
    if not long:
        return short_words
    description = cost_model.get("description") or ""
    if not description:
        return long_words
    if source == "roofline" and "not measured" in description:
        return description
    return f"{long_words} ({description})"


def summary_table(
    runs: list[RunResult], lead: tuple[str, list] | None = None
) -> tuple[list[str], list[list], dict[str, str]]:
    """(header, rows, shared) of the summary table: ``summary_row`` per run, without the optional columns that
    no run fills, and without the ``SHARED_COLUMNS`` whose value every run shares (returned as ``shared``:
    column -> value, for the line above the table); ``lead`` is an extra first column (header, one cell per
    run)."""
    rows = [summary_row(r) for r in runs]
    shared = {
        h: rows[0][i]
        for i, h in enumerate(HEADER)
        if h in SHARED_COLUMNS and rows[0][i] is not None and all(row[i] == rows[0][i] for row in rows)
    }
    keep = [
        i
        for i, h in enumerate(HEADER)
        if h not in shared and (h not in OPTIONAL_COLUMNS or any(_filled(row[i]) for row in rows))
    ]
    header = [HEADER[i] for i in keep]
    rows = [[row[i] for i in keep] for row in rows]
    if lead is not None:
        header = [lead[0], *header]
        rows = [[cell, *row] for cell, row in zip(lead[1], rows)]
    return header, rows, shared


def shared_in_words(shared: dict[str, str], num_runs: int) -> str:
    """``{"Scheduler": "vllm", "GPU": "a100-80gb"}`` -> ``"Scheduler vllm, GPU a100-80gb (every run)."``"""
    if not shared:
        return ""
    every = " (every run)" if num_runs > 1 else ""
    return ", ".join(f"{column} {value}" for column, value in shared.items()) + every + "."


def summary_row(run: RunResult) -> list:
    s, c = run.summary, run.config
    latency = s.get("latency", {})
    memory = s.get("memory", {})
    whole = memory.get("whole_run") or {}
    token_share = None
    if whole.get("token_states") is not None and memory.get("capacity_bytes"):
        token_share = 100.0 * float(whole["token_states"]) / float(memory["capacity_bytes"])
    prefix_cache = s.get("prefix_cache") or {}  # absent before prefix-cache summaries; None without caching
    return [
        run.label,
        _name(s.get("scheduler", c.get("scheduler"))),
        _name(c.get("model")),
        _name(c.get("gpu")),
        cost_model_in_words(s.get("cost_model") or c.get("cost_model")),
        f"{s.get('num_finished', '?')} / {s.get('num_requests', '?')}",
        s.get("num_rejected"),
        s.get("throughput", {}).get("requests_per_s"),
        s.get("throughput", {}).get("output_tokens_per_s"),
        latency.get("ttft_s", {}).get("p50"),
        latency.get("ttft_s", {}).get("p99"),
        latency.get("tpot_s", {}).get("p50"),
        latency.get("normalized_latency_s_per_token", {}).get("mean"),
        token_share,
        s.get("batch", {}).get("mean_num_seqs"),
        _percent((s.get("kv_evicted_fraction") or {}).get("mean")),
        _percent(prefix_cache.get("hit_rate_tokens")),
        _percent(prefix_cache.get("hit_rate_blocks")),
        prefix_cache.get("num_evicted_blocks"),
        allocator_counter_lines(s.get("allocator_stats") or {}),
    ]


def header_help(header: list[str]) -> dict[str, str]:
    return {h: HEADER_TO_HELP[h] for h in header if h in HEADER_TO_HELP}


def _filled(cell) -> bool:
    return cell not in (None, "", [], ())


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100.0 * fraction


def allocator_counters(stats: dict) -> str:
    """``{"num_growth_copies": 3, "copy_s": 0.0012}`` -> ``"num_growth_copies 3, copy_s 0.0012"``."""
    return ", ".join(f"{k} {_counter(v)}" for k, v in stats.items())


def allocator_counter_lines(stats: dict) -> list[Html]:
    """One line per counter, its name explained on hover (``glossary.COUNTER_TO_MEANING``)."""
    lines = []
    for k, v in stats.items():
        name = html.escape(k)
        if k in COUNTER_TO_MEANING:
            name = f'<span title="{html.escape(COUNTER_TO_MEANING[k])}">{name}</span>'
        lines.append(Html(f"{name} {html.escape(_counter(v))}"))
    return lines


def _counter(value) -> str:
    return str(value) if isinstance(value, int) else format(value, ".4g")


def _name(value) -> str | None:
    """A config entry as text: a name string as is, a section by its ``name`` field."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("name", value))
    return str(value)
