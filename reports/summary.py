"""The summary table of a simulation report: one row per run, from ``summary.json`` and ``config.json``."""

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
    "Allocator counters",  # summary.json's allocator_stats (e.g. contiguous-growth's copies), empty if none
]


SOURCE_TO_WORDS = {
    "measured": ("measured", "measured on a GPU (calibrated profile)"),
    "roofline": ("roofline, not measured", "roofline estimate from datasheet peaks, not measured"),
}


def cost_model_in_words(cost_model: dict | None, *, long: bool = False) -> str:
    """Where the step times came from, in words a reader cannot miss (DESIGN §5): short for a table cell,
    long (with the profile's description) for the line under the title."""
    cost_model = cost_model or {}
    source = cost_model.get("source")
    short_words, long_words = SOURCE_TO_WORDS.get(source, (f"unknown source ({source!r})",) * 2)
    if not long:
        return short_words
    description = cost_model.get("description") or ""
    return f"{long_words} ({description})" if description else long_words


def summary_row(run: RunResult) -> list:
    s, c = run.summary, run.config
    latency = s.get("latency", {})
    memory = s.get("memory", {})
    whole = memory.get("whole_run") or {}
    token_share = None
    if whole.get("token_states") is not None and memory.get("capacity_bytes"):
        token_share = 100.0 * float(whole["token_states"]) / float(memory["capacity_bytes"])
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
        allocator_counters(s.get("allocator_stats") or {}),
    ]


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100.0 * fraction


def allocator_counters(stats: dict) -> str:
    """``{"num_growth_copies": 3, "copy_s": 0.0012}`` -> ``"num_growth_copies 3, copy_s 0.0012"``."""
    return ", ".join(f"{k} {v if isinstance(v, int) else format(v, '.4g')}" for k, v in stats.items())


def _name(value) -> str | None:
    """A config entry as text: a name string as is, a section by its ``name`` field."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("name", value))
    return str(value)
