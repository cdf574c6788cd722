"""Max sustainable rate: the highest arrival rate at which a configuration meets its SLOs and its queue
stays bounded, found by bracketing then bisection on the rate.

Assumes feasibility is monotone in the rate (true of the same trace rescaled: a faster replay of the same
requests never waits less). Search: probe ``start``; double (or halve) until one rate passes and a higher
one fails; then bisect. It stops when the bracket [pass, fail) is narrower than ``rel_tol`` × the passing
rate, so the reported rate is within ``rel_tol`` (default 2 %) below the true threshold of this trace.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kvsim.errors import KvsimError

DEFAULT_REL_TOL = 0.02
MAX_DOUBLINGS = 12  # 2**12 = 4096x the start rate either way before giving up


@dataclass(frozen=True)
class Probe:
    """One run at one rate: did it pass, and if not, why (SLO misses, queue growth)."""

    rate_per_s: float
    ok: bool
    reasons: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)  # headline numbers of the run, for the report


@dataclass(frozen=True)
class MaxRate:
    """``max_rate_per_s`` passes and ``fail_rate_per_s`` fails, ``fail - max <= rel_tol * max``.

    ``max_rate_per_s`` is None when even the lowest rate tried failed (the SLO is out of reach at any load,
    e.g. a TTFT bound below one prefill); ``fail_rate_per_s`` is None when the highest rate tried passed."""

    max_rate_per_s: float | None
    fail_rate_per_s: float | None
    rel_tol: float
    probes: tuple[Probe, ...]

    @property
    def note(self) -> str:
        if self.max_rate_per_s is None:
            lowest = min(p.rate_per_s for p in self.probes)
            return f"fails even at {lowest:.4g} req/s: {'; '.join(self.probes[-1].reasons)}"
        if self.fail_rate_per_s is None:
            return f"passes at every rate tried, up to {self.max_rate_per_s:.4g} req/s (a lower bound)"
        failed = next(p for p in self.probes if p.rate_per_s == self.fail_rate_per_s)
        return (
            f"in [{self.max_rate_per_s:.4g}, {self.fail_rate_per_s:.4g}) req/s, {len(self.probes)} runs; "
            f"at {self.fail_rate_per_s:.4g}: {'; '.join(failed.reasons)}"
        )


def check_search(start_rate_per_s: float, rel_tol: float) -> None:
    """The search's settings, refused by their option names (PlanSettings checks them before any candidate)."""
    if not 0 < rel_tol < 1:
        raise KvsimError(f"--rel-tol must be in (0, 1), got {rel_tol}; 0.02 means within 2 %")
    if not (start_rate_per_s > 0 and math.isfinite(start_rate_per_s)):
        raise KvsimError(f"--start-rate must be a finite number > 0 req/s, got {start_rate_per_s}")


def find_max_rate(
    evaluate: Callable[[float], Probe], *, start_rate_per_s: float, rel_tol: float = DEFAULT_REL_TOL
) -> MaxRate:
    """``evaluate(rate)`` runs the configuration at ``rate`` and says whether it passes."""
    check_search(start_rate_per_s, rel_tol)
    probes: list[Probe] = []

    def passes(rate: float) -> bool:
        probe = evaluate(rate)
        assert probe.rate_per_s == rate, "evaluate must report the rate it ran"
        probes.append(probe)
        return probe.ok

    ok_rate: float | None = None
    fail_rate: float | None = None
    if passes(start_rate_per_s):
        ok_rate = start_rate_per_s
        for _ in range(MAX_DOUBLINGS):
            if not passes(ok_rate * 2):
                fail_rate = ok_rate * 2
                break
            ok_rate *= 2
    else:
        fail_rate = start_rate_per_s
        for _ in range(MAX_DOUBLINGS):
            if passes(fail_rate / 2):
                ok_rate = fail_rate / 2
                break
            fail_rate /= 2
    if ok_rate is not None and fail_rate is not None:
        while fail_rate - ok_rate > rel_tol * ok_rate:
            mid = (ok_rate + fail_rate) / 2
            if passes(mid):
                ok_rate = mid
            else:
                fail_rate = mid
    return MaxRate(ok_rate, fail_rate, rel_tol, tuple(probes))
