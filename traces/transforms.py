"""Transforms of a trace: rescale to a target rate, cut to a time window or a count, seeded subsample.
Each returns a new trace whose provenance notes say what was done."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from kvsim.errors import KvsimError
from kvsim.traces.request import Provenance, Trace


def mean_rate_per_s(trace: Trace) -> float | None:
    """Requests per second as 1 / mean inter-arrival gap = (N - 1) / span; None for a trace that spans no time."""
    span_s = trace.duration_s
    return (len(trace) - 1) / span_s if span_s > 0 else None


def rescale_to_rate(trace: Trace, rate_per_s: float) -> Trace:
    """Scale arrival times about the first arrival so the mean rate becomes ``rate_per_s``; the shape of the
    arrival process (burstiness, inter-arrival CV) is kept."""
    if not (math.isfinite(rate_per_s) and rate_per_s > 0):
        raise KvsimError(f"target rate must be > 0 requests per second, got {rate_per_s}")
    rate_now = mean_rate_per_s(trace)
    if rate_now is None:
        raise KvsimError(f"trace {trace.provenance.source!r} spans no time, so it has no rate to rescale")
    factor = rate_now / rate_per_s
    first = trace.arrival_s[0]
    arrival_s = first + (trace.arrival_s - first) * factor
    note = f"rescaled from {rate_now:.4g} to {rate_per_s:.4g} req/s (times x{factor:.4g})"
    return dataclasses.replace(trace, arrival_s=arrival_s, provenance=_noted(trace.provenance, note))


def cut_window(trace: Trace, start_s: float, end_s: float) -> Trace:
    """Requests arriving in [start_s, end_s), with times shifted so the window starts at 0."""
    if not end_s > start_s:
        raise KvsimError(f"time window needs end_s > start_s, got [{start_s}, {end_s})")
    keep = np.flatnonzero((trace.arrival_s >= start_s) & (trace.arrival_s < end_s))
    if len(keep) == 0:
        raise KvsimError(
            f"no request of {trace.provenance.source!r} arrives in [{start_s}, {end_s}) s; "
            f"its arrivals span [{trace.arrival_s[0]:.6g}, {trace.arrival_s[-1]:.6g}] s"
        )
    cut = trace.take(keep, _noted(trace.provenance, f"window [{start_s}, {end_s}) s, shifted to start at 0"))
    return dataclasses.replace(cut, arrival_s=cut.arrival_s - start_s)


def take_first(trace: Trace, num_requests: int) -> Trace:
    """The first ``num_requests`` requests by arrival (all of them if the trace is shorter)."""
    if num_requests < 1:
        raise KvsimError(f"num_requests must be >= 1, got {num_requests}")
    if num_requests >= len(trace):
        return trace
    note = f"first {num_requests} of {len(trace)} requests"
    return trace.take(np.arange(num_requests), _noted(trace.provenance, note))


def subsample(trace: Trace, fraction: float, rng: np.random.Generator) -> Trace:
    """Keep each request independently with probability ``fraction`` (Bernoulli thinning): the mean rate
    scales by ``fraction``, and a thinned Poisson process is still Poisson."""
    if not 0 < fraction <= 1:
        raise KvsimError(f"subsample fraction must be in (0, 1], got {fraction}")
    keep = np.flatnonzero(rng.random(len(trace)) < fraction)
    if len(keep) == 0:
        raise KvsimError(f"subsampling {len(trace)} requests at {fraction} kept none; raise the fraction")
    note = f"subsampled at {fraction} ({len(keep)} of {len(trace)} kept)"
    return trace.take(keep, _noted(trace.provenance, note))


def _noted(provenance: Provenance, note: str) -> Provenance:
    notes = "; ".join(part for part in (provenance.notes, note) if part)
    return dataclasses.replace(provenance, notes=notes)
