"""``kvsim plan``: max sustainable rate under SLOs, and the fewest GPUs / cheapest configuration for a target
rate (DESIGN §7, issue 7)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kvsim.cli.config_option import config_option
from kvsim.errors import KvsimError
from kvsim.simulator.plan.probe_trace import DEFAULT_MIN_DURATION_S, DEFAULT_MIN_REQUESTS_PER_REPLICA

EPILOG = """\b
Candidates: every combination of --gpu x --tp x --allocator (x any --grid FIELD=VALUES).
Without --target-rate: the max sustainable rate of one replica of each candidate.
With --target-rate (req/s, or Nx for N times the rate of the first --num-requests): the
fewest replicas that serve it, GPUs, cost, a ranked table and the Pareto front of cost
against latency at the target. The count is simulated, never extrapolated: it passes at
the target and one replica fewer fails there (the note says why).

\b
A probe (one simulation at one rate) passes when:
  - every --slo holds;
  - it keeps up: accepted requests finished >= 0.95 x those arrived, both counted over the
    last 2/3 of the arrivals (a backlog held in a growing batch shows here);
  - its queue does not grow: mean queueing delay of the last third of arrivals exceeds the
    first third's by more than 0.1 s and by more than 0.05 s per second of arrivals
    between them (an arrival rate over ~1.05x the service rate) -> fails;
  - it rejects no request (prompt + output over the context, ...), unless --allow-rejections.
