"""``kvsim reproduce vllm-blog``: vLLM v0.6.0's published serving measurements (the development set).

The numbers: ``kvsim/cli/data/vllm-blog-v060.json``, a copy of ``../shared/validation/vllm-blog-v060.json`` (the
vLLM blog of 2024-09-05, "vLLM v0.6.0: 2.7x Throughput Improvement and 5x Latency Reduction", read off its
figures; its ``source`` and ``how_read`` fields say how). Every row is simulated with the deployment's settings
and nothing tuned to these numbers:

- model, GPU and TP as the row says (8B on one GPU, 70B at TP 4); vLLM v0.6.0's defaults as kvsim's
  scheduler has them (``vllm-v0`` where it exists, else ``vllm``): ``max_num_seqs`` 256, chunked prefill off
  (v0.6.0 turns it on only above a 32K context), ``gpu_memory_utilization`` 0.9, paged blocks of 16, no prefix
  caching. ``--num-scheduler-steps 10`` (multi-step scheduling) is not modelled by kvsim yet: the row's engine
  ran it, kvsim does not.
- lengths: ShareGPT: 500 rows of kvsim's bundled ShareGPT length dataset (sarathi-serve's 8K-filtered
  ShareGPT, Llama-2 tokenizer; means 2,340 / 439 tokens), drawn with the seed, each length scaled by the
  stated mean over the dataset's mean (202 / 179 tokens: the post's numbers), rounded, at least 1: the
  dataset's shape at the post's means. Sonnet workloads: every request 462 input tokens and 256 (decode-heavy)
  or 16 (prefill-heavy) output tokens (the post's "about": sonnet prompts vary little).
- arrivals: Poisson at each QPS, 500 requests; QPS inf: all 500 at time 0 (vLLM's benchmark_serving).
Printed: throughput (req/s) at QPS inf, mean TPOT at every QPS, mean TTFT at QPS inf, kvsim beside the
published number and their ratio.
"""

from __future__ import annotations

import json
import math
from importlib.resources import files

import click
import numpy as np

NUM_REQUESTS = 500
DATA_FILE = "vllm-blog-v060.json"
GPU_NAMES = {"h100-sxm": "H100", "a100-80gb": "A100"}
FIXED_LENGTHS = {"decode-heavy": (462, 256), "prefill-heavy": (462, 16)}  # (input, output) tokens
SHAREGPT_MEANS = (202.0, 179.0)  # the post's ShareGPT means (input, output)


def load_rows() -> dict:
    """The shipped copy of the development set."""
    return json.loads(files("kvsim.cli").joinpath("data", DATA_FILE).read_text(encoding="utf-8"))


def scheduler_name() -> str:
    """``vllm-v0`` (vLLM v0.6.x) where kvsim has it, else ``vllm``."""
    from kvsim.simulator.schedulers import SCHEDULERS

    return "vllm-v0" if "vllm-v0" in SCHEDULERS else "vllm"


