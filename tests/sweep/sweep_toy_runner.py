"""Cheap point runners for testing the sweep machinery without the simulator (module-level: picklable)."""

import json
from pathlib import Path


def toy_runner(config: dict, out_dir: Path) -> dict:
    """A summary computed from the config alone: p99 TTFT = rate × seed-derived jitter; fails on demand."""
    if config.get("fail"):
        raise RuntimeError(f"point asked to fail (rate={config['rate']})")
    jitter = (config["seed"] % 1000) / 1000.0
    summary = {
        "num_requests": 100,
        "num_finished": 100,
        "latency": {"ttft_s": {"mean": config["rate"] / 2, "p99": config["rate"] * (1 + jitter)}},
        "allocator": config.get("allocator", ""),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, sort_keys=True))
    (out_dir / "config.json").write_text(json.dumps(config, sort_keys=True))
    return summary


CALLS_LOG = "calls.log"


def counting_runner(config: dict, out_dir: Path) -> dict:
    """toy_runner that also appends the point's rate to a log file named in the config (to count runs)."""
    with open(config["log_path"], "a") as f:
        f.write(f"{config['rate']}\n")
    return toy_runner(config, out_dir)


def dying_runner(config: dict, out_dir: Path) -> dict:
    """toy_runner whose worker process dies outright at rate 2 (as if killed for memory)."""
    if config["rate"] == 2:
        import os

        os._exit(1)
    return toy_runner(config, out_dir)