Each probe spans at least --min-duration-s of arrivals (300 s) and --min-requests-per-replica
(1000): when the first --num-requests arrive sooner at the probed rate, the probe takes the
requests that follow them in the trace, and cycles the whole trace when it runs out (the
plan's notes and probes say which). Max rate: bisection on the rate until the bracket
[pass, fail) is narrower than --rel-tol x the passing rate.

\b
Example (what-if: vAttention 64 KiB pages vs paged blocks of 16 on H100s):
  kvsim plan --trace azure-conv --num-requests 1000 --model llama-3.1-8b --gpu h100-sxm \\
    --allocator paged:block_size=16 --allocator vattention:page_size=64KiB \\
    --slo ttft_p99=2s --target-rate 3x
  The same from a file: kvsim plan --config plan.yaml, with
    trace: azure-conv
    num_requests: 1000
    model: llama-3.1-8b
    gpu: h100-sxm
    allocator: ["paged:block_size=16", "vattention:page_size=64KiB"]
    slo: {ttft_p99: 2s}
    target_rate: 3x
"""


@click.command(epilog=EPILOG)
@config_option
@click.option("--trace", required=True, help="Bundled trace name or file path.")
@click.option(
    "--num-requests",
    type=int,
    default=1000,
    show_default=True,
    help="First N requests of the trace: the rate that Nx multiplies, and the least a probe simulates "
    "(more of the trace when they span less than --min-duration-s at the probed rate).",
)
@click.option(
    "--model", default=None, help="Model preset or Hugging Face config.json path (default: SimConfig's)."
)
@click.option("--gpu", "gpus", multiple=True, help="GPU preset (repeatable); default: SimConfig's.")
@click.option("--tp", "tps", type=int, multiple=True, help="Tensor-parallel degree (repeatable); default 1.")
@click.option("--allocator", "allocators", multiple=True, help="Allocator spec (repeatable); default paged.")
@click.option("--grid", "grid_options", multiple=True, metavar="FIELD=VALUES", help="More swept settings.")
@click.option(
    "--set", "set_options", multiple=True, metavar="FIELD=VALUE", help="Fixed SimConfig/trace field."
)
@click.option(
    "--slo",
    "slo_options",
    multiple=True,
    required=True,
    metavar="METRIC_STAT=VALUE",
    help="e.g. ttft_p99=2s, tpot_p99=100ms, queueing_delay_p99=1s (repeatable).",
)
@click.option("--target-rate", default=None, help="Rate to serve: req/s, or Nx (N times the trace's rate).")
@click.option("--price", "price_options", multiple=True, metavar="GPU=USD", help="USD per GPU-hour.")
@click.option(
    "--rel-tol", type=float, default=0.02, show_default=True, help="Relative tolerance of the max rate."
)
@click.option("--start-rate", type=float, default=None, help="First rate probed (default: the trace's rate).")
@click.option(
    "--min-duration-s",
    type=float,
    default=DEFAULT_MIN_DURATION_S,
    show_default=True,
    help="Least span of arrivals a probe simulates, seconds at the probed rate.",
)
@click.option(
    "--min-requests-per-replica",
    type=int,
    default=DEFAULT_MIN_REQUESTS_PER_REPLICA,
    show_default=True,
    help="Least requests a probe simulates per replica.",
)
@click.option(
    "--allow-rejections/--no-allow-rejections",
    default=False,
    show_default=True,
    help="Plan for the accepted requests of a configuration that rejects some (default: infeasible).",
)
@click.option(
    "--latency",
    "latency_metric",
    default="ttft_p99_s",
    show_default=True,
    type=click.Choice(["ttft_p99_s", "tpot_p99_s", "e2e_p99_s", "queueing_delay_p99_s"]),
    help="Latency at the target rate for the Pareto front.",
)
@click.option("--jobs", type=int, default=1, show_default=True, help="Candidates searched at once.")
@click.option("--ray-address", default=None, help="Search candidates on a Ray cluster.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write plan.csv and plan.json (with every probe) here.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Clear what kvsim wrote in --out (run folders, a sweep, an earlier plan) before planning.",
)
@click.option(
    "--uncertainty/--no-uncertainty",
    default=False,
    show_default=True,
    help="Also search each candidate at the cost model's pessimistic and optimistic corners (each term at the end "
    "that lowers / raises its throughput): GPU counts and max rates as ranges, and the recommendation that meets "
    "the SLOs across the range beside the nominal one.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def plan(
    trace,
    num_requests,
    model,
    gpus,
    tps,
    allocators,
    grid_options,
    set_options,
    slo_options,
    target_rate,
    price_options,
    rel_tol,
    start_rate,
    min_duration_s,
    min_requests_per_replica,
    allow_rejections,
    latency_metric,
    jobs,
    ray_address,
    out_dir,
    overwrite,
    uncertainty,
    progress,
):
    """Max sustainable rate under SLOs; fewest GPUs and cheapest configuration for a target rate."""
    from kvsim.cli.sweep import _parse_sets
    from kvsim.simulator.config import SimConfig
    from kvsim.simulator.plan.capacity import PlanSettings, pareto_front, ranked, run_plan
    from kvsim.simulator.plan.prices import DEFAULT_USD_PER_GPU_HOUR, parse_prices, price_per_gpu_hour
    from kvsim.simulator.sweep.grid import Grid
    from kvsim.simulator.sweep.point import Workload, known_fields
    from kvsim.traces import mean_rate_per_s

    if out_dir is not None:  # refused before any simulation, not after an hour of them
        _claim_out(out_dir, overwrite)
    base = {"trace": trace, "num_requests": num_requests, **_parse_sets(set_options)}
    if model:
        base["model"] = model
    unknown = sorted(set(base) - set(known_fields()))
    if unknown or "rate" in base or "rate_scale" in base:
        raise KvsimError(
            f"--set {', '.join(unknown) or 'rate'}: not a settable field here (plan chooses rates; "
            f"known: {', '.join(sorted(known_fields()))})"
        )
    # built from tuples, not option strings: an allocator spec may hold ',' and ':' of its own
    dimensions = [
        (name, tuple(values))
        for name, values in (("gpu", gpus), ("tp", tps), ("allocator", allocators))
        if values
    ]
    candidates = Grid(tuple(dimensions)).merged(Grid.from_options(grid_options))
    if any(name in base for name in candidates.names):
        raise KvsimError("a field is both fixed (--set/--model) and a candidate dimension; keep one")
    workload = Workload(
        **{k: v for k, v in base.items() if k in ("trace", "trace_format", "trace_columns", "num_requests")}
    )
    first = workload.load()
    native_rate = mean_rate_per_s(first)
    target = _target_rate(target_rate, native_rate)
    settings = PlanSettings(
        slos=tuple(slo_options),
        target_rate_per_s=target,
        start_rate_per_s=start_rate if start_rate is not None else (native_rate or 1.0),
        rel_tol=rel_tol,
        min_duration_s=min_duration_s,
        min_requests_per_replica=min_requests_per_replica,
        allow_rejections=allow_rejections,
    )
    prices = parse_prices(price_options)
    for point in candidates.points():  # a missing price fails now, not after every simulation has run
        price_per_gpu_hour(str(point.get("gpu", base.get("gpu", SimConfig.gpu))), prices)
    models = {str(base.get("model", SimConfig.model))}
    gpu_names = sorted({str(p.get("gpu", base.get("gpu", SimConfig.gpu))) for p in candidates.points()})
    click.echo(
        f"plan: {len(candidates)} candidate(s) of {', '.join(sorted(models))} on {', '.join(gpu_names)}, "
        f"SLOs {', '.join(slo_options)}, trace {trace} (first {len(first)} requests, own rate "
        f"{_fmt(native_rate)} req/s)" + (f", target {target:.4g} req/s" if target else ""),
        err=True,
    )
    click.echo(
        f"probes: at least {min_duration_s:g} s of arrivals and {min_requests_per_replica} requests per replica "
        f"at each rate (more of the trace after the first {len(first)}, cycled when it runs out)"
        + ("; rejections allowed" if allow_rejections else "; a rejected request makes a probe fail"),
        err=True,
    )
    rows = run_plan(candidates, base, settings, prices, jobs=jobs, ray_address=ray_address, progress=progress)

    latency_key = f"target_{latency_metric}" if target else latency_metric
    if target:
        _print_rows(
            "Ranked (feasible by total cost, then GPUs, then latency)",
            ranked(rows, latency_key),
            [
                "label",
                "max_sustainable_rate_per_s",
                "num_replicas",
                "num_gpus",
                "total_cost_per_hour_usd",
                latency_key,
                "target_tpot_p99_s",
                "target_num_rejected",
                "note",
            ],
        )
        _print_rows(
            f"Pareto front (total cost vs {latency_metric} at the target)",
            pareto_front(rows, latency_key),
            ["label", "num_gpus", "total_cost_per_hour_usd", latency_key],
        )
        _print_what_if(rows, candidates.names)
    else:
        _print_rows(
            "Max sustainable rate of one replica (latencies at that rate)",
            rows,
            [
                "label",
                "max_sustainable_rate_per_s",
                "cost_per_hour_usd",
                "ttft_p99_s",
                "tpot_p99_s",
                "num_rejected",
                "search",
            ],
        )
    judged = None
    if uncertainty:
        judged = _plan_uncertainty(
            candidates,
            base,
            settings,
            prices,
            rows,
            latency_key,
            jobs=jobs,
            ray_address=ray_address,
            progress=progress,
        )
    used = {str(r["gpu"]) for r in rows if "gpu" in r} - set(prices)
    for gpu in sorted(used & set(DEFAULT_USD_PER_GPU_HOUR)):
        usd, source = DEFAULT_USD_PER_GPU_HOUR[gpu]
        click.echo(f"price {gpu}: ${usd}/GPU-hour ({source}); override with --price {gpu}=USD")
    if out_dir is not None:
        _write(out_dir, rows, settings, base, latency_key, target, judged)
    failed = [r for r in rows if r["status"] != "ok"]
    for row in failed:
        click.echo(f"candidate {row['label']} failed: {row['error']}", err=True)
    if len(failed) == len(rows):
        raise KvsimError("every candidate failed (see above)")


def _target_rate(text: str | None, native_rate: float | None) -> float | None:
    if text is None:
        return None
    scale = text.strip().lower().endswith("x")
    try:
        value = float(text.strip()[:-1] if scale else text)
    except ValueError as exc:
        raise KvsimError(
            f"--target-rate {text!r}: give req/s (e.g. 12.5) or a multiple of the trace's rate (3x)"
        ) from exc
    if scale:
        if native_rate is None:
            raise KvsimError(f"--target-rate {text}: the trace spans no time, so it has no rate to multiply")
        return value * native_rate
    return value


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_rows(title: str, rows, keys) -> None:
    click.echo(f"\n{title}")
    lines = [keys] + [
        [
            _fmt(r.get(k))
            if r.get("status") == "ok" or k == "label"
            else (r.get("error", "")[:60] if k == keys[1] else "")
            for k in keys
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(keys))]
    for line in lines:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def _print_what_if(rows, names) -> None:
    """Per allocator (when several): the fewest GPUs and the cheapest feasible candidate with it."""
    if "allocator" not in names:
        return
    click.echo("\nBy allocator (fewest GPUs; cheapest at that count)")
    best = {}
    for row in rows:
        if row.get("feasible"):
            key = (row["num_gpus"], row["total_cost_per_hour_usd"])
            if row["allocator"] not in best or key < best[row["allocator"]][0]:
                best[row["allocator"]] = (key, row)
    for row in rows:
        allocator = row["allocator"]
        if allocator in best and best[allocator][1] is row:
            click.echo(
                f"  {allocator}: {row['num_gpus']} GPU{'s' * (row['num_gpus'] > 1)} ({row['label']}), "
                f"${row['total_cost_per_hour_usd']:.2f}/h"
            )
        elif allocator not in best and row is next(r for r in rows if r["allocator"] == allocator):
            click.echo(f"  {allocator}: no feasible candidate")
    if len(best) >= 2:
        (first, (k1, _)), (second, (k2, _)) = sorted(best.items(), key=lambda kv: kv[1][0])[:2]
        fewer = k2[0] - k1[0]
        count = f"{fewer} fewer GPU{'s' if fewer > 1 else ''} than" if fewer else "as many GPUs as"
        click.echo(f"  {first} needs {count} {second}, ${k2[1] - k1[1]:.2f}/h less")


def _claim_out(out_dir: Path, overwrite: bool) -> None:
    """One command's results per --out (docs/outputs.md "Writing"): an empty folder, or an earlier plan's, whose
    plan.csv and plan.json are replaced whole; run folders or another command's files are refused unless
    --overwrite clears them."""
    from kvsim.simulator.out_folder import clear_outputs, commands_in, make_out_folder, run_folders_in

    make_out_folder(out_dir)
    if overwrite:
        clear_outputs(out_dir)
        return
    others = [cmd for cmd in commands_in(out_dir) if cmd != "plan"]
    folders = run_folders_in(out_dir)
    if others or folders:
        what = ", ".join(
            [*(f"results of kvsim {cmd}" for cmd in others), *(f"run folder {p.name}" for p in folders)]
        )
        raise KvsimError(
            f"--out {out_dir} holds {what}; a plan would sit beside them as if one study. Choose an empty "
            f"--out, or add --overwrite to clear kvsim's outputs there first"
        )


def _plan_uncertainty(candidates, base, settings, prices, rows, latency_key, *, jobs, ray_address, progress):
    """--uncertainty: the corners per candidate, the searches at each, the ranges and recommendations printed;
    returns what plan.json keeps (``uncertainty``)."""
    from kvsim.simulator.plan.capacity import ranked, run_plan
    from kvsim.simulator.uncertainty import plan as uncertain_plan

    corners = uncertain_plan.corners(candidates, base, settings, rows, jobs=jobs, ray_address=ray_address)
    searches = {}
    for corner in ("pessimistic", "optimistic"):
        values = [c[corner] for c in corners]
        searches[corner] = run_plan(
            candidates,
            base,
            settings,
            prices,
            jobs=jobs,
            ray_address=ray_address,
            progress=progress,
            term_values=values,
        )
    summary = uncertain_plan.summarize(
        rows, searches["pessimistic"], searches["optimistic"], ranked, latency_key
    )
    click.echo("\n".join(uncertain_plan.lines(summary)))
    return {"corners": corners, **summary, "searches": searches}


def _write(out_dir: Path, rows, settings, base, latency_key, target, judged=None) -> None:
    import csv
    from dataclasses import asdict

    from kvsim.simulator.out_folder import write_file_atomic, write_text_atomic
    from kvsim.simulator.plan.capacity import pareto_front

    keys = list(dict.fromkeys(k for r in rows for k in r if k != "probes"))

    def write_csv(path: Path) -> None:
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in keys})

    front = [r["index"] for r in pareto_front(rows, latency_key)] if target else []
    doc = {"settings": asdict(settings), "base": base, "pareto_front_indices": front, "candidates": rows}
    if judged is not None:  # --uncertainty: the corners, the searches at them, the ranges
        doc["uncertainty"] = judged
    # plan.json first: a reader takes plan.csv, so an interrupted write leaves no new csv without its json
    write_text_atomic(
        out_dir / "plan.json", json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n", "plan"
    )
    write_file_atomic(out_dir / "plan.csv", write_csv, "plan table")
    click.echo(f"\nwrote {out_dir / 'plan.csv'} and {out_dir / 'plan.json'}")
