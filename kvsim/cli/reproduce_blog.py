"""``kvsim reproduce vllm-blog``: vLLM v0.6.0's published serving measurements (the development set).

The numbers: ``kvsim/cli/data/vllm-blog-v060.json``, a copy of ``../shared/validation/vllm-blog-v060.json`` (the
vLLM blog of 2024-09-05, "vLLM v0.6.0: 2.7x Throughput Improvement and 5x Latency Reduction", read off its
figures; its ``source`` and ``how_read`` fields say how). Every row is simulated with the deployment's settings
and nothing tuned to these numbers:

- model, GPU and TP as the row says (8B on one GPU, 70B at TP 4); vLLM v0.6.0's defaults as kvsim's
  scheduler has them (``vllm-v0`` where it exists, else ``vllm``): ``max_num_seqs`` 256, chunked prefill off
  (v0.6.0 turns it on only above a 32K context), ``gpu_memory_utilization`` 0.9, paged blocks of 16, no prefix
  caching; ``--num-scheduler-steps 10`` as the post's runs (multi-step scheduling, ``num_scheduler_steps``);
  the engine's host time from ``simulator/engine_overhead.py``'s ``vllm-v0`` terms (``engine_overhead``), some
  of them FITTED on this set's H100 rows (least squares over log ratios of ``row_ratios`` at the points
  ``fitted_point`` keeps, docs/validation.md; the A100 rows are predicted). ``--no-engine-overhead`` runs the
  GPU's step with the cost model's former 1 ms placeholder instead (multi-step scheduling stays on).
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


FIT_GPUS = (
    "h100-sxm",
)  # the rows vllm-v0's fitted engine parameters were fitted on; the others are predicted
NUM_SCHEDULER_STEPS = 10  # the post's runs: --num-scheduler-steps 10 (the data file's ``engine``)


def row_config(row: dict, seed: int, scheduler: str, *, engine_overhead: bool = True):
    """The deployment of ``row`` as kvsim runs it (module docstring)."""
    from kvsim.simulator import SimConfig

    return SimConfig(
        model=row["model"],
        gpu=row["gpu"],
        tp=int(row["tp"]),
        scheduler=scheduler,
        seed=seed,
        num_scheduler_steps=NUM_SCHEDULER_STEPS if scheduler == "vllm-v0" else 1,
        engine_overhead=engine_overhead,
    )


def simulate_row(row: dict, qps: float, seed: int, scheduler: str, *, engine_overhead: bool = True) -> dict:
    from kvsim.simulator import simulate

    prompt, output = workload_lengths(row["workload"], seed)
    config = row_config(row, seed, scheduler, engine_overhead=engine_overhead)
    return simulate(config, make_trace(prompt, output, qps, seed), keep_timeline=False).summary


MEAN_OUTPUT_TOKENS = {"sharegpt": SHAREGPT_MEANS[1], **{w: float(o) for w, (_, o) in FIXED_LENGTHS.items()}}
V060_MAX_NUM_SEQS = 256  # vLLM v0.6.0's default max_num_seqs


def implied_decode_concurrency(row: dict, qps: str) -> float:
    """Sequences decoding at once on average that the published numbers imply (Little's law): served
    requests/s × mean TPOT × (mean output − 1). A value above ``max_num_seqs`` cannot come from a 256-sequence
    engine generating the stated lengths: such a TPOT is left out of the fit and explained, not fitted."""
    served = (
        row["throughput_req_s_at_qps_inf"]
        if qps == "inf"
        else min(float(qps), row["throughput_req_s_at_qps_inf"])
    )
    tpot_s = row["mean_tpot_ms_by_qps"][qps] / 1e3
    return served * tpot_s * (MEAN_OUTPUT_TOKENS[row["workload"]] - 1)


def fitted_point(row: dict, qps: str) -> bool:
    """Whether a published mean TPOT enters the fit: not where no 256-sequence engine could show it
    (``implied_decode_concurrency``), nor under overload (QPS at or above the row's throughput at QPS inf: the
    queue grows for the whole run, so the TPOT is a transient of its 500 requests, set by how v0.6.0 interleaves
    the queue's prefills with the decodes, not a steady state)."""
    if implied_decode_concurrency(row, qps) > V060_MAX_NUM_SEQS:
        return False
    return qps != "inf" and float(qps) < row["throughput_req_s_at_qps_inf"]


def row_ratios(row: dict, seed: int, scheduler: str, *, engine_overhead: bool = True) -> dict[str, float]:
    """kvsim ÷ published of one row's fitted metrics: ``throughput inf`` and ``tpot <qps>`` for every QPS."""
    ratios = {}
    for q, published in row["mean_tpot_ms_by_qps"].items():
        summary = simulate_row(row, float(q), seed, scheduler, engine_overhead=engine_overhead)
        ratios[f"tpot {q}"] = summary["latency"]["tpot_s"]["mean"] * 1e3 / published
        if q == "inf":
            ratios["throughput inf"] = (
                summary["throughput"]["requests_per_s"] / row["throughput_req_s_at_qps_inf"]
            )
    if "throughput inf" not in ratios:
        summary = simulate_row(row, float("inf"), seed, scheduler, engine_overhead=engine_overhead)
        ratios["throughput inf"] = (
            summary["throughput"]["requests_per_s"] / row["throughput_req_s_at_qps_inf"]
        )
    return ratios


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
@click.option(
    "--engine-overhead/--no-engine-overhead",
    default=True,
    show_default=True,
    help="The engine's host time (simulator/engine_overhead.py, partly fitted on the H100 rows); off: the GPU's "
    "step and the cost model's 1 ms placeholder.",
)
def vllm_blog(seed, row_filter, engine_overhead):
    """Every row of the development set: kvsim beside the published number, with the ratio (kvsim ÷ published).
    Rows: ``fit`` where the engine's fitted parameters were fitted on them (H100), ``pred`` where predicted
    (A100); ``n/a`` for a TPOT left out of the fit (``fitted_point``: overload, or no 256-sequence engine could
    show it)."""
    from kvsim.cli.reproduce import _table  # (here: reproduce.py imports this module at its end)

    data = load_rows()
    scheduler = scheduler_name()
    click.echo(f"source: {data['source']}")
    steps = NUM_SCHEDULER_STEPS if scheduler == "vllm-v0" else 1
    click.echo(f"engine: {data['engine']}; kvsim scheduler {scheduler!r}, num_scheduler_steps {steps}")
    header = ("model", "GPU", "TP", "workload", "metric", "QPS", "kvsim", "published", "ratio", "set")
    rows, costs = [], {}
    for row in data["rows"]:
        label = f"{row['model']} {row['gpu']} {row['workload']}"
        if row_filter and row_filter not in label:
            continue
        head = (row["model"], GPU_NAMES.get(row["gpu"], row["gpu"]), str(row["tp"]), row["workload"])
        qps_values = list(row["mean_tpot_ms_by_qps"])
        if "inf" not in qps_values:
            qps_values.append("inf")
        summaries = {
            q: simulate_row(row, float(q), seed, scheduler, engine_overhead=engine_overhead)
            for q in qps_values
        }
        inf = summaries["inf"]
        costs[row["gpu"]] = inf["cost_model"]["description"]
        kind = ("fit" if row["gpu"] in FIT_GPUS else "pred") if engine_overhead else "pred"
        rows.append(
            (
                *head,
                "throughput req/s",
                "inf",
                *_pair(inf["throughput"]["requests_per_s"], row["throughput_req_s_at_qps_inf"], 2),
                kind,
            )
        )
        for q in qps_values:
            tpot = summaries[q]["latency"]["tpot_s"]["mean"]
            published = row["mean_tpot_ms_by_qps"].get(q)
            if published is None:
                continue
            consistent = fitted_point(row, q)
            rows.append(
                (
                    *head,
                    "mean TPOT ms",
                    q,
                    *_pair(None if tpot is None else tpot * 1e3, published, 1),
                    kind if consistent else "n/a",
                )
            )
        ttft = inf["latency"]["ttft_s"]["mean"]
        rows.append(
            (
                *head,
                "mean TTFT ms",
                "inf",
                *_pair(None if ttft is None else ttft * 1e3, row["mean_ttft_ms_at_qps_inf"], 0),
                "-",
            )
        )
    click.echo(_table(header, rows))
    for gpu, description in costs.items():
        click.echo(f"cost model ({gpu}): {description}")
