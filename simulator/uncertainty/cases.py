"""Which cases to run: the uncertain terms' values at which every configuration is simulated again.

A case is one state of the world: every configuration of a comparison runs under the same case, so their
order can be compared case by case. The design, for ``n`` uncertain terms:

1. one at a time: each term at its low and at its high end, the others nominal (``2n`` cases). Their effects
   rank the terms (the sensitivity ranking that names the term deciding a fragile difference);
2. corners: every combination of low/high of the ``k`` most influential terms (``2^k``), the others nominal;
   with ``n <= k`` these are all the corners;
3. a seeded sample of corners over all terms (``num_samples``), for interactions among the rest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from kvsim.simulator.uncertainty.terms import UncertainTerm, format_term_values

CORNERS_K = 3  # the most influential terms whose corners are all run
NUM_SAMPLES = 4  # random corners over every term


@dataclass(frozen=True)
class Case:
    """One case: ``values`` of the terms it moves off nominal (term name -> value)."""

    name: str  # "nominal", "paged_decode_factor=low", "corner 3", "sample 1"
    kind: str  # nominal | one-at-a-time | corner | sample
    values: dict[str, float] = field(default_factory=dict)
    term: str | None = None  # one-at-a-time: the term moved
    end: str | None = None  # one-at-a-time: low | high

    def term_values(self, declared: set[str]) -> str | None:
        """The ``term_values`` field for a configuration that declares the terms ``declared`` (a term it does
        not have, such as vAttention's map time for paged, does not apply to it)."""
        return format_term_values({k: v for k, v in self.values.items() if k in declared})

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "values": self.values,
            "term": self.term,
            "end": self.end,
        }


NOMINAL = Case("nominal", "nominal")


def one_at_a_time(terms: list[UncertainTerm]) -> list[Case]:
    cases = []
    for term in terms:
        for end in ("low", "high"):
            value = getattr(term, end)
            if value != term.nominal:
                cases.append(Case(f"{term.name}={end}", "one-at-a-time", {term.name: value}, term.name, end))
    return cases


def corners(terms: list[UncertainTerm]) -> list[Case]:
    """Every low/high combination of ``terms`` (the others nominal)."""
    cases = []
    for index, ends in enumerate(itertools.product(("low", "high"), repeat=len(terms))):
        values = {term.name: getattr(term, end) for term, end in zip(terms, ends)}
        label = ", ".join(f"{t.name}={e}" for t, e in zip(terms, ends))
        cases.append(Case(f"corner {index + 1} ({label})", "corner", values))
    return cases


def samples(terms: list[UncertainTerm], num_samples: int, seed: int) -> list[Case]:
    """``num_samples`` corners over all ``terms``, each end drawn with probability 1/2 (seeded)."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(num_samples):
        picks = rng.integers(0, 2, size=len(terms))
        values = {term.name: (term.high if pick else term.low) for term, pick in zip(terms, picks)}
        cases.append(Case(f"sample {index + 1}", "sample", values))
    return cases


def second_stage(
    terms: list[UncertainTerm],
    ranking: list[str],
    *,
    k: int = CORNERS_K,
    num_samples: int = NUM_SAMPLES,
    seed: int = 0,
) -> list[Case]:
    """The corners of the ``k`` terms first in ``ranking`` (all corners when there are at most ``k`` terms),
    plus ``num_samples`` sampled corners over all terms when there are more than ``k``."""
    by_name = {term.name: term for term in terms}
    top = [by_name[name] for name in ranking[:k] if name in by_name]
    candidates = corners(top) if top else []
    if len(terms) > k and num_samples:
        candidates += samples(terms, num_samples, seed)
    # a case already run (one at a time: the corners of a single term) or drawn twice runs once
    known = {format_term_values(c.values) for c in one_at_a_time(terms)}
    cases = []
    for case in candidates:
        key = format_term_values(case.values)
        if key not in known:
            known.add(key)
            cases.append(case)
    return cases
