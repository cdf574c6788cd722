"""``kvsim simulate``: one trace through one or more allocators, compared side by side (DESIGN §7).

Every option is a ``SimConfig`` field or a workload field, spelled with dashes on the command line and with
underscores in the ``--config`` file, TOML (``max_num_seqs = 128``, ``allocator = ["paged", "reserved:max"]``)
or YAML (``max_num_seqs: 128``, ``allocator: [paged, "reserved:max"]``; ``kvsim.config_file``).
Command-line options override the file; the file overrides the defaults.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import click

from kvsim.errors import KvsimError
from kvsim.simulator.out_folder import (
    COMMAND_RECORD,
    canonical,
    clear_outputs,
    commands_in,
    input_differences,
    make_out_folder,
    os_errors_named,
    run_folders_in,
    write_file_atomic,
    write_text_atomic,
)

WORKLOAD_KEYS = ("trace", "trace_format", "trace_columns", "rate", "cut_s", "num_requests")
OUTPUT_KEYS = ("out", "report", "timeline", "overwrite", "uncertainty", "jobs", "ray_address")
# --uncertainty and where its cases run: how the results are judged, not what runs (not in simulate.json's inputs)
# A progress bar on stderr (a terminal) for a run of at least this much expected work (``expected_work``); it
# shows once the run has lasted ``kvsim.simulator.run.PROGRESS_DELAY_S``, so a quick one prints nothing.
PROGRESS_MIN_WORK = 20_000
# Output tokens that weigh as much as one request in ``expected_work``. A run's cost grows with its requests
# (arrivals, admissions, finishes) and with its steps, up to one per output token where decode steps cannot be
# fast-forwarded (azure-code, paged, --no-fast-forward: 0.54 s for 8,819 requests, 42,899 steps and 245,896
# output tokens, on a 2-core EPYC).
PROGRESS_OUTPUT_TOKENS_PER_REQUEST = 100

EPILOG = """\b
Examples:
  kvsim simulate --trace azure-conv --model llama-2-7b --gpu a100-80gb \\
    --allocator paged --allocator reserved:max --allocator vattention --out runs/conv
  kvsim simulate --config run.toml --rate 4 --report    # or run.yaml
  kvsim simulate --trace azure-code --scheduler tgi --max-new-tokens max_total_tokens
