"""How many requests a probe simulates, and where they come from when the first N are too few.

A probe judges a rate by its steady state, so it must run long enough to reach it and to show an overload.
Two floors, both in the trace's own time at the probed rate:

- ``min_duration_s`` of arrivals (default 300 s). Overload shows as backlog growing at (λ − μ) requests per
  second, and the throughput test (throughput.py) counts it over the last two thirds of the arrivals against
  the requests that finish there; that count is off by the requests in flight at each end of that window
  (about λ × the mean end-to-end latency each). A chat request on a 7B-70B model under a latency SLO of
  seconds lasts ~5-15 s end to end (azure-conv on an H100: 7 s mean, 40 s for its longest, 1,000-token
  output), so 300 s keeps that error near 2-5 % of the count, under the 5 % tolerance, and spans several
  lives of the longest request. The 1,000 requests the planner used to simulate arrive in ~11 s at
  92.5 req/s: the KV cache absorbs an overload that short as a bigger batch, and no queue ever forms.
- ``min_requests_per_replica`` (default 1,000). A replica only shows overload once its batch is full:
  vLLM's ``max_num_seqs`` is 256, so 1,000 requests per replica fill and turn its batch over about four
  times. This floor matters when a replica's own rate is low (a big model: 0.5 req/s × 300 s is 150
  requests, too few to fill one batch).

More requests come first from the trace itself (the requests after the first N, in order: real traffic), and
when the trace runs out from cycling it: copies placed end to end, each shifted by the trace's span plus one
mean inter-arrival gap (so the mean rate holds across the seam), request ids renumbered 0..M-1, prefix hashes
and session ids kept (so with prefix caching on, a copy can hit the blocks of the one before). The result is
rescaled to the probed rate, so every probe offers exactly that rate.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from kvsim.errors import KvsimError
from kvsim.traces import Trace, mean_rate_per_s, rescale_to_rate, take_first

DEFAULT_MIN_DURATION_S = 300.0
DEFAULT_MIN_REQUESTS_PER_REPLICA = 1000


def probe_num_requests(
    num_requests: int,
    rate_per_s: float,
    num_replicas: int,
    min_duration_s: float,
    min_requests_per_replica: int,
) -> int:
    """Requests a probe simulates: the first ``num_requests``, or more to reach both floors."""
    for_duration = math.ceil(min_duration_s * rate_per_s - 1e-9) + 1  # N requests span N - 1 gaps
    return max(num_requests, for_duration, min_requests_per_replica * num_replicas)


def cycled(trace: Trace, num_requests: int) -> Trace:
    """The first ``num_requests`` of ``trace`` followed by copies of itself (see the module docstring)."""
    if num_requests <= len(trace):
        return take_first(trace, num_requests)
    rate_per_s = mean_rate_per_s(trace)
    if rate_per_s is None:
        raise KvsimError(f"trace {trace.provenance.source!r} spans no time, so it cannot be repeated in time")
    num = len(trace)
    num_copies = math.ceil(num_requests / num)
    period_s = trace.duration_s + 1 / rate_per_s  # [copy j] arrives j * period_s later
    shift_s = np.repeat(np.arange(num_copies) * period_s, num)[:num_requests]
    tiled = np.tile(np.arange(num), num_copies)[:num_requests]  # [num_requests] row of the source trace

    def objects(column):
        return None if column is None else [column[i] for i in tiled]

    note = f"cycled {num_requests / num:.3g}x ({num} requests repeated end to end, period {period_s:.6g} s)"
    return Trace(
        request_id=np.arange(num_requests, dtype=np.int64),
        arrival_s=trace.arrival_s[tiled] + shift_s,
        num_prompt_tokens=trace.num_prompt_tokens[tiled],
        num_output_tokens=trace.num_output_tokens[tiled],
        provenance=dataclasses.replace(
            trace.provenance, notes="; ".join(p for p in (trace.provenance.notes, note) if p)
        ),
        n=None if trace.n is None else trace.n[tiled],
        beam_width=None if trace.beam_width is None else trace.beam_width[tiled],
        prefix_block_hashes=objects(trace.prefix_block_hashes),
        session_id=objects(trace.session_id),
        meta=trace.meta,
    )


@dataclasses.dataclass(frozen=True)
class ProbeTrace:
    """The requests one probe runs, and how they were taken from the trace (for the plan's notes)."""

    trace: Trace
    how: str


def probe_trace(
    source: Trace,
    num_requests: int,
    rate_per_s: float,
    num_replicas: int,
    *,
    min_duration_s: float = DEFAULT_MIN_DURATION_S,
    min_requests_per_replica: int = DEFAULT_MIN_REQUESTS_PER_REPLICA,
) -> ProbeTrace:
    """``source``: the whole trace at its own times; ``num_requests``: the first N the user asked for."""
    first = min(num_requests, len(source))
    num = probe_num_requests(first, rate_per_s, num_replicas, min_duration_s, min_requests_per_replica)
    if num == first:
        how = f"the first {first} requests"
    elif num <= len(source):
        how = f"the first {num} requests (the first {first}, then the next {num - first} of the trace)"
    else:
        how = f"{num} requests (the whole trace of {len(source)}, cycled {num / len(source):.3g}x)"
    trace = rescale_to_rate(cycled(source, num), rate_per_s)
    return ProbeTrace(trace, how)
