"""Time ``kvsim.simulator.simulate`` (DESIGN §7b): the full azure-conv trace and a synthetic long trace.

    python benchmarks/bench_simulate.py                       # both cases, each in its own process
    python benchmarks/bench_simulate.py --case azure-conv
    python benchmarks/bench_simulate.py --case synthetic --num-requests 100000
    python benchmarks/bench_simulate.py --case azure-conv --repeat 5    # median of 5 fresh processes
    python benchmarks/bench_simulate.py --case azure-conv-h200  # the same on the H200's measured profile
    python benchmarks/bench_simulate.py --case synthetic --num-requests 200000 --set engine_overhead=false
                                                              # a variant: a SimConfig field of the case changed

Each case runs in a fresh subprocess so that its peak RSS is its own. Prints wall time, CPU time, simulated
requests per second (of wall time) and peak RSS; writes ``benchmarks/results/simulate.json`` with the
machine's description (CPU model, cores, load average: the numbers mean little on a busy machine).
Targets (issue 3): azure-conv under 1.5 s on one core; 1,000,000 requests under 60 s with memory that does
not grow with the trace's total tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "simulate.json"

# The azure-conv case of issue 3: CodeLlama-34B, TP 2, A100-80GB, vllm, paged, max_num_seqs 128.
AZURE_CONFIG = {
    "model": "codellama-34b",
    "gpu": "a100-80gb",
    "tp": 2,
    "scheduler": "vllm",
    "allocator": "paged",
    "max_num_seqs": 128,
}
# The same on an H200, whose measured profile (calibrate/profiles/) takes the cost model's measured-profile path:
# decode ramps, per-block terms, launch overlap.
AZURE_H200_CONFIG = {**AZURE_CONFIG, "gpu": "h200"}
# The synthetic case: Llama-2-7B on one A100-80GB at a rate it sustains, lengths uniform so that the
# trace's total tokens grow linearly with its length (the memory check compares two lengths).
SYNTHETIC_CONFIG = {"model": "llama-2-7b", "gpu": "a100-80gb", "scheduler": "vllm", "allocator": "paged"}
SYNTHETIC_RATE_PER_S = 5.0
SYNTHETIC_PROMPT_TOKENS = (32, 1024)  # uniform integers [low, high)
SYNTHETIC_OUTPUT_TOKENS = (16, 512)


def synthetic_trace(num_requests: int, seed: int = 0):
    import numpy as np

    from kvsim.traces.request import Provenance, Trace

    rng = np.random.default_rng(seed)
    return Trace(
        request_id=np.arange(num_requests, dtype=np.int64),
        arrival_s=np.cumsum(rng.exponential(1.0 / SYNTHETIC_RATE_PER_S, num_requests)),
        num_prompt_tokens=rng.integers(*SYNTHETIC_PROMPT_TOKENS, num_requests),
        num_output_tokens=rng.integers(*SYNTHETIC_OUTPUT_TOKENS, num_requests),
        provenance=Provenance(
            source=f"synthetic: Poisson {SYNTHETIC_RATE_PER_S}/s, prompt uniform "
            f"{SYNTHETIC_PROMPT_TOKENS}, output uniform {SYNTHETIC_OUTPUT_TOKENS}"
        ),
    )


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """``--set FIELD=VALUE`` (repeatable): a SimConfig field of the case changed; read by ``config_changes``."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a SimConfig field of the case changed (repeatable), e.g. scheduler=vllm-v0 or "
        "allocator=paged:enable_prefix_caching=false; VALUE read as JSON where it is JSON, else a string",
    )


def config_changes(
    parser: argparse.ArgumentParser, items: list[str], cases: tuple[str, ...] | list[str] = ()
) -> dict:
    """The ``--set`` items as SimConfig fields and values (JSON where the value parses as JSON: false, 128),
    checked on each of ``cases``' configurations: a wrong field or value is refused here, before any run, not
    as a traceback from the run."""
    changes = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field:
            parser.error(f"--set {item!r}: give FIELD=VALUE, e.g. --set scheduler=vllm-v0")
        try:
            changes[field] = json.loads(value)
        except json.JSONDecodeError:
            changes[field] = value
    if changes:
        from kvsim.simulator import SimConfig

        for case in cases:
            try:
                SimConfig(**{**case_config(case), **changes})
            except (TypeError, ValueError) as error:
                parser.error(f"--set: {error}")
    return changes