Allocator specs: paged, paged:block_size=32, paged:enable_prefix_caching=true, reserved:max|pow2|oracle,
paged:eviction_budget_blocks=64 (PagedEviction), vattention, vattention:page_size=64KiB,
vattention:mapping=synchronous (mapping on the step's critical path; default overlapped), contiguous-growth,
contiguous-growth:min_region_tokens=64 (--scheduler tgi: paged only). Writes OUT/<label>/ (config.json, summary.json, requests.csv, timeline.csv)
per allocator (no timeline.csv with --no-timeline), OUT/comparison.csv and OUT/simulate.json (what wrote OUT).

Workload: --num-requests / --cut-s cut the trace first, then --rate rescales the requests kept, so the rate
offered is the rate asked for (--cut-s counts seconds at --rate); summary.json's workload says what ran.
OUT: empty, or holding what the same command wrote (same trace, workload and options; allocators may be
added), whose folders a rerun replaces. Run folders of anything else: refused, or cleared with --overwrite.
"""


def _options(func):
    opts = [
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="TOML or YAML (.yaml, .yml) file whose keys mirror these options.",
        ),
        click.option("--trace", help="Bundled trace name (kvsim traces list) or a file path."),
        click.option("--trace-format", help="The trace file's format when it cannot be detected."),
        click.option(
            "--trace-columns",
            help="A trace file's columns in other names: FIELD=COLUMN[:UNIT],... (arrival_s, num_prompt_tokens, "
            "num_output_tokens; units s, ms, us, ns, datetime), e.g. arrival_s=ts:ms,num_prompt_tokens=in.",
        ),
        click.option("--rate", type=float, help="Rescale arrivals to this mean rate (req/s), after any cut."),
        click.option(
            "--cut-s", type=float, help="Keep the requests arriving in the first S seconds (at --rate)."
        ),
        click.option("--num-requests", type=int, help="Keep the first N requests (then --rate applies)."),
        click.option(
            "--model",
            help="Model preset, e.g. llama-2-7b, opt-13b, codellama-34b; or a Hugging Face config.json path.",
        ),
        click.option("--gpu", help="GPU preset, e.g. a100-80gb, a100-40gb, h100-sxm."),
        click.option("--tp", type=int, help="Tensor-parallel degree per replica."),
        click.option("--num-replicas", type=int),
        click.option("--router", type=click.Choice(["round_robin", "least_outstanding"])),
        click.option(
            "--scheduler",
            type=click.Choice(["vllm", "vllm-v0", "orca", "static", "tgi"]),
            help="vllm: vLLM v1 as in 0.34.0 (default); vllm-v0: vLLM v0.6.3 (the vLLM paper's; swap preemption).",
        ),
        click.option("--allocator", "allocators", multiple=True, help="Allocator spec (repeatable)."),
        click.option("--max-num-seqs", type=int),
        click.option("--max-num-batched-tokens", type=int),
        click.option("--max-model-len", type=int),
        click.option("--enable-chunked-prefill/--no-enable-chunked-prefill", default=None),
        click.option("--preemption-mode", type=click.Choice(["recompute", "swap"])),
        click.option(
            "--watermark",
            type=float,
            help="vllm, vllm-v0: share of KV blocks kept free at admission (0; v0 0.01).",
        ),
        click.option(
            "--long-prefill-token-threshold",
            type=int,
            help="vllm: cap of a prompt chunk beside others (0: none).",
        ),
        click.option(
            "--scheduler-reserve-full-isl/--no-scheduler-reserve-full-isl",
            default=None,
            help="vllm: admit only if the whole prompt's blocks are free (default on, as vLLM 0.34).",
        ),
        click.option(
            "--engine-overhead/--no-engine-overhead",
            default=None,
            help="The engine's host time per step and per request (vllm, vllm-v0, tgi; default on: "
            "simulator/engine_overhead.py); off: the cost model's flat 1 ms step placeholder.",
        ),
        click.option(
            "--async-scheduling/--no-async-scheduling",
            default=None,
            help="vllm: host time overlapped with the GPU's step (default on, as vLLM 0.34).",
        ),
        click.option(
            "--num-scheduler-steps",
            type=int,
            help="vllm-v0: multi-step scheduling, one scheduler pass per N decode steps (v0.6; 1: off).",
        ),
        click.option(
            "--max-concurrent-requests", type=int, help="tgi: in-flight cap, HTTP 429 over it (128)."
        ),
        click.option("--max-batch-prefill-tokens", type=int, help="tgi: prompt tokens per new batch."),
        click.option("--max-batch-total-tokens", type=int, help="tgi: prompt + max_new_tokens budget."),
        click.option("--waiting-served-ratio", type=float, help="tgi: waiting/running ratio to pause (0.3)."),
        click.option(
            "--max-waiting-tokens", type=int, help="tgi: decode steps before forcing a prefill (20)."
        ),
        click.option("--max-input-tokens", type=int, help="tgi: longest prompt (max_total_tokens - 1)."),
        click.option("--max-total-tokens", type=int, help="tgi: prompt + max_new_tokens cap (context)."),
        click.option("--max-batch-size", type=int, help="tgi: requests per batch (unbounded)."),
        click.option("--max-new-tokens", help="tgi: clients' max_new_tokens: oracle|max_total_tokens|N."),
        click.option("--gpu-memory-utilization", type=float),
        click.option(
            "--kv-cache-dtype",
            type=click.Choice(["auto", "fp8", "fp8_e4m3", "fp8_e5m2"]),
            help="vLLM's --kv-cache-dtype: auto (the model's dtype, default) or fp8 (one byte a cached value).",
        ),
        click.option("--swap-space-gib", type=float),
        click.option("--activation-reserve-bytes", type=int),
        click.option("--kv-capacity-bytes", type=int, help="Override the KV capacity per GPU."),
        click.option(
            "--profile",
            help="Cost profile JSON (default: shipped measured profile, else roofline); 'roofline': the GPU's datasheet "
            "roofline even where a measured profile ships.",
        ),
        click.option(
            "--paged-decode-factor",
            help="The paged decode kernel modelled where the cost model derives it (roofline, Vidur's A100): kvsim "
            "(kvsim's kernels, measured 1.01 H100 / 0.99 H200; default), vllm-2023 (the vLLM paper's, 1.23) or a number.",
        ),
        click.option(
            "--term-values",
            help="One uncertainty case: NAME=VALUE,... of the run's uncertain terms (config.json lists them).",
        ),
        click.option("--seed", type=int),
        click.option("--slo-ttft-s", type=float, help="Goodput: TTFT bound, seconds."),
        click.option("--slo-tpot-s", type=float, help="Goodput: TPOT bound, seconds."),
        click.option("--fast-forward/--no-fast-forward", default=None, help="Exact decode fast-forward."),
        click.option(
            "--out", type=click.Path(file_okay=False, path_type=Path), help="Folder for run folders."
        ),
        click.option(
            "--overwrite",
            is_flag=True,
            default=None,
            help="Clear the run folders (and kvsim files) already in OUT first, whatever wrote them.",
        ),
        click.option("--report/--no-report", default=None, help="Also write OUT/report.html."),
        click.option(
            "--uncertainty/--no-uncertainty",
            default=None,
            help="Rerun every allocator at the cases of the cost model's uncertain terms (one at a time, corners of "
            "the most influential): each metric's interval, and which differences hold in every case.",
        ),
        click.option(
            "--jobs", type=int, help="--uncertainty: cases run in parallel (default: the CPU count)."
        ),
        click.option(
            "--ray-address", help="--uncertainty: run the cases on a Ray cluster ('local': a new one)."
        ),
        click.option(
            "--timeline/--no-timeline",
            default=None,
            help="Keep the memory timeline's rows and write timeline.csv (default). --no-timeline: summary, "
            "breakdown and requests.csv only (long traces: less memory and disk, a report without timelines).",
        ),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


@click.command(epilog=EPILOG)
@_options
def simulate(config_file, allocators, **options):
    """Simulate serving a trace and compare allocators side by side."""
    values = _load_config(config_file) if config_file else {}
    if allocators:
        values["allocator"] = list(allocators)
    values.update({k: v for k, v in options.items() if v is not None})
    run_simulations(values)


def _note_long_context(config) -> None:
    """vLLM refuses a max_model_len above the model's context unless told to (rope scaling); kvsim runs it,
    and says so."""
    from kvsim.simulator.specs import ModelSpec

    native = ModelSpec.from_name(config.model).max_model_len
    if config.max_model_len is not None and config.max_model_len > native:
        click.echo(
            f"note: max_model_len {config.max_model_len} is above {config.model}'s context of {native} tokens; "
            "kvsim extrapolates its costs (vLLM would refuse it without VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)",
            err=True,
        )


def run_simulations(values: dict) -> list[Path]:
    """Run every allocator of ``values`` (CLI/TOML keys) and print the comparison; returns run folders."""
    from kvsim.simulator import SimConfig
    from kvsim.simulator import simulate as run_one

    trace = load_workload(values)
    record = command_record(values)
    workload = {
        "name_or_path": str(values.get("trace")),
        "format": values.get("trace_format"),
        "columns": values.get("trace_columns"),
        "rate": values.get("rate"),
        "cut_s": values.get("cut_s"),
        "num_requests_kept": values.get("num_requests"),
    }
    allocators = values.pop("allocator", None) or ["paged"]
    if isinstance(allocators, str):
        allocators = [allocators]
    out = values.pop("out", None)
    report = values.pop("report", False)
    timeline = values.pop("timeline", True)
    overwrite = values.pop("overwrite", False)
    uncertainty = values.pop("uncertainty", False)
    jobs = values.pop("jobs", None) or os.cpu_count() or 1
    ray_address = values.pop("ray_address", None)
    workload_fields = {k: values[k] for k in WORKLOAD_KEYS if values.get(k) is not None}
    for key, flag in (
        ("report", report),
        ("timeline", timeline),
        ("overwrite", overwrite),
        ("uncertainty", uncertainty),
    ):
        if not isinstance(flag, bool):
            raise KvsimError(f"{key} must be true or false, not {flag!r}")
    for key in WORKLOAD_KEYS:
        values.pop(key, None)
    if out is None and report:
        raise KvsimError("--report needs --out DIR to write the run folders and report.html into")
    if out is not None:  # before simulating: a refusal should not cost a run
        out = Path(out)
        make_out_folder(out)
        claim_out(out, record, overwrite=overwrite)
    results = []
    for spec in allocators:
        config = SimConfig.from_dict({**values, "allocator": spec})
        if not results:
            _note_long_context(config)
        progress = expected_work(trace) >= PROGRESS_MIN_WORK and sys.stderr.isatty()
        result = run_one(config, trace, progress=progress, keep_timeline=timeline)
        result.resolved["trace"].update(workload)
        results.append(result)
    labels = [r.label for r in results]
    if len(set(labels)) < len(labels):
        raise KvsimError(f"allocators {labels} repeat a label; give each --allocator once")
    click.echo(comparison_table(results))
    if out is None:
        if uncertainty:
            _judge(results, values, workload_fields, None, jobs, ray_address)
        return []
    folders = [folder_name(r.label) for r in results]
    if overwrite:
        clear_outputs(out)
    else:  # what the same command wrote before and writes no more (a report it does not ask for now)
        stale_judged = () if uncertainty else ("uncertainty/uncertainty.json", "uncertainty/verdicts.csv")
        for stale in (
            "comparison.csv",
            "report.html",
            *stale_judged,
        ):  # (the cases stay: a later --uncertainty's)
            with os_errors_named(out / stale, "stale file"):
                (out / stale).unlink(missing_ok=True)
    # the record first: a rerun after an interruption finds the folders it names
    write_text_atomic(
        out / COMMAND_RECORD,
        json.dumps({**record, "run_folders": folders}, indent=2, sort_keys=True) + "\n",
        "command record",
    )
    run_dirs = [r.write(out / folder) for r, folder in zip(results, folders)]
    write_file_atomic(out / "comparison.csv", lambda p: write_comparison_csv(results, p), "comparison table")
    click.echo(f"wrote {', '.join(str(d) for d in run_dirs)} and {out / 'comparison.csv'}")
    if uncertainty:
        _judge(results, values, workload_fields, out, jobs, ray_address)
    if report:
        try:
            from kvsim.reports import write_report
        except ImportError as exc:
            raise KvsimError(
                f"--report needs kvsim.reports.write_report, which is not available ({exc})"
            ) from exc
        html = out / "report.html"
        write_file_atomic(html, lambda p: write_report(run_dirs, p), "report")
        click.echo(f"wrote {html}")
    return run_dirs


def _judge(
    results, values: dict, workload_fields: dict, out: Path | None, jobs: int, ray_address: str | None
):
    """--uncertainty: run the cases, print each metric's interval and the verdicts (kept in OUT/uncertainty)."""
    from kvsim.cli.uncertainty_output import interval_table, run_for_simulate, verdict_lines

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise KvsimError(f"jobs must be a positive integer, got {jobs!r}")
    judged = run_for_simulate(results, values, workload_fields, out, jobs=jobs, ray_address=ray_address)
    click.echo(interval_table(judged))
    click.echo("\n".join(verdict_lines(judged)))
    if out is not None:
        click.echo(f"wrote {out / 'uncertainty'} (uncertainty.json, verdicts.csv, cases/)")
    return judged


def command_record(values: dict) -> dict:
    """What identifies this command's results in ``simulate.json``: its inputs (trace, workload and every
    option, from the command line and --config), less the allocators (kept apart: a rerun may add some) and
    the output options (--out, --report, --timeline, --overwrite: how, not what, is written)."""
    allocators = values.get("allocator") or ["paged"]
    inputs = {k: v for k, v in values.items() if k != "allocator" and k not in OUTPUT_KEYS}
    return {
        "command": "kvsim simulate",
        "inputs": canonical(inputs),
        "allocators": canonical([allocators] if isinstance(allocators, str) else list(allocators)),
    }


def claim_out(out: Path, record: dict, *, overwrite: bool) -> None:
    """Refuse an ``out`` holding results that this command did not write, unless ``overwrite``.

    The rule (docs/outputs.md "Writing"): ``out`` may be missing or empty of results; or hold only what the same
    command wrote before (its ``simulate.json`` records the same inputs, allocators this command runs too,
    and every run folder there is one it names): a rerun replaces its folders whole. Anything else (other
    options, other run folders, a sweep or a plan) would put two studies in one folder."""
    if overwrite or not out.is_dir():
        return
    folders = [p.name for p in run_folders_in(out)]
    others = [cmd for cmd in commands_in(out) if cmd != "simulate"]
    if not folders and not others:
        return
    why = []
    if others:
        why.append(f"files of `kvsim {'`, `kvsim '.join(others)}`")
    try:
        before = json.loads((out / COMMAND_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = None
    if not isinstance(before, dict) or before.get("command") != record["command"]:
        if folders:
            why.append(
                f"run folders {_names(folders)} with no {COMMAND_RECORD} of `kvsim simulate` naming them"
            )
    else:
        differences = input_differences(before.get("inputs") or {}, record["inputs"])
        if differences:
            why.append(f"written with other inputs ({'; '.join(differences)})")
        dropped = [a for a in before.get("allocators") or [] if a not in record["allocators"]]
        if dropped:
            why.append(f"allocator(s) {', '.join(dropped)} that this command does not run")
        unknown = [f for f in folders if f not in (before.get("run_folders") or [])]
        if unknown:
            why.append(f"run folders {_names(unknown)} that {COMMAND_RECORD} does not name")
    if why:
        raise KvsimError(
            f"--out {out} holds results not written by this command: {'; '.join(why)}. A rerun of the same "
            "command (same trace, workload and options; allocators may be added) replaces its own folders; "
            "anything else would mix two studies in one folder. Pass --overwrite to clear them first, or "
            "choose another --out"
        )


def _names(folders: list[str], most: int = 4) -> str:
    shown = ", ".join(folders[:most])
    return shown + (f" and {len(folders) - most} more" if len(folders) > most else "")


def expected_work(trace) -> float:
    """A run's expected simulation work, in requests: its requests, plus its output tokens weighed by
    PROGRESS_OUTPUT_TOKENS_PER_REQUEST (a few requests with long outputs make a long run too)."""
    return len(trace) + int(trace.num_output_tokens.sum()) / PROGRESS_OUTPUT_TOKENS_PER_REQUEST


def load_workload(values: dict):
    """The trace that runs: ``Workload.load`` (cut first, then rescale to --rate), as in sweep and plan."""
    from kvsim.simulator.sweep.point import Workload

    name = values.get("trace")
    if not name:
        raise KvsimError(
            "no trace: pass --trace NAME|PATH (see `kvsim traces list`) or set trace in --config"
        )
    if values.get("cut_s") is not None and values.get("num_requests") is not None:
        raise KvsimError("give --cut-s or --num-requests, not both")
    workload = Workload(
        trace=name,
        trace_format=values.get("trace_format"),
        trace_columns=values.get("trace_columns"),
        num_requests=values.get("num_requests"),
        cut_s=values.get("cut_s"),
        rate=values.get("rate"),
        seed=values.get("seed") or 0,
    )
    return workload.load()


def folder_name(label: str) -> str:
    """A run folder's name: the label with characters awkward in paths replaced (':' ',' '=' '/')."""
    return label.replace(":", "_").replace(",", "_").replace("=", "-").replace("/", "-")


def _load_config(path: Path) -> dict:
    """The file's keys. The workload and output keys, and the SimConfig keys read before a SimConfig is built
    (allocator, seed), are type-checked here as their command-line options read them (``checked_value``: no
    ``num_requests = true`` run as 1 request, no ``rate = "fast"`` reaching the trace); ``SimConfig`` checks
    the rest as strictly."""
    from kvsim.cli.config_option import checked_value, options_by_key
    from kvsim.config_file import read_config_file
    from kvsim.simulator.config import SimConfig

    values = read_config_file(path)
    known = {f.name for f in dataclasses.fields(SimConfig)} | set(WORKLOAD_KEYS) | set(OUTPUT_KEYS)
    unknown = sorted(set(values) - known)
    if unknown:
        raise KvsimError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    options = options_by_key(simulate)
    checked_here = (set(WORKLOAD_KEYS) | set(OUTPUT_KEYS) | {"allocator", "seed"}) & set(options)
    return {
        key: checked_value(options[key], key, value, path) if key in checked_here else value
        for key, value in values.items()
    }


def _pct(part: float | None, capacity: int) -> str:
    return "-" if part is None else f"{100 * part / capacity:.1f}%"


def _pct_of_one(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f}%"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def comparison_rows(results) -> list[tuple[str, list[str]]]:
    """(metric, one cell per configuration) rows of the comparison table."""
    rows: list[tuple[str, list[str]]] = []

    def row(name, fn):
        rows.append((name, [fn(r.summary) for r in results]))

    row("scheduler", lambda s: s["scheduler"])
    for part in ("token_states", "reserved", "internal_frag", "external_frag", "free"):
        row(f"mem {part}", lambda s, p=part: _pct(s["memory"]["whole_run"][p], s["memory"]["capacity_bytes"]))
    row("mem saturated s", lambda s: _num(s["memory"]["saturated"]["duration_s"], ".1f"))
    row("finished/requests", lambda s: f"{s['num_finished']}/{s['num_requests']}")
    row("throughput req/s", lambda s: _num(s["throughput"]["requests_per_s"], ".3f"))
    row("throughput out tok/s", lambda s: _num(s["throughput"]["output_tokens_per_s"], ".1f"))
    for metric, short in (
        ("ttft_s", "TTFT s"),
        ("tpot_s", "TPOT s"),
        ("normalized_latency_s_per_token", "norm lat s/tok"),
    ):
        for p in ("p50", "p99"):
            row(f"{short} {p}", lambda s, m=metric, q=p: _num(s["latency"][m][q], ".4f"))
    row("mean batch seqs", lambda s: _num(s["batch"]["mean_num_seqs"], ".2f"))
    row("max batch seqs", lambda s: str(s["batch"]["max_num_seqs"]))
    row("preemptions", lambda s: str(s["num_preemptions"]))
    if any(r.summary.get("kv_evicted_fraction") for r in results):
        row("KV evicted mean", lambda s: _pct_of_one((s.get("kv_evicted_fraction") or {}).get("mean")))
        row("KV evicted p99", lambda s: _pct_of_one((s.get("kv_evicted_fraction") or {}).get("p99")))
    row("rejections", lambda s: str(s["num_rejected"]))
    if any(r.summary.get("prefix_cache") for r in results):
        row("prefix hit rate tok", lambda s: _pct_of_one(_prefix_cache(s, "hit_rate_tokens")))
        row("prefix hit rate blk", lambda s: _pct_of_one(_prefix_cache(s, "hit_rate_blocks")))
        row("prefix evicted blk", lambda s: _num(_prefix_cache(s, "num_evicted_blocks"), "d"))
    row("cost model", lambda s: s["cost_model"]["source"])
    for key in stat_keys(results):  # allocator-specific counters, "-" where an allocator has none
        row(key, lambda s, k=key: _stat(s.get("allocator_stats", {}).get(k)))
    return rows


def _prefix_cache(summary: dict, key: str) -> int | float | None:
    """A figure of summary.json's ``prefix_cache`` (None for a configuration without prefix caching)."""
    return (summary.get("prefix_cache") or {}).get(key)


def stat_keys(results) -> list[str]:
    """The ``allocator_stats`` keys of any result, in first-seen order."""
    keys: dict[str, None] = {}
    for r in results:
        keys.update(dict.fromkeys(r.summary.get("allocator_stats", {})))
    return list(keys)


def _stat(value: int | float | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def comparison_table(results) -> str:
    rows = comparison_rows(results)
    header = ["", *(r.label for r in results)]
    widths = [max(len(header[0]), *(len(name) for name, _ in rows))]
    for j in range(len(results)):
        widths.append(max(len(header[j + 1]), *(len(cells[j]) for _, cells in rows)))
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    for name, cells in rows:
        lines.append("  ".join([name.ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells, widths[1:]))]))
    description = results[0].summary["cost_model"]["description"]
    lines.append(f"cost model: {description}")
    lines += rejection_lines(results)
    return "\n".join(lines)


def rejection_lines(results) -> list[str]:
    """Why requests were rejected, under the table: per reason its count and its numbers (``min..max`` over
    the requests), once for all configurations when they rejected alike, else per configuration."""
    from kvsim.simulator.metrics import render_reason

    summaries = [r.summary for r in results if r.summary["num_rejected"]]
    if not summaries:
        return []

    def reasons(summary: dict) -> list[str]:
        by_reason = summary["rejected_by_reason"]
        width = max(len(str(entry["count"])) for entry in by_reason.values())
        return [
            f"  {entry['count']:>{width}}  {render_reason(template, entry['values'])}"
            for template, entry in by_reason.items()
        ]

    first = summaries[0]
    if len(summaries) == len(results) and all(
        s["rejected_by_reason"] == first["rejected_by_reason"] for s in summaries
    ):
        heading = (
            f"rejected {first['num_rejected']} of {first['num_requests']} requests, in every configuration:"
        )
        return [heading, *reasons(first)]
    lines = []
    for s in summaries:
        lines.append(f"rejected by {s['label']}: {s['num_rejected']} of {s['num_requests']} requests:")
        lines += reasons(s)
    return lines


def comparison_record(summary: dict) -> dict:
    """The headline figures of one ``summary.json`` as a flat row (raw numbers; memory parts as fractions)."""
    memory = summary["memory"]
    record = {"label": summary["label"], "scheduler": summary["scheduler"]}
    for part in ("token_states", "reserved", "internal_frag", "external_frag", "free"):
        value = memory["whole_run"][part]
        record[f"{part}_frac"] = None if value is None else value / memory["capacity_bytes"]
    record["saturated_s"] = memory["saturated"]["duration_s"]
    record["num_requests"] = summary["num_requests"]
    record["num_finished"] = summary["num_finished"]
    record["requests_per_s"] = summary["throughput"]["requests_per_s"]
    record["output_tokens_per_s"] = summary["throughput"]["output_tokens_per_s"]
    for metric in ("ttft_s", "tpot_s", "normalized_latency_s_per_token"):
        for p in ("p50", "p99"):
            record[f"{metric}_{p}"] = summary["latency"][metric][p]
    record["mean_num_seqs"] = summary["batch"]["mean_num_seqs"]
    record["max_num_seqs"] = summary["batch"]["max_num_seqs"]
    record["num_preemptions"] = summary["num_preemptions"]
    record["num_rejected"] = summary["num_rejected"]
    record["cost_model"] = summary["cost_model"]["source"]
    prefix_cache = summary.get("prefix_cache")
    if prefix_cache:
        record.update({f"prefix_cache_{key}": prefix_cache[key] for key in PREFIX_CACHE_RECORD})
    record.update(summary.get("allocator_stats", {}))
    return record


# summary.json's prefix_cache figures in comparison.csv (as prefix_cache_<key>), when a configuration caches
PREFIX_CACHE_RECORD = ("hit_rate_tokens", "hit_rate_blocks", "num_evicted_blocks")


def write_comparison_csv(results, path: Path) -> None:
    import csv

    records = [comparison_record(r.summary) for r in results]
    columns = list(comparison_record({**results[0].summary, "allocator_stats": {}, "prefix_cache": None}))
    if any(r.summary.get("prefix_cache") for r in results):
        columns += [f"prefix_cache_{key}" for key in PREFIX_CACHE_RECORD]
    columns += stat_keys(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for record in records:
            writer.writerow(["" if record.get(c) is None else record[c] for c in columns])
