"""Per-request and per-run metrics (DESIGN §6) from the recorder's columns: plain numbers, no plotting."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from kvsim.simulator.recorder import PARTS, PREFIX_CACHE_COUNTS, Recorder
from kvsim.traces.request import Trace

PERCENTILES = (50, 90, 99)


def request_metrics(trace: Trace, rec: Recorder) -> dict[str, np.ndarray]:
    """Columns [num_requests] of derived latencies (NaN where they do not exist)."""
    arrival = trace.arrival_s
    num_output = trace.num_output_tokens.astype(np.float64)
    e2e = rec.finish_s - arrival
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(num_output > 1, (rec.finish_s - rec.first_token_s) / (num_output - 1), np.nan)
    return {
        "ttft_s": rec.first_token_s - arrival,
        "tpot_s": tpot,
        "e2e_s": e2e,
        "normalized_latency_s_per_token": e2e / num_output,
        "queueing_delay_s": rec.first_scheduled_s - arrival,
    }


# A number in a rejection reason: standalone, not part of a name (``reserved:pow2``, ``block_size=16``,
# ``page_size=64KiB``, ``llama-2-7b``); a sentence's full stop after it is not a decimal point.
_NUMBER = re.compile(r"(?<![\w.=:+\-])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?!\w|\.\d)")
_PLACEHOLDER = re.compile(r"\{(\d+)\}")


def reason_template(reason: str) -> tuple[str, list[int | float]]:
    """A rejection reason as its template, with its numbers written ``{0}``, ``{1}``, ... in order, and those
    numbers: ``"prompt 4085 + output 62 tokens exceed max_model_len 4096"`` -> ``("prompt {0} + output {1}
    tokens exceed max_model_len {2}", [4085, 62, 4096])``."""
    values: list[int | float] = []

    def placeholder(match: re.Match) -> str:
        text = match.group()
        values.append(float(text) if any(c in text for c in ".eE") else int(text))
        return f"{{{len(values) - 1}}}"

    return _NUMBER.sub(placeholder, reason), values


def rejections_by_reason(reasons: Iterable[str]) -> dict[str, dict]:
    """``summary.json``'s ``rejected_by_reason``: template -> {``count``: requests, ``values``: per placeholder
    {``min``, ``max``} over them}, templates sorted. Reasons of one template have as many numbers each."""
    by_template: dict[str, dict] = {}
    for reason, count in Counter(reasons).items():  # each distinct reason parsed once
        template, values = reason_template(reason)
        entry = by_template.get(template)
        if entry is None:
            by_template[template] = {
                "count": count,
                "values": [{"min": v, "max": v} for v in values],
            }
            continue
        entry["count"] += count
        for bounds, v in zip(entry["values"], values):
            bounds["min"] = min(bounds["min"], v)
            bounds["max"] = max(bounds["max"], v)
    return dict(sorted(by_template.items()))


def render_reason(template: str, values: list[dict]) -> str:
    """A template with each placeholder written as its value, or its ``min..max`` when the values differ."""

    def value(match: re.Match) -> str:
        bounds = values[int(match.group(1))]
        low, high = bounds["min"], bounds["max"]
        return f"{low}" if low == high else f"{low}..{high}"

    return _PLACEHOLDER.sub(value, template)


def prefix_cache_summary(counts: Sequence[int] | None) -> dict | None:
    """``summary.json``'s ``prefix_cache``: the PREFIX_CACHE_COUNTS summed over replicas, and the hit rates
    (hits / queries, in tokens as vLLM v1's ``prefix_cache_hit_rate``, and in blocks as v0's; None when nothing
    was queried). None for a run without prefix caching."""
    if counts is None:
        return None
    summary = dict(zip(PREFIX_CACHE_COUNTS, map(int, counts), strict=True))
    for unit in ("tokens", "blocks"):
        queries = summary[f"num_query_{unit}"]
        summary[f"hit_rate_{unit}"] = summary[f"num_hit_{unit}"] / queries if queries else None
    return summary


def _stats(values: np.ndarray) -> dict[str, float | None]:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}, "max": None}
    pcts = np.percentile(values, PERCENTILES)
    return {
        "mean": float(values.mean()),
        **{f"p{p}": float(v) for p, v in zip(PERCENTILES, pcts)},
        "max": float(values.max()),
    }


