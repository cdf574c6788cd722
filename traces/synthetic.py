"""Synthetic workloads: an arrival process, prompt and output lengths, parallel samples or beam search, and
optionally groups of requests that share a prompt prefix (a system prompt, a few-shot header).

``WorkloadSpec`` holds the options (one field per ``kvsim traces generate`` option); ``generate_trace(spec, rng)``
draws every random choice from the given generator, in a fixed order, so one seed gives one trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kvsim.errors import KvsimError
from kvsim.traces.arrivals import ARRIVALS, make_arrivals
from kvsim.traces.lengths import parse_lengths
from kvsim.traces.request import PREFIX_BLOCK_TOKENS, Provenance, Trace

# A generated trace is held in memory whole: about 5 arrays of 8 bytes per request, plus the prefix hashes.
BYTES_PER_GENERATED_REQUEST = 40
MAX_GENERATED_REQUESTS = 100_000_000  # 4 GB of arrays; the simulator's 1M-request benchmark is 1% of it


@dataclass(frozen=True)
class WorkloadSpec:
    num_requests: int
    rate_per_s: float
    arrival: str = "poisson"  # a key of ARRIVALS
    cv: float | None = None  # inter-arrival coefficient of variation, gamma only
    prompt: str = "lognormal:1000:1.0"  # length spec (see parse_lengths); unused with lengths_from
    output: str = "lognormal:200:1.0"
    lengths_from: str | None = None  # bundled name or path: resample (prompt, output) pairs from it instead
    n: int = 1  # parallel samples per request
    beam_width: int = 1
    num_prefix_groups: int = 0  # 0: no shared prefixes
    prefix_tokens: int = 0  # shared prefix length per group, prepended to each request's own prompt

    def __post_init__(self) -> None:
        if (
            isinstance(self.num_requests, bool)
            or not isinstance(self.num_requests, int)
            or self.num_requests < 1
        ):
            raise KvsimError(f"num_requests must be an integer >= 1, got {self.num_requests!r}")
        if self.num_requests > MAX_GENERATED_REQUESTS:
            raise KvsimError(
                f"num_requests {self.num_requests:,} is over the {MAX_GENERATED_REQUESTS:,} one trace may hold "
                f"(about {BYTES_PER_GENERATED_REQUEST} bytes each in memory); generate several traces instead"
            )
        if not (math.isfinite(self.rate_per_s) and self.rate_per_s > 0):
            raise KvsimError(f"rate_per_s must be > 0 requests per second, got {self.rate_per_s!r}")
        if self.arrival not in ARRIVALS:
            raise KvsimError(f"arrival must be one of {', '.join(ARRIVALS)}, got {self.arrival!r}")
        if self.cv is not None and self.arrival != "gamma" and self.cv != 1.0:
            raise KvsimError(f"cv={self.cv} needs arrival='gamma' (Poisson arrivals have cv 1)")
        if self.lengths_from is None:
            parse_lengths(self.prompt)  # raises on a bad spec, naming it
            parse_lengths(self.output)
        for name in ("n", "beam_width"):
            if getattr(self, name) < 1:
                raise KvsimError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_prefix_groups < 0:
            raise KvsimError(f"num_prefix_groups must be >= 0, got {self.num_prefix_groups}")
        if self.num_prefix_groups and self.prefix_tokens < PREFIX_BLOCK_TOKENS:
            raise KvsimError(
                f"prefix_tokens must be >= {PREFIX_BLOCK_TOKENS} (one prefix block) when num_prefix_groups > 0, "
                f"got {self.prefix_tokens}; only whole blocks can be shared"
            )
        if not self.num_prefix_groups and self.prefix_tokens:
            raise KvsimError("prefix_tokens needs num_prefix_groups >= 1 (how many distinct shared prefixes)")

    def describe(self) -> str:
        arrival = f"{self.arrival} arrivals at {self.rate_per_s:g} req/s" + (
            f" (cv {self.cv:g})" if self.cv is not None else ""
        )
        lengths = (
            f"lengths resampled from {self.lengths_from}"
            if self.lengths_from
            else (f"prompt {self.prompt}, output {self.output}")
        )
        parts = [f"{self.num_requests} requests", arrival, lengths]
        if self.n > 1 or self.beam_width > 1:
            parts.append(f"n={self.n}, beam_width={self.beam_width}")
        if self.num_prefix_groups:
            parts.append(f"{self.num_prefix_groups} groups sharing a {self.prefix_tokens}-token prefix")
        return ", ".join(parts)


def generate_trace(spec: WorkloadSpec, rng: np.random.Generator, seed_note: str = "") -> Trace:
    """A synthetic trace. Draw order: arrivals, then lengths (prompt then output, or resampled pairs), then
    prefix groups."""
    arrival_s = make_arrivals(spec.arrival, spec.num_requests, spec.rate_per_s, rng, spec.cv)
    if spec.lengths_from is not None:
        from kvsim.traces.registry import load_length_table  # lazy: the registry loads files

        prompt, output = load_length_table(spec.lengths_from).resample(spec.num_requests, rng)
    else:
        prompt = parse_lengths(spec.prompt).sample(spec.num_requests, rng)
        output = parse_lengths(spec.output).sample(spec.num_requests, rng)
    hashes = None
    if spec.num_prefix_groups:
        group = rng.integers(0, spec.num_prefix_groups, size=spec.num_requests)
        prompt = prompt + spec.prefix_tokens
        hashes = shared_prefix_hashes(prompt, group, spec.prefix_tokens)
    notes = "; ".join(p for p in (seed_note, "arrival times and lengths are generated, not measured") if p)
    return Trace.from_columns(
        arrival_s=arrival_s,
        num_prompt_tokens=prompt,
        num_output_tokens=output,
        n=np.full(spec.num_requests, spec.n),
        beam_width=np.full(spec.num_requests, spec.beam_width),
        prefix_block_hashes=hashes,
        provenance=Provenance(source=f"synthetic: {spec.describe()}", license="generated", notes=notes),
    )


def shared_prefix_hashes(
    num_prompt_tokens: np.ndarray, group: np.ndarray, prefix_tokens: int
) -> list[tuple[int, ...]]:
    """Prefix-block hashes, one per ``PREFIX_BLOCK_TOKENS`` of each prompt (Mooncake's convention): the
    ``prefix_tokens // PREFIX_BLOCK_TOKENS`` whole blocks of a group's shared prefix get the group's ids
    (``group * num_shared + j``); every other block gets a fresh id, so it matches nothing."""
    num_shared = prefix_tokens // PREFIX_BLOCK_TOKENS
    next_id = (int(group.max()) + 1) * num_shared
    hashes = []
    for tokens, g in zip(num_prompt_tokens.tolist(), group.tolist()):
        num_blocks = -(-tokens // PREFIX_BLOCK_TOKENS)  # ceil: a partial last block still has a hash
        own = num_blocks - num_shared
        shared = range(g * num_shared, (g + 1) * num_shared)
        hashes.append((*shared, *range(next_id, next_id + own)))
        next_id += own
    return hashes
