"""The conformance cases (issue 20): workloads run through both schedulers, each with and without memory pressure.

A case is plain JSON (it crosses into the vLLM venv): ``name``, ``config`` (vLLM's option names; ``num_blocks``
is kvsim's count of KV blocks, vLLM gets one more for its null block) and ``requests`` (``index``,
``arrival_step``, ``num_prompt_tokens``, ``num_output_tokens``, optional ``chunk_hashes``: Mooncake-style hash
ids, one per 512 prompt tokens). Every case is built from a fixed seed: the same case every time.

Memory: ``roomy`` gives every case enough blocks for all its requests at once (no preemption possible);
``pressure`` a share of that, chosen per workload so that requests are preempted or cached prefixes evicted,
and never fewer blocks than the longest request needs alone (plus 2).
"""

from __future__ import annotations

import numpy as np

from kvsim.errors import KvsimError

CHUNK_TOKENS = 512
BLOCK_SIZE = 16

# Defaults of every case's config (vLLM 0.34's where it has one).
BASE_CONFIG = {
    "block_size": BLOCK_SIZE,
    "max_num_seqs": 64,
    "max_num_batched_tokens": 512,
    "max_model_len": 65536,
    "enable_chunked_prefill": True,
    "enable_prefix_caching": True,
    "long_prefill_token_threshold": 0,
    "watermark": 0.0,
    "scheduler_reserve_full_isl": True,
}


