"""Request lengths: datasets of (prompt, output) pairs without arrival times, and length distributions.

A ``LengthTable`` is what a length dataset file holds (Vidur/Sarathi-Serve's
``num_prefill_tokens,num_decode_tokens,...`` CSVs). A ``LengthDistribution`` draws token counts from an explicit
``np.random.Generator``; ``LENGTHS`` maps the names used in spec strings (``lognormal:1000:0.8``) to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kvsim.errors import KvsimError
from kvsim.traces.request import Provenance


@dataclass(frozen=True, eq=False)
class LengthTable:
    """(prompt, output) token counts of a dataset, in file order. Invariant: equal lengths, every count >= 1."""

    num_prompt_tokens: np.ndarray  # [num_rows] int64
    num_output_tokens: np.ndarray  # [num_rows] int64
    provenance: Provenance

    def __post_init__(self) -> None:
        assert len(self.num_prompt_tokens) == len(self.num_output_tokens)
        if len(self.num_prompt_tokens) == 0:
            raise KvsimError(f"length dataset {self.provenance.source!r} has no rows")

    def __len__(self) -> int:
        return len(self.num_prompt_tokens)

    def resample(self, num_requests: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``num_requests`` rows drawn uniformly with replacement; a row's prompt and output stay paired,
        so their correlation in the dataset is kept."""
        rows = rng.integers(0, len(self), size=num_requests)
        return self.num_prompt_tokens[rows], self.num_output_tokens[rows]


class LengthDistribution(Protocol):
    def sample(self, num_requests: int, rng: np.random.Generator) -> np.ndarray:
        """[num_requests] int64 token counts, each >= 1."""
        ...


@dataclass(frozen=True)
class FixedLengths:
    num_tokens: int

    def __post_init__(self) -> None:
        _check_positive_int("num_tokens", self.num_tokens)

    def sample(self, num_requests: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(num_requests, self.num_tokens, dtype=np.int64)


@dataclass(frozen=True)
class UniformLengths:
    """Integers uniform on [min_tokens, max_tokens], both ends included."""

    min_tokens: int
    max_tokens: int

    def __post_init__(self) -> None:
        _check_positive_int("min_tokens", self.min_tokens)
        _check_positive_int("max_tokens", self.max_tokens)
        if self.max_tokens < self.min_tokens:
            raise KvsimError(
                f"uniform lengths: max_tokens ({self.max_tokens}) < min_tokens ({self.min_tokens}); swap them"
            )

    def sample(self, num_requests: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(
            self.min_tokens, self.max_tokens, size=num_requests, endpoint=True, dtype=np.int64
        )


@dataclass(frozen=True)
class LognormalLengths:
    """Lognormal with the given mean (in tokens) and ``sigma`` of the underlying normal, so
    ``mu = ln(mean_tokens) - sigma**2 / 2``. Rounded to the nearest integer and clipped to [1, max_tokens];
    rounding and clipping move the mean by well under a token when ``mean_tokens`` is in the tens or more."""

    mean_tokens: float
    sigma: float
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean_tokens) and self.mean_tokens >= 1):
            raise KvsimError(f"lognormal lengths: mean_tokens must be >= 1, got {self.mean_tokens}")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise KvsimError(
                f"lognormal lengths: sigma must be >= 0 (0 gives fixed lengths), got {self.sigma}"
            )
        if self.max_tokens is not None:
            _check_positive_int("max_tokens", self.max_tokens)

    def sample(self, num_requests: int, rng: np.random.Generator) -> np.ndarray:
        mu = math.log(self.mean_tokens) - self.sigma**2 / 2
        tokens = np.rint(rng.lognormal(mu, self.sigma, size=num_requests)).astype(np.int64)
        return np.clip(tokens, 1, self.max_tokens)


# spec-string name -> class; the spec's numbers are the dataclass fields in order.
LENGTHS: dict[str, type] = {"fixed": FixedLengths, "uniform": UniformLengths, "lognormal": LognormalLengths}


def parse_lengths(spec: str) -> LengthDistribution:
    """``"fixed:512"``, ``"uniform:100:2000"``, ``"lognormal:1000:0.8"`` or ``"lognormal:1000:0.8:4096"``
    (mean, sigma, max). A bare integer means fixed."""
    name, *args = spec.strip().split(":")
    if not args and name.isdigit():
        name, args = "fixed", [name]
    if name not in LENGTHS:
        raise KvsimError(f"unknown length distribution {spec!r}; use one of {_SPEC_HELP}")
    try:
        numbers = [float(a) if "." in a or "e" in a.lower() else int(a) for a in args]
        return LENGTHS[name](*numbers)
    except (TypeError, ValueError) as exc:
        raise KvsimError(f"bad length distribution {spec!r} ({exc}); use one of {_SPEC_HELP}") from None


_SPEC_HELP = "fixed:TOKENS, uniform:MIN:MAX, lognormal:MEAN:SIGMA[:MAX]"


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise KvsimError(f"{name} must be an integer >= 1 token, got {value!r}")