def case_name(case: str, num_requests: int, changes: dict) -> str:
    """The case's key in the results: a variant's changes are part of it, so it never replaces the case's row."""
    name = case if case.startswith("azure-conv") else f"synthetic-{num_requests}"
    return name + "".join(f" {field}={json.dumps(value)}" for field, value in sorted(changes.items()))


def run_case(case: str, num_requests: int | None, changes: dict | None = None) -> dict:
    """Load the trace, then time simulate() alone (trace loading and writing are not timed). A warm-up run on
    the trace's first 50 requests imports and compiles the modules simulate() loads lazily first (one-time
    costs, not simulation; this machine sets PYTHONDONTWRITEBYTECODE, so nothing is cached between runs)."""
    from kvsim.simulator import SimConfig, simulate
    from kvsim.traces.transforms import take_first

    changes = changes or {}
    fields = {**case_config(case), **changes}
    config = SimConfig(**fields)
    if case.startswith("azure-conv"):
        from kvsim.traces import load_trace

        trace = load_trace("azure-conv")
    else:
        trace = synthetic_trace(num_requests or 1_000_000)
    simulate(config, take_first(trace, 50))
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = simulate(config, trace)
    wall_s, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
    summary = result.summary
    return {
        "case": case_name(case, len(trace), changes),
        "machine": machine(),
        "config": fields,
        "num_requests": len(trace),
        "total_tokens": int(trace.num_prompt_tokens.sum() + trace.num_output_tokens.sum()),
        "simulated_s": summary["duration_s"],
        "num_finished": summary["num_finished"],
        "num_steps": result.recorder.num_steps,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "requests_per_wall_s": len(trace) / wall_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_simulate_mib": rss_before_kib / 1024,
        "cost_model": summary["cost_model"]["source"],
    }


def case_config(case: str) -> dict:
    return {"azure-conv": AZURE_CONFIG, "azure-conv-h200": AZURE_H200_CONFIG}.get(case, SYNTHETIC_CONFIG)


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "num_cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case", choices=["azure-conv", "azure-conv-h200", "synthetic", "all"], default="all"
    )
    parser.add_argument("--num-requests", type=int, default=None, help="synthetic case size (default 1M)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/simulate.json")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each case this many times (fresh processes) and keep the run with the median wall time; "
        "every run's times are kept in the results (a shared machine's load moves single runs by 20%%)",
    )
    add_set_option(parser)
    args = parser.parse_args()
    cases = ["azure-conv", "synthetic"] if args.case == "all" else [args.case]
    changes = config_changes(parser, args.set, cases)
    if args.child:
        from kvsim.errors import KvsimError

        try:
            row = run_case(args.case, args.num_requests, changes)
        except KvsimError as error:  # a --set value that only building the run checks (an allocator spec)
            parser.error(f"--set: {error}")
        print(json.dumps(row))
        return
    rows = []
    for case in cases:
        cmd = [sys.executable, __file__, "--child", "--case", case]
        if args.num_requests:
            cmd += ["--num-requests", str(args.num_requests)]
        cmd += [f"--set={item}" for item in args.set]
        runs = []
        for _ in range(max(1, args.repeat)):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:  # the run's own message (or traceback), not the subprocess call's
                sys.stderr.write(done.stderr)
                sys.exit(done.returncode)
            out = done.stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        runs.sort(key=lambda r: r["wall_s"])
        row = runs[len(runs) // 2]  # the median run (the upper one of an even count)
        row["wall_s_runs"] = [r["wall_s"] for r in runs]
        row["cpu_s_runs"] = sorted(r["cpu_s"] for r in runs)
        rows.append(row)
        print(
            f"{row['case']:17s} {row['num_requests']:>9,d} requests  wall {row['wall_s']:7.2f} s  cpu {row['cpu_s']:7.2f} s"
            f"  {row['requests_per_wall_s']:>9,.0f} req/s  peak RSS {row['peak_rss_mib']:7.1f} MiB"
            f"  ({row['simulated_s']:,.0f} s simulated, {row['num_steps']:,d} steps)"
        )
        if len(row["wall_s_runs"]) > 1:
            print(
                f"{'':17s} wall over {len(row['wall_s_runs'])} runs: "
                + ", ".join(f"{w:.2f}" for w in row["wall_s_runs"])
            )
    info = machine()
    print(f"machine: {info['cpu']}, {info['num_cpus']} CPUs, load {info['load_average_1m']:.1f}")
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        runs = {r["case"]: r for r in previous.get("runs", [])}
        runs.update({r["case"]: r for r in rows})
        RESULTS.write_text(
            json.dumps({"machine": info, "runs": list(runs.values())}, indent=2, sort_keys=True) + "\n"
        )
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