def _blocks_for_all(requests: list[dict]) -> int:
    return sum(-(-(r["num_prompt_tokens"] + r["num_output_tokens"]) // BLOCK_SIZE) for r in requests) + 1


def _arrivals(rng: np.random.Generator, num: int, mean_gap_steps: float) -> list[int]:
    """Poisson arrivals in whole steps, the first at step 0."""
    if mean_gap_steps <= 0:
        return [0] * num
    gaps = rng.exponential(mean_gap_steps, num)
    gaps[0] = 0.0
    return [int(s) for s in np.floor(np.cumsum(gaps))]


def _requests(arrivals, prompts, outputs, hashes=None) -> list[dict]:
    out = []
    for i, (a, p, o) in enumerate(zip(arrivals, prompts, outputs)):
        spec = {"index": i, "arrival_step": int(a), "num_prompt_tokens": int(p), "num_output_tokens": int(o)}
        if hashes is not None and hashes[i]:
            spec["chunk_hashes"] = [int(h) for h in hashes[i]]
        out.append(spec)
    return out


def decode_heavy(rng):
    n = 200
    reqs = _requests(_arrivals(rng, n, 2.0), rng.integers(16, 129, n), rng.integers(64, 513, n))
    return {"max_num_seqs": 64, "max_num_batched_tokens": 512}, reqs, 0.25


def long_prompts(rng):
    n = 60
    reqs = _requests(_arrivals(rng, n, 6.0), rng.integers(1000, 4001, n), rng.integers(32, 513, n))
    return {"max_num_seqs": 16, "max_num_batched_tokens": 256}, reqs, 0.1


def shared_prefixes(rng):
    """8 system prompts of 1 to 4 chunks; each request adds its own 16 to 600 tokens (own: not shared)."""
    n = 200
    groups = [list(range(100 * g, 100 * g + int(rng.integers(1, 5)))) for g in range(8)]
    hashes, prompts = [], []
    for _ in range(n):
        g = groups[int(rng.integers(0, len(groups)))]
        hashes.append(g)
        prompts.append(len(g) * CHUNK_TOKENS + int(rng.integers(16, 601)))
    reqs = _requests(_arrivals(rng, n, 3.0), prompts, rng.integers(16, 257, n), hashes)
    return {"max_num_seqs": 32, "max_num_batched_tokens": 1024}, reqs, 0.03


def preemption_storm(rng):
    """Everything arrives at once, outputs long: with few blocks, the newest are preempted again and again."""
    n = 100
    reqs = _requests([0] * n, rng.integers(32, 257, n), rng.integers(200, 801, n))
    return {"max_num_seqs": 64, "max_num_batched_tokens": 2048}, reqs, 0.08


def long_prefill_threshold(rng):
    n = 80
    prompts = np.where(rng.random(n) < 0.5, rng.integers(16, 64, n), rng.integers(1500, 3000, n))
    reqs = _requests(_arrivals(rng, n, 4.0), prompts, rng.integers(16, 129, n))
    return {"max_num_seqs": 32, "max_num_batched_tokens": 512, "long_prefill_token_threshold": 128}, reqs, 0.1


def no_chunking(rng):
    """Chunked prefill off: whole prompts, mixed with decodes (v1), the budget at max_model_len."""
    n = 120
    reqs = _requests(_arrivals(rng, n, 3.0), rng.integers(16, 2001, n), rng.integers(16, 257, n))
    return {"max_num_seqs": 32, "enable_chunked_prefill": False}, reqs, 0.1


def mooncake_slice(rng):
    """The first 100 requests of the bundled mooncake-synthetic trace (with its hash ids), 100 ms of the trace
    per step (prompts of 13,000 tokens on average: at 10 ms per step the slice would be mostly idle). Under
    pressure it has the fewest blocks that serve its longest request (about 56,000 tokens): its big prompts
    evict the shared prefixes."""
    from kvsim.traces import load_trace

    trace = load_trace("mooncake-synthetic")
    n = 100
    arrivals = [int(np.ceil(t / 0.1 - 1e-9)) for t in trace.arrival_s[:n] - trace.arrival_s[0]]
    reqs = _requests(
        arrivals,
        trace.num_prompt_tokens[:n],
        trace.num_output_tokens[:n],
        [list(h) if h else None for h in trace.prefix_block_hashes[:n]],
    )
    return {"max_num_seqs": 64, "max_num_batched_tokens": 2048}, reqs, 0.0


def random_mix(seed: int):
    """A random configuration (budget, max_num_seqs, threshold, chunking, prefix caching) over a random mix of
    short and long prompts, some sharing 512-token prefixes: configurations no hand-made case has."""

    def build(rng):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(40, 121))
        chunked = bool(rng.random() < 0.7)
        overrides = {
            "max_num_seqs": int(rng.choice([4, 16, 64])),
            "max_num_batched_tokens": int(rng.choice([64, 128, 512, 2048])),
            "long_prefill_token_threshold": int(rng.choice([0, 0, 32, 256])) if chunked else 0,
            "enable_chunked_prefill": chunked,
            "enable_prefix_caching": bool(rng.random() < 0.7),
        }
        groups = [list(range(1000 * g, 1000 * g + int(rng.integers(1, 4)))) for g in range(4)]
        hashes, prompts = [], []
        for _ in range(n):
            if rng.random() < 0.4:
                g = groups[int(rng.integers(0, len(groups)))]
                hashes.append(g)
                prompts.append(len(g) * CHUNK_TOKENS + int(rng.integers(1, 300)))
            else:
                hashes.append(None)
                prompts.append(
                    int(rng.integers(1, 40)) if rng.random() < 0.3 else int(rng.integers(40, 2500))
                )
        outputs = rng.integers(1, 400, n)
        reqs = _requests(_arrivals(rng, n, float(rng.choice([0.0, 1.0, 5.0]))), prompts, outputs, hashes)
        return overrides, reqs, float(rng.choice([0.05, 0.1, 0.2]))

    return build


def hybrid(layer_types: list[str], window: int, pressure_share: float, max_num_seqs: int = 16):
    """A model with sliding-window layers (``layer_types``, ``window`` tokens): vLLM v1's hybrid KV-cache
    manager, one block table per KV-cache group, all from one pool. Prompts of 16 to 2,000 tokens (most longer
    than the window, so window groups free blocks while the prompt is still being prefilled), a third sharing
    512-token prefixes (a window hit needs only the blocks of the window before it)."""

    def build(rng):
        n = 80
        groups = [list(range(100 * g, 100 * g + int(rng.integers(1, 3)))) for g in range(3)]
        hashes, prompts = [], []
        for _ in range(n):
            if rng.random() < 0.3:
                g = groups[int(rng.integers(0, len(groups)))]
                hashes.append(g)
                prompts.append(len(g) * CHUNK_TOKENS + int(rng.integers(1, 400)))
            else:
                hashes.append(None)
                prompts.append(int(rng.integers(16, 2001)))
        reqs = _requests(_arrivals(rng, n, 4.0), prompts, rng.integers(16, 400, n), hashes)
        overrides = {
            "max_num_seqs": max_num_seqs,
            "max_num_batched_tokens": 256,
            "layer_types": list(layer_types),
            "sliding_window": window,
        }
        return overrides, reqs, pressure_share

    return build


def num_kv_cache_groups(layer_types: list[str]) -> int:
    """vLLM's number of KV-cache groups for ``layer_types`` (``kvsim.simulator.kv_groups``' rule): each type
    cut into groups of the rarest type's layer count (the commonest's when under 1.5 times the rarest)."""
    counts = [layer_types.count(kind) for kind in dict.fromkeys(layer_types)]
    size = min(counts)
    if max(counts) < 1.5 * size:
        size = max(counts)
    return sum(-(-c // size) for c in counts)


# name -> builder(rng) -> (config overrides, requests, share of _blocks_for_all under pressure)
WORKLOADS = {
    "decode-heavy": decode_heavy,
    "long-prompts": long_prompts,
    "shared-prefixes": shared_prefixes,
    "preemption-storm": preemption_storm,
    "long-prefill-threshold": long_prefill_threshold,
    "no-chunking": no_chunking,
    "mooncake-slice": mooncake_slice,
    **{f"random-{seed}": random_mix(seed) for seed in range(1, 5)},
    # gpt-oss / Gemma 2: sliding and full layers interleaved 1:1 (2 groups)
    "hybrid-interleaved": hybrid(["sliding_attention", "full_attention"] * 2, 256, 0.1),
    # Gemma 3: 5 sliding layers per full one (6 groups of 1 layer)
    "hybrid-5to1": hybrid(["sliding_attention"] * 5 + ["full_attention"], 384, 0.03),
    # Mistral 7B v0.1: the window on every layer (1 group); a request holds at most about 10 blocks, so
    # pressure comes from many at once (the floor of make_case is the longest request's full length)
    "hybrid-all-window": hybrid(["sliding_attention"] * 4, 128, 0.03, max_num_seqs=64),
}
MEMORY = ("roomy", "pressure")
# Not a case, with the reason (printed by `kvsim conformance vllm --list`).
NOT_CASES = {
    "parallel-sampling": (
        "vLLM v1's scheduler has no n > 1: its frontend (ParentRequest) fans a request out into n separate "
        "requests that share the prompt through the prefix cache, while kvsim forks one request's sequences "
        "after its prefill (copy-on-write); the per-step prompt tokens differ by construction"
    ),
}


def case_names() -> list[str]:
    return [f"{w}/{m}" for w in WORKLOADS for m in MEMORY]


def make_case(name: str) -> dict:
    """The case called ``name`` (``WORKLOAD/roomy`` or ``WORKLOAD/pressure``)."""
    workload, _, memory = name.partition("/")
    if workload not in WORKLOADS or memory not in MEMORY:
        reason = NOT_CASES.get(workload)
        if reason:
            raise KvsimError(f"conformance case {name!r} is not run: {reason}")
        raise KvsimError(f"unknown conformance case {name!r}; choose one of {', '.join(case_names())}")
    seed = sum(map(ord, workload))
    overrides, requests, pressure_share = WORKLOADS[workload](np.random.default_rng(seed))
    config = {**BASE_CONFIG, **overrides}
    longest = max(r["num_prompt_tokens"] + r["num_output_tokens"] for r in requests)
    config["max_model_len"] = max(config["max_model_len"], longest)
    if not config["enable_chunked_prefill"]:
        config["max_num_batched_tokens"] = max(config["max_num_batched_tokens"], config["max_model_len"])
    # a model with KV-cache groups: a request takes blocks in every group (window groups fewer)
    num_groups = num_kv_cache_groups(config["layer_types"]) if "layer_types" in config else 1
    all_blocks = _blocks_for_all(requests) * num_groups
    if memory == "roomy":
        num_blocks = all_blocks
    else:
        # at least the longest request alone, so that every request can run
        num_blocks = max(int(all_blocks * pressure_share), -(-longest // BLOCK_SIZE) * num_groups + 2)
    config["num_blocks"] = num_blocks
    return {"name": name, "config": config, "requests": requests}
