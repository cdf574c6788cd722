"""Does the queue grow without bound? A finite run cannot prove stability, so this tests for the signature
of overload instead.

When requests arrive at rate λ above the service rate μ, the backlog grows by (λ − μ) requests per second
and a request arriving at time t waits about t·(λ/μ − 1): queueing delay rises linearly with arrival time.
Below capacity it fluctuates about a constant. So: split the accepted requests by arrival order into thirds,
and call the run **unstable** when the mean queueing delay of the last third exceeds that of the first third
by more than ``growth_per_s`` seconds per second of arrival time between the two thirds' mid-points, and by
more than ``min_growth_s`` in absolute terms (so that jitter of a few steps on a short run is not mistaken
for growth). With the default ``growth_per_s = 0.05`` a run is flagged once λ exceeds μ by about 5 %;
below that a finite trace cannot tell overload from noise, which is why ``plan`` states its tolerance.
Requests that never finished count as waiting until the end of the run (a run cut short by overload is not
let off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_GROWTH_PER_S = 0.05
DEFAULT_MIN_GROWTH_S = 0.1
MIN_REQUESTS = 30  # fewer accepted requests than this: too few to judge, reported as stable with a note


@dataclass(frozen=True)
class Stability:
    stable: bool
    growth_s: float  # mean queueing delay, last third minus first third
    growth_per_s: float  # growth_s per second of arrival time between the thirds' mid-points
    reason: str


def queue_growth(
    arrival_s: np.ndarray,
    queueing_delay_s: np.ndarray,
    *,
    growth_per_s: float = DEFAULT_GROWTH_PER_S,
    min_growth_s: float = DEFAULT_MIN_GROWTH_S,
) -> Stability:
    """``arrival_s``, ``queueing_delay_s``: [num_accepted] per request (NaN delay: never scheduled)."""
    arrival_s = np.asarray(arrival_s, dtype=np.float64)
    delay_s = np.asarray(queueing_delay_s, dtype=np.float64)
    assert arrival_s.shape == delay_s.shape
    if len(arrival_s) < MIN_REQUESTS:
        return Stability(True, 0.0, 0.0, f"only {len(arrival_s)} accepted requests: too few to judge growth")
    order = np.argsort(arrival_s, kind="stable")
    arrival_s, delay_s = arrival_s[order], delay_s[order]
    end_s = float(np.nanmax(arrival_s + np.nan_to_num(delay_s, nan=0.0)))
    delay_s = np.where(np.isnan(delay_s), end_s - arrival_s, delay_s)  # never scheduled: waited to the end
    third = len(arrival_s) // 3
    early, late = slice(0, third), slice(len(arrival_s) - third, None)
    growth_s = float(delay_s[late].mean() - delay_s[early].mean())
    span_s = float(np.median(arrival_s[late]) - np.median(arrival_s[early]))
    rate = growth_s / span_s if span_s > 0 else (np.inf if growth_s > 0 else 0.0)
    if growth_s > min_growth_s and rate > growth_per_s:
        reason = (
            f"queue grows: queueing delay +{growth_s:.3g}s from first to last third of arrivals "
            f"({rate:.3g} s/s > {growth_per_s:g})"
        )
        return Stability(False, growth_s, rate, reason)
    return Stability(True, growth_s, rate, f"queueing delay change {growth_s:+.3g}s ({rate:+.3g} s/s)")
