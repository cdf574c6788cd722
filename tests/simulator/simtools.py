"""Helpers for simulator tests: small traces and a constant-cost simulate() (imported as `simtools`)."""

from __future__ import annotations

import numpy as np

from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.cost.constant import ConstantCostModel
from kvsim.traces.request import Provenance, Request, Trace


def make_trace(rows: list[tuple[float, int, int]], **columns) -> Trace:
    """rows: (arrival_s, num_prompt_tokens, num_output_tokens), request ids 0..n-1."""
    requests = [
        Request(
            request_id=i,
            arrival_s=a,
            num_prompt_tokens=p,
            num_output_tokens=o,
            **{k: v[i] for k, v in columns.items()},
        )
        for i, (a, p, o) in enumerate(rows)
    ]
    return Trace.from_requests(requests, Provenance(source="test"))


def random_trace(
    num_requests: int,
    *,
    seed: int = 0,
    rate_per_s: float = 20.0,
    max_prompt: int = 400,
    max_output: int = 300,
) -> Trace:
    rng = np.random.default_rng(seed)
    return Trace(
        request_id=np.arange(num_requests, dtype=np.int64),
        arrival_s=np.cumsum(rng.exponential(1.0 / rate_per_s, num_requests)),
        num_prompt_tokens=rng.integers(1, max_prompt, num_requests),
        num_output_tokens=rng.integers(1, max_output, num_requests),
        provenance=Provenance(source=f"random seed={seed}"),
    )


def run(trace: Trace, *, step_s: float = 0.25, per_token_s: float = 0.0, **config):
    """simulate() with a ConstantCostModel; config fields default to a small llama-2-7b deployment."""
    config.setdefault(
        "scheduler", "vllm-v0"
    )  # the tests written for vLLM v0.6.3's policy; v1 tests say "vllm"
    return simulate(SimConfig(**config), trace, cost_model=ConstantCostModel(step_s, per_token_s))


KV_BYTES_PER_TOKEN = 512 * 1024  # llama-2-7b, fp16, TP 1
