"""Does the configuration serve the rate it is offered? Requests finished against requests arrived.

A replica that keeps up finishes requests as fast as they arrive, only later by their latency; one that
does not finishes at most at its service rate μ < λ, whether the backlog waits in the queue or sits in a
growing batch (which a queue-growth test cannot see until the KV cache is full). So, over the last two
thirds of the arrival window (the first third lets the batch fill from empty), count the accepted requests
that arrive and the ones that finish; the configuration **falls behind** when

    finished / arrived < 1 − tol        (tol = 0.05: achieved under 0.95 x offered)

i.e. once λ exceeds μ by about 5 %, the tolerance the queue-growth test has too (stability.py). Both counts
are divided by the window's length and reported as rates (req/s). In a stable run the two differ by the
requests in flight at the window's two ends (about λ × mean latency each, and they cancel on average), which
is why a probe lasts many request lifetimes (probe_trace.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_THROUGHPUT_TOL = 0.05
MIN_REQUESTS = 30  # fewer accepted requests in the window: too few to judge


@dataclass(frozen=True)
class Throughput:
    keeps_up: bool
    achieved_per_s: float | None  # accepted requests finished in the window, per second
    offered_per_s: float | None  # accepted requests arrived in the window, per second
    reason: str


def throughput_check(
    arrival_s: np.ndarray, finish_s: np.ndarray, *, tol: float = DEFAULT_THROUGHPUT_TOL
) -> Throughput:
    """``arrival_s``, ``finish_s``: [num_accepted] per request (NaN finish: never finished)."""
    arrival_s = np.asarray(arrival_s, dtype=np.float64)
    finish_s = np.asarray(finish_s, dtype=np.float64)
    assert arrival_s.shape == finish_s.shape
    if len(arrival_s) == 0:
        return Throughput(True, None, None, "no accepted request")
    first_s, last_s = float(arrival_s.min()), float(arrival_s.max())
    start_s = first_s + (last_s - first_s) / 3
    window_s = last_s - start_s
    arrived = int(np.count_nonzero((arrival_s > start_s) & (arrival_s <= last_s)))
    if arrived < MIN_REQUESTS or not window_s > 0:
        return Throughput(True, None, None, f"only {arrived} arrivals in the window: too few to judge")
    finished = int(np.count_nonzero((finish_s > start_s) & (finish_s <= last_s)))  # NaN compares False
    achieved, offered = finished / window_s, arrived / window_s
    if finished < (1 - tol) * arrived:
        reason = (
            f"throughput {achieved:.4g} req/s < {1 - tol:g} x offered {offered:.4g} req/s "
            f"(finished vs arrived over the last 2/3 of arrivals)"
        )
        return Throughput(False, achieved, offered, reason)
    return Throughput(True, achieved, offered, f"throughput {achieved:.4g} of {offered:.4g} req/s offered")