def workload_lengths(workload: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(prompt tokens, output tokens) of the ``NUM_REQUESTS`` requests of one workload (module docstring)."""
    if workload in FIXED_LENGTHS:
        prompt, output = FIXED_LENGTHS[workload]
        return np.full(NUM_REQUESTS, prompt, dtype=np.int64), np.full(NUM_REQUESTS, output, dtype=np.int64)
    from kvsim.traces import load_length_table

    table = load_length_table("sharegpt")
    prompt_all, output_all = table.num_prompt_tokens, table.num_output_tokens
    rows = np.random.default_rng(seed).choice(len(prompt_all), NUM_REQUESTS, replace=False)
    scaled = []
    for lengths, mean in zip((prompt_all, output_all), SHAREGPT_MEANS):
        scale = mean / float(lengths.mean())
        scaled.append(np.maximum(1, np.rint(lengths[rows] * scale)).astype(np.int64))
    return scaled[0], scaled[1]


def make_trace(prompt: np.ndarray, output: np.ndarray, qps: float, seed: int):
    """Poisson arrivals at ``qps`` (all at time 0 for inf) over the given lengths."""
    from kvsim.traces.request import Provenance, Trace

    n = len(prompt)
    if math.isinf(qps):
        arrival_s = np.zeros(n)
    else:
        arrival_s = np.cumsum(np.random.default_rng(seed).exponential(1.0 / qps, n))
    return Trace(
        request_id=np.arange(n, dtype=np.int64),
        arrival_s=arrival_s,
        num_prompt_tokens=prompt,
        num_output_tokens=output,
        provenance=Provenance(source=f"vllm-blog workload, {n} requests at QPS {qps:g}, seed {seed}"),
    )


def simulate_row(row: dict, qps: float, seed: int, scheduler: str) -> dict:
    from kvsim.simulator import SimConfig, simulate

    prompt, output = workload_lengths(row["workload"], seed)
    config = SimConfig(model=row["model"], gpu=row["gpu"], tp=int(row["tp"]), scheduler=scheduler, seed=seed)
    return simulate(config, make_trace(prompt, output, qps, seed), keep_timeline=False).summary


def _pair(kvsim: float | None, published: float | None, digits: int) -> tuple[str, str, str]:
    if kvsim is None:
        return "-", _fmt(published, digits), "-"
    ratio = f"{kvsim / published:.2f}" if published else "-"
    return _fmt(kvsim, digits), _fmt(published, digits), ratio


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@click.command("vllm-blog", short_help="vLLM v0.6.0 blog (2024-09): throughput, TPOT, TTFT, 12 set-ups.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--row", "row_filter", default=None, help="Only rows whose 'model gpu workload' contains this.")
def vllm_blog(seed, row_filter):
    """Every row of the development set: kvsim beside the published number, with the ratio (kvsim ÷ published)."""
    from kvsim.cli.reproduce import _table  # (here: reproduce.py imports this module at its end)

    data = load_rows()
    scheduler = scheduler_name()
    click.echo(f"source: {data['source']}")
    click.echo(
        f"engine: {data['engine']}; kvsim scheduler {scheduler!r} (multi-step scheduling not modelled)"
    )
    header = ("model", "GPU", "TP", "workload", "metric", "QPS", "kvsim", "published", "ratio")
    rows, costs = [], {}
    for row in data["rows"]:
        label = f"{row['model']} {row['gpu']} {row['workload']}"
        if row_filter and row_filter not in label:
            continue
        head = (row["model"], GPU_NAMES.get(row["gpu"], row["gpu"]), str(row["tp"]), row["workload"])
        qps_values = list(row["mean_tpot_ms_by_qps"])
        if "inf" not in qps_values:
            qps_values.append("inf")
        summaries = {q: simulate_row(row, float(q), seed, scheduler) for q in qps_values}
        inf = summaries["inf"]
        costs[row["gpu"]] = inf["cost_model"]["description"]
        rows.append(
            (
                *head,
                "throughput req/s",
                "inf",
                *_pair(inf["throughput"]["requests_per_s"], row["throughput_req_s_at_qps_inf"], 2),
            )
        )
        for q in qps_values:
            tpot = summaries[q]["latency"]["tpot_s"]["mean"]
            published = row["mean_tpot_ms_by_qps"].get(q)
            if published is None:
                continue
            rows.append(
                (*head, "mean TPOT ms", q, *_pair(None if tpot is None else tpot * 1e3, published, 1))
            )
        ttft = inf["latency"]["ttft_s"]["mean"]
        rows.append(
            (
                *head,
                "mean TTFT ms",
                "inf",
                *_pair(None if ttft is None else ttft * 1e3, row["mean_ttft_ms_at_qps_inf"], 0),
            )
        )
    click.echo(_table(header, rows))
    for gpu, description in costs.items():
        click.echo(f"cost model ({gpu}): {description}")