def summarize(
    trace: Trace,
    rec: Recorder,
    *,
    label: str,
    allocator: str,
    scheduler: str,
    cost_source: str,
    cost_description: str,
    capacity_bytes: int,
    slo_ttft_s: float | None,
    slo_tpot_s: float | None,
    evicts: bool = False,
    allocator_stats: dict[str, int | float] | None = None,
    prefix_cache_counts: Sequence[int] | None = None,
) -> dict:
    """The ``summary.json`` mapping (docs/outputs.md). Deterministic: no wall-clock values."""
    metrics = request_metrics(trace, rec)
    finished = ~np.isnan(rec.finish_s)
    num_finished = int(finished.sum())
    first_arrival_s = float(trace.arrival_s[0])
    last_finish_s = float(rec.finish_s[finished].max()) if num_finished else first_arrival_s
    duration_s = last_finish_s - first_arrival_s
    per_s = (lambda x: x / duration_s) if duration_s > 0 else (lambda x: None)
    output_tokens = int(trace.num_output_tokens[finished].sum())
    total_tokens = output_tokens + int(trace.num_prompt_tokens[finished].sum())

    good = finished.copy()
    if slo_ttft_s is not None:
        good &= metrics["ttft_s"] <= slo_ttft_s
    if slo_tpot_s is not None:
        good &= np.isnan(metrics["tpot_s"]) | (metrics["tpot_s"] <= slo_tpot_s)
    num_good = int(good.sum())

    timelines = rec.timelines
    num_replicas = len(timelines)
    whole = [sum(tl.part_integrals[i] for tl in timelines) for i in range(len(PARTS))]
    saturated_s = sum(tl.saturated_s for tl in timelines)
    saturated = [sum(tl.saturated_integrals[i] for tl in timelines) for i in range(len(PARTS))]
    replica_s = duration_s * num_replicas
    busy_s = sum(tl.busy_s for tl in timelines)
    return {
        "label": label,
        "allocator": allocator,
        "scheduler": scheduler,
        "cost_model": {"source": cost_source, "description": cost_description},
        "num_requests": len(trace),
        "num_finished": num_finished,
        "num_rejected": len(rec.rejected_reason),
        "rejected_by_reason": rejections_by_reason(rec.rejected_reason.values()),
        "num_preemptions": int(rec.num_preemptions.sum()),
        "allocator_stats": dict(allocator_stats or {}),
        "prefix_cache": prefix_cache_summary(prefix_cache_counts),
        "duration_s": duration_s,
        "throughput": {
            "requests_per_s": per_s(num_finished),
            "output_tokens_per_s": per_s(output_tokens),
            "total_tokens_per_s": per_s(total_tokens),
        },
        "latency": {name: _stats(values) for name, values in metrics.items()},
        "goodput": {
            "slo": {"ttft_s": slo_ttft_s, "tpot_s": slo_tpot_s},
            "requests_per_s": per_s(num_good),
            "fraction": num_good / len(trace),
        },
        "memory": {
            "capacity_bytes": capacity_bytes,
            # Mean over the replicas' GPUs (one allocator per replica, per GPU of its TP group).
            "whole_run": {p: (v / replica_s if replica_s > 0 else None) for p, v in zip(PARTS, whole)},
            "saturated": {
                "duration_s": saturated_s / num_replicas,
                **{p: (v / saturated_s if saturated_s > 0 else None) for p, v in zip(PARTS, saturated)},
            },
            "peak_used_bytes": max(tl.peak_used_bytes for tl in timelines),
        },
        # PagedEviction: the share of each finished request's context evicted by its end (None: no eviction)
        "kv_evicted_fraction": _stats(rec.kv_evicted_fraction[finished]) if evicts else None,
        "batch": {
            "mean_num_seqs": (sum(tl.seq_integral for tl in timelines) / busy_s) if busy_s > 0 else None,
            "mean_num_seqs_per_step": (rec.num_batched_seqs / rec.num_steps) if rec.num_steps else None,
            "max_num_seqs": rec.max_num_seqs,
            "mean_num_batched_tokens": (rec.num_batched_tokens / rec.num_steps) if rec.num_steps else None,
        },
    }
