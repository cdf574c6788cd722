"""Summary statistics of a trace: what ``kvsim traces stats`` prints, as a plain dict others can reuse."""

from __future__ import annotations

import numpy as np

from kvsim.traces.request import PREFIX_BLOCK_TOKENS, Trace
from kvsim.traces.transforms import mean_rate_per_s


def trace_stats(trace: Trace) -> dict:
    """Count, span, mean rate (1 / mean gap), inter-arrival CV (population std / mean of the gaps; None with
    fewer than two gaps' worth of time), token-count summaries, and sharing information where present.
    Percentiles use numpy's default linear interpolation."""
    gaps_s = np.diff(trace.arrival_s)
    mean_gap_s = float(gaps_s.mean()) if len(gaps_s) else 0.0
    p = trace.provenance
    stats = {
        "source": p.source,
        "license": p.license,
        "citation": p.citation,
        "notes": p.notes,
        "num_requests": len(trace),
        "span_s": trace.duration_s,
        "rate_per_s": mean_rate_per_s(trace),
        "interarrival_cv": float(gaps_s.std() / mean_gap_s) if mean_gap_s > 0 else None,
        "num_prompt_tokens": _summary(trace.num_prompt_tokens),
        "num_output_tokens": _summary(trace.num_output_tokens),
    }
    if trace.n is not None or trace.beam_width is not None:
        stats["mean_n"] = 1.0 if trace.n is None else float(trace.n.mean())
        stats["mean_beam_width"] = 1.0 if trace.beam_width is None else float(trace.beam_width.mean())
    if trace.prefix_block_hashes is not None:
        blocks = [h for hashes in trace.prefix_block_hashes if hashes is not None for h in hashes]
        stats["prefix_blocks"] = {
            "block_tokens": PREFIX_BLOCK_TOKENS,
            "num_blocks": len(blocks),
            "num_unique_blocks": len(set(blocks)),
            # an unbounded prefix cache hits every block it has seen before
            "max_hit_fraction": 1 - len(set(blocks)) / len(blocks) if blocks else None,
        }
    if trace.session_id is not None:
        stats["num_sessions"] = len({s for s in trace.session_id if s is not None})
    if "num_failed" in trace.meta:
        stats["num_failed_left_out"] = trace.meta["num_failed"]
    return stats


def _summary(tokens: np.ndarray) -> dict:
    return {
        "mean": float(tokens.mean()),
        "median": float(np.median(tokens)),
        "p99": float(np.percentile(tokens, 99)),
        "max": int(tokens.max()),
    }
