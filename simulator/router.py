"""Routers: which replica serves an arriving request (DESIGN §1). A router is a plain function
``(replicas, arrival_index) -> replica index``; ties go to the lowest index (determinism, STYLE 10)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def round_robin(replicas: Sequence[Any], arrival_index: int) -> int:
    """Replica ``arrival_index mod num_replicas`` (rejected requests take their turn too)."""
    return arrival_index % len(replicas)


def least_outstanding(replicas: Sequence[Any], arrival_index: int) -> int:
    """The replica with the fewest requests routed to it and not yet finished."""
    best = 0
    for i in range(1, len(replicas)):
        if replicas[i].num_outstanding < replicas[best].num_outstanding:
            best = i
    return best


ROUTERS: dict[str, Callable[[Sequence[Any], int], int]] = {
    "round_robin": round_robin,
    "least_outstanding": least_outstanding,
}
