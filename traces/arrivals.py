"""Arrival processes: arrival times at a mean rate, from an explicit ``np.random.Generator``.

The times are the cumulative sums of the inter-arrival gaps, so the first request arrives one gap after 0.
``ARRIVALS`` maps a name to a function ``(num_requests, rate_per_s, rng, cv) -> [num_requests] float64``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from kvsim.errors import KvsimError


def poisson_arrivals(
    num_requests: int, rate_per_s: float, rng: np.random.Generator, cv: float = 1.0
) -> np.ndarray:
    """A Poisson process: exponential gaps with mean 1/rate (coefficient of variation 1)."""
    _check(num_requests, rate_per_s)
    if cv != 1.0:
        raise KvsimError(
            f"Poisson arrivals have cv 1, not {cv}; use the gamma arrival process for another cv"
        )
    return np.cumsum(rng.exponential(1.0 / rate_per_s, size=num_requests))


def gamma_arrivals(
    num_requests: int, rate_per_s: float, rng: np.random.Generator, cv: float = 1.0
) -> np.ndarray:
    """Gamma-distributed gaps with mean 1/rate and coefficient of variation ``cv`` (shape 1/cv², scale
    cv²/rate). cv > 1 is burstier than Poisson, cv < 1 more regular; cv = 1 is Poisson."""
    _check(num_requests, rate_per_s)
    if not (math.isfinite(cv) and cv > 0):
        raise KvsimError(f"gamma arrivals: cv must be > 0, got {cv}")
    shape = 1.0 / cv**2
    return np.cumsum(rng.gamma(shape, 1.0 / (rate_per_s * shape), size=num_requests))


ARRIVALS: dict[str, Callable[..., np.ndarray]] = {"poisson": poisson_arrivals, "gamma": gamma_arrivals}


def make_arrivals(
    process: str, num_requests: int, rate_per_s: float, rng: np.random.Generator, cv: float | None = None
) -> np.ndarray:
    if process not in ARRIVALS:
        raise KvsimError(f"unknown arrival process {process!r}; use one of {', '.join(ARRIVALS)}")
    return ARRIVALS[process](num_requests, rate_per_s, rng, 1.0 if cv is None else cv)


def _check(num_requests: int, rate_per_s: float) -> None:
    if isinstance(num_requests, bool) or not isinstance(num_requests, int | np.integer) or num_requests < 1:
        raise KvsimError(f"num_requests must be an integer >= 1, got {num_requests!r}")
    if not (isinstance(rate_per_s, int | float) and math.isfinite(rate_per_s) and rate_per_s > 0):
        raise KvsimError(f"rate_per_s must be a finite number > 0 requests per second, got {rate_per_s!r}")
