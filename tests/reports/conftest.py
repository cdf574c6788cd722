"""Synthetic run folders in exactly the format of docs/outputs.md, for report tests that must not wait on (or
be slowed by) the simulator. Numbers are plausible, not simulated: the memory parts of every timeline row sum
to capacity, latencies are positive, a few requests are rejected, and empty cells appear where the format says."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from kvsim.reports.runs import REQUEST_COLUMNS, TIMELINE_COLUMNS

CAPACITY_BYTES = 12 * 2**30


def write_run_dir(
    path: Path,
    *,
    label: str = "paged:block_size=16",
    num_requests: int = 200,
    num_timeline_rows: int = 300,
    num_replicas: int = 1,
    saturated: bool = True,
    source: str = "roofline",
    rate_per_s: float = 2.0,
    seed: int = 0,
) -> Path:
    """Write one run folder at ``path`` and return it."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    cost_model = {"source": source, "description": f"{source} profile for a100-40gb"}
    config = {
        "model": "opt-13b",
        "gpu": "a100-40gb",
        "tp": 1,
        "num_replicas": num_replicas,
        "router": "round_robin",
        "scheduler": {"name": "vllm"},
        "allocator": {"spec": label},
        "trace": {"name": "sharegpt-like", "rate_per_s": rate_per_s},
        "seed": seed,
        "cost_model": cost_model,
        "slo": {"ttft_s": 2.0, "tpot_s": 0.1},
        "kvsim_version": "0.1.0",
    }
    (path / "config.json").write_text(json.dumps(config, sort_keys=True, indent=2))

    arrival_s = np.cumsum(rng.exponential(1 / rate_per_s, num_requests))
    ttft_s = rng.gamma(2.0, 0.2, num_requests)
    num_output = rng.integers(1, 400, num_requests)
    tpot_s = rng.uniform(0.02, 0.05, num_requests)
    rejected = np.zeros(num_requests, bool)
    rejected[rng.choice(num_requests, size=max(1, num_requests // 50), replace=False)] = True
    with (path / "requests.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(REQUEST_COLUMNS)
        for i in range(num_requests):
            if rejected[i]:
                w.writerow(
                    [
                        f"r{i}",
                        "",
                        arrival_s[i],
                        100,
                        num_output[i],
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        0,
                        0,
                        "",
                        "exceeds_kv_capacity",
                    ]
                )
                continue
            e2e = ttft_s[i] + tpot_s[i] * (num_output[i] - 1)
            tpot = "" if num_output[i] == 1 else tpot_s[i]
            w.writerow(
                [
                    f"r{i}",
                    i % num_replicas,
                    arrival_s[i],
                    100,
                    num_output[i],
                    arrival_s[i] + 0.01,
                    arrival_s[i] + ttft_s[i],
                    arrival_s[i] + e2e,
                    ttft_s[i],
                    tpot,
                    e2e,
                    e2e / num_output[i],
                    0.01,
                    0,
                    0,
                    0.0,
                    "",
                ]
            )

    t_end = float(arrival_s[-1]) + 30.0
    with (path / "timeline.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TIMELINE_COLUMNS)
        for replica in range(num_replicas):
            times = np.sort(rng.uniform(0, t_end, num_timeline_rows))
            times[0] = 0.0
            parts = np.floor(rng.dirichlet([6, 2, 1, 0.5, 3], size=num_timeline_rows) * CAPACITY_BYTES)
            parts[:, -1] = CAPACITY_BYTES - parts[:, :-1].sum(
                axis=1
            )  # the five parts sum to capacity exactly
            parts[-1] = [0, 0, 0, 0, CAPACITY_BYTES]
            waiting = rng.integers(0, 20, num_timeline_rows)
            batch = rng.integers(1, 40, num_timeline_rows)
            zeros = np.zeros(num_timeline_rows, dtype=np.int64)
            columns = [
                times,
                zeros + replica,
                *parts.astype(np.int64).T,
                zeros,
                batch,
                waiting,
                zeros,
                batch,
                batch * 3,
            ]
            w.writerows(zip(*(c.tolist() for c in columns)))

    def stats(x):
        x = x[np.isfinite(x)]
        return {
            "mean": float(x.mean()),
            "p50": float(np.quantile(x, 0.5)),
            "p90": float(np.quantile(x, 0.9)),
            "p99": float(np.quantile(x, 0.99)),
            "max": float(x.max()),
        }

    ok = ~rejected
    e2e = ttft_s + tpot_s * (num_output - 1)
    window = {
        "token_states": 0.55 * CAPACITY_BYTES,
        "reserved": 0.15 * CAPACITY_BYTES,
        "internal_frag": 0.05 * CAPACITY_BYTES,
        "external_frag": 0.0,
        "free": 0.25 * CAPACITY_BYTES,
        "cached_bytes": 0.0,
    }
    never = dict.fromkeys(window)
    summary = {
        "label": label,
        "allocator": label.split(":")[0],
        "scheduler": "vllm",
        "cost_model": cost_model,
        "num_requests": num_requests,
        "num_finished": int(ok.sum()),
        "num_rejected": int(rejected.sum()),
        "rejected_by_reason": {"exceeds_kv_capacity": int(rejected.sum())},
        "num_preemptions": 0,
        "duration_s": t_end,
        "throughput": {
            "requests_per_s": float(ok.sum() / t_end),
            "output_tokens_per_s": float(num_output[ok].sum() / t_end),
            "total_tokens_per_s": float((num_output[ok].sum() + 100 * ok.sum()) / t_end),
        },
        "latency": {
            "ttft_s": stats(ttft_s[ok]),
            "tpot_s": stats(tpot_s[ok]),
            "e2e_s": stats(e2e[ok]),
            "normalized_latency_s_per_token": stats(e2e[ok] / num_output[ok]),
            "queueing_delay_s": stats(np.full(ok.sum(), 0.01)),
        },
        "goodput": {"slo": config["slo"], "requests_per_s": float(ok.sum() / t_end), "fraction": 1.0},
        "memory": {
            "capacity_bytes": CAPACITY_BYTES,
            "whole_run": window,
            "saturated": {**window, "duration_s": 10.0} if saturated else {**never, "duration_s": 0.0},
            "peak_used_bytes": 0.9 * CAPACITY_BYTES,
        },
        "batch": {"mean_num_seqs": 20.0, "max_num_seqs": 39, "mean_num_batched_tokens": 60.0},
    }
    (path / "summary.json").write_text(json.dumps(summary, sort_keys=True, indent=2))
    return path


@pytest.fixture
def make_run(tmp_path):
    """``make_run(name, **options)`` -> a synthetic run folder under this test's tmp dir."""

    def make(name: str = "run", **options) -> Path:
        return write_run_dir(tmp_path / name, **options)

    return make
