"""Requests and traces (DESIGN §2).

A ``Trace`` is columnar: one numpy array per field, sorted by arrival (stable, so requests that arrive at the
same instant keep file order). A million-request trace costs tens of MB, and the simulator reads the columns
directly; ``Request`` objects are made on demand when iterating.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from kvsim.errors import KvsimError


@dataclass(frozen=True, slots=True)
class Request:
    """One request. ``num_output_tokens`` is the true output length: only the Oracle policy may read it
    ahead of time; every other policy learns it when the request finishes."""

    request_id: int
    arrival_s: float
    num_prompt_tokens: int
    num_output_tokens: int
    prefix_block_hashes: tuple[int, ...] | None = None  # Mooncake hash_ids: one per PREFIX_BLOCK_TOKENS
    n: int = 1  # parallel samples
    beam_width: int = 1
    session_id: str | None = None


# Mooncake's hash_ids cover 512 tokens each (Qin et al., FAST'25 trace release README).
PREFIX_BLOCK_TOKENS = 512


@dataclass(frozen=True)
class Provenance:
    source: str  # a bundled name or a file path, or "synthetic: <generator description>"
    license: str = "unknown"
    citation: str = ""
    notes: str = ""


@dataclass(frozen=True, eq=False)
class Trace:
    """Requests ordered by arrival. Invariant: ``arrival_s`` is non-decreasing, token counts are >= 1,
    every column has the same length, and ``request_id`` values are unique."""

    request_id: np.ndarray  # [num_requests] int64
    arrival_s: np.ndarray  # [num_requests] float64, seconds from the trace's start
    num_prompt_tokens: np.ndarray  # [num_requests] int64
    num_output_tokens: np.ndarray  # [num_requests] int64
    provenance: Provenance
    n: np.ndarray | None = None  # [num_requests] int64, parallel samples; None means all 1
    beam_width: np.ndarray | None = None  # [num_requests] int64; None means all 1
    prefix_block_hashes: Sequence[tuple[int, ...]] | None = None  # per request
    session_id: Sequence[str | None] | None = None  # per request
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        num = len(self.arrival_s)
        for name in (
            "request_id",
            "num_prompt_tokens",
            "num_output_tokens",
            "n",
            "beam_width",
            "prefix_block_hashes",
            "session_id",
        ):
            column = getattr(self, name)
            assert column is None or len(column) == num, f"column {name} has {len(column)} rows, not {num}"
        if num == 0:
            raise KvsimError(
                f"trace {self.provenance.source!r} has no requests; give a file with at least one"
            )

    def __len__(self) -> int:
        return len(self.arrival_s)

    def __iter__(self) -> Iterator[Request]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> Request:
        return Request(
            request_id=int(self.request_id[i]),
            arrival_s=float(self.arrival_s[i]),
            num_prompt_tokens=int(self.num_prompt_tokens[i]),
            num_output_tokens=int(self.num_output_tokens[i]),
            prefix_block_hashes=None if self.prefix_block_hashes is None else self.prefix_block_hashes[i],
            n=1 if self.n is None else int(self.n[i]),
            beam_width=1 if self.beam_width is None else int(self.beam_width[i]),
            session_id=None if self.session_id is None else self.session_id[i],
        )

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1] - self.arrival_s[0])

    @classmethod
    def from_columns(
        cls,
        *,
        arrival_s: np.ndarray,
        num_prompt_tokens: np.ndarray,
        num_output_tokens: np.ndarray,
        provenance: Provenance,
        request_id: np.ndarray | None = None,
        n: np.ndarray | None = None,
        beam_width: np.ndarray | None = None,
        prefix_block_hashes: Sequence[tuple[int, ...] | None] | None = None,
        session_id: Sequence[str | None] | None = None,
        meta: dict | None = None,
    ) -> Trace:
        """Build a trace from columns in any order: sorted stably by arrival, so requests that arrive at the
        same instant keep the given order. ``request_id`` defaults to the given position (0..N-1). An ``n`` or
        ``beam_width`` column of all ones, and a hash or session column of all None, is stored as None."""
        arrival_s = np.asarray(arrival_s, dtype=np.float64)
        order = np.argsort(arrival_s, kind="stable")
        in_order = bool(np.all(order[1:] > order[:-1]))

        def ints(column: np.ndarray | None) -> np.ndarray | None:
            if column is None:
                return None
            column = np.asarray(column, dtype=np.int64)
            return column if in_order else column[order]

        def objects(column: Sequence | None) -> list | None:
            if column is None or all(value is None for value in column):
                return None
            return list(column) if in_order else [column[i] for i in order]

        if request_id is None:
            request_id = np.arange(len(arrival_s), dtype=np.int64)
        n_col, beam_col = ints(n), ints(beam_width)
        return cls(
            request_id=ints(request_id),
            arrival_s=arrival_s if in_order else arrival_s[order],
            num_prompt_tokens=ints(num_prompt_tokens),
            num_output_tokens=ints(num_output_tokens),
            provenance=provenance,
            n=None if n_col is None or np.all(n_col == 1) else n_col,
            beam_width=None if beam_col is None or np.all(beam_col == 1) else beam_col,
            prefix_block_hashes=objects(prefix_block_hashes),
            session_id=objects(session_id),
            meta=dict(meta or {}),
        )

    def take(self, indices: np.ndarray, provenance: Provenance) -> Trace:
        """The requests at ``indices`` (positions, increasing so the arrival order holds), with new provenance."""
        indices = np.asarray(indices, dtype=np.int64)
        assert np.all(np.diff(indices) > 0), "take() needs increasing positions"
        pick = None if self.prefix_block_hashes is None else [self.prefix_block_hashes[i] for i in indices]
        sessions = None if self.session_id is None else [self.session_id[i] for i in indices]
        return Trace.from_columns(
            arrival_s=self.arrival_s[indices],
            num_prompt_tokens=self.num_prompt_tokens[indices],
            num_output_tokens=self.num_output_tokens[indices],
            provenance=provenance,
            request_id=self.request_id[indices],
            n=None if self.n is None else self.n[indices],
            beam_width=None if self.beam_width is None else self.beam_width[indices],
            prefix_block_hashes=pick,
            session_id=sessions,
            meta=self.meta,
        )

    @classmethod
    def from_requests(cls, requests: Sequence[Request], provenance: Provenance) -> Trace:
        """Build a trace from records, sorted stably by arrival."""
        order = np.argsort(np.array([r.arrival_s for r in requests], dtype=np.float64), kind="stable")
        reqs = [requests[i] for i in order]
        has_prefix = any(r.prefix_block_hashes is not None for r in reqs)
        has_session = any(r.session_id is not None for r in reqs)
        return cls(
            request_id=np.array([r.request_id for r in reqs], dtype=np.int64),
            arrival_s=np.array([r.arrival_s for r in reqs], dtype=np.float64),
            num_prompt_tokens=np.array([r.num_prompt_tokens for r in reqs], dtype=np.int64),
            num_output_tokens=np.array([r.num_output_tokens for r in reqs], dtype=np.int64),
            provenance=provenance,
            n=np.array([r.n for r in reqs], dtype=np.int64) if any(r.n != 1 for r in reqs) else None,
            beam_width=(
                np.array([r.beam_width for r in reqs], dtype=np.int64)
                if any(r.beam_width != 1 for r in reqs)
                else None
            ),
            prefix_block_hashes=[r.prefix_block_hashes for r in reqs] if has_prefix else None,
            session_id=[r.session_id for r in reqs] if has_session else None,
        )
