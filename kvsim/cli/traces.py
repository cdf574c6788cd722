"""``kvsim traces``: list the bundled traces, summarize one, generate a synthetic one, convert between formats.
A thin layer over ``kvsim.traces``; every option maps onto a ``load_trace`` argument or a ``WorkloadSpec`` field."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from kvsim.errors import KvsimError
from kvsim.traces import (
    ARRIVALS,
    BUNDLED_TRACES,
    LOADERS,
    LengthTable,
    WorkloadSpec,
    cut_window,
    generate_trace,
    load_trace,
    read_source,
    save_trace,
    subsample,
    take_first,
    trace_stats,
)


def _source_options(command):
    """Options that say how to read a trace: its format, and how to give a length dataset arrival times."""
    options = [
        click.option(
            "--format", "format_", type=click.Choice(list(LOADERS)), help="File format (default: detect)."
        ),
        click.option(
            "--columns",
            "--trace-columns",
            "columns",
            help="A file's columns in other names: FIELD=COLUMN[:UNIT],... (fields arrival_s, num_prompt_tokens, "
            "num_output_tokens; units s, ms, us, ns, datetime), e.g. arrival_s=ts:ms,num_prompt_tokens=in.",
        ),
        click.option(
            "--rate",
            type=float,
            help="Target mean rate, req/s: rescales a trace's times; the "
            "arrival rate for a length dataset (default 1.0).",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for generated arrivals."),
        click.option(
            "--arrival",
            type=click.Choice(list(ARRIVALS)),
            default="poisson",
            show_default=True,
            help="Arrival process for a length dataset.",
        ),
        click.option("--cv", type=float, help="Inter-arrival CV for --arrival gamma."),
        click.option(
            "--arrivals-from", help="Give a length dataset the arrival times of this trace (name or path)."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _load(source, format_, columns, rate, seed, arrival, cv, arrivals_from):
    return load_trace(
        source,
        format_,
        rate=rate,
        seed=seed,
        arrival=arrival,
        cv=cv,
        arrivals_from=arrivals_from,
        columns=columns,
    )


@click.group()
def traces() -> None:
    """Request traces: bundled, from files, or synthetic."""


@traces.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(as_json: bool) -> None:
    """The bundled traces, with request counts and provenance."""
    rows = []
    for name, bundled in BUNDLED_TRACES.items():
        source = read_source(name)
        is_lengths = isinstance(source, LengthTable)
        rows.append(
            {
                "name": name,
                "kind": "lengths (no arrival times)" if is_lengths else "trace",
                "num_requests": len(source),
                "span_s": None if is_lengths else source.duration_s,
                "description": bundled.description,
                "origin": bundled.origin,
                "license": bundled.license,
                "citation": bundled.citation,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        span = "" if row["span_s"] is None else f", {row['span_s']:,.0f} s"
        click.echo(f"{row['name']:<20}{row['num_requests']:>8,} requests{span}  [{row['kind']}]")
        click.echo(f"{'':<20}{row['description']}")
        click.echo(f"{'':<20}{row['origin']}; {row['license']}; {row['citation']}")


@traces.command(short_help="Count, span, rate, inter-arrival CV and token-count summaries.")
@click.argument("source")
@_source_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats(source, format_, columns, rate, seed, arrival, cv, arrivals_from, as_json: bool) -> None:
    """Count, span, rate, inter-arrival CV and token-count summaries of SOURCE (a bundled name or a path)."""
    summary = trace_stats(_load(source, format_, columns, rate, seed, arrival, cv, arrivals_from))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(_format_stats(summary))


LABEL_WIDTH = 18  # "inter-arrival CV" and a gap: the label column of every line


def _format_stats(s: dict) -> str:
    def num(x, digits=3):
        return "n/a" if x is None else f"{x:,.{digits}f}"

    lines = [
        f"{'source':<{LABEL_WIDTH}}{s['source']}",
        f"{'license':<{LABEL_WIDTH}}{s['license']}" + (f"; {s['citation']}" if s["citation"] else ""),
    ]
    if s["notes"]:
        lines.append(f"{'notes':<{LABEL_WIDTH}}{s['notes']}")
    lines += [
        f"{'requests':<{LABEL_WIDTH}}{s['num_requests']:,}",
        f"{'span':<{LABEL_WIDTH}}{num(s['span_s'], 1)} s",
        f"{'rate':<{LABEL_WIDTH}}{num(s['rate_per_s'])} req/s",
        f"{'inter-arrival CV':<{LABEL_WIDTH}}{num(s['interarrival_cv'])}",
    ]
    rows = [["tokens", "mean", "median", "p99", "max"]]
    for label, key in (("prompt", "num_prompt_tokens"), ("output", "num_output_tokens")):
        t = s[key]
        rows.append([label, f"{t['mean']:,.1f}", f"{t['median']:,.0f}", f"{t['p99']:,.0f}", f"{t['max']:,}"])
    lines += fixed_width(rows, first_width=LABEL_WIDTH)
    if "prefix_blocks" in s:
        b = s["prefix_blocks"]
        lines.append(
            f"{'prefix blocks':<{LABEL_WIDTH}}{b['num_blocks']:,} of {b['block_tokens']} tokens, "
            f"{b['num_unique_blocks']:,} unique (an unbounded prefix cache hits at most "
            f"{num(b['max_hit_fraction'])})"
        )
    if "mean_n" in s:
        lines.append(f"{'mean n / beam':<{LABEL_WIDTH}}{s['mean_n']:g} / {s['mean_beam_width']:g}")
    if "num_failed_left_out" in s:
        lines.append(f"{'failed, left out':<{LABEL_WIDTH}}{s['num_failed_left_out']:,}")
    return "\n".join(lines)


def fixed_width(rows: list[list[str]], *, first_width: int = 0, gap: int = 2) -> list[str]:
    """Rows of cells as lines: the first column left-aligned, the others right-aligned, each column as wide as
    its widest cell plus ``gap`` spaces before it, so no two numbers ever touch however large they are."""
    first = max(first_width, *(len(row[0]) + gap for row in rows))
    widths = [max(len(row[i]) for row in rows) + gap for i in range(1, len(rows[0]))]
    return [
        f"{row[0]:<{first}}" + "".join(f"{cell:>{width}}" for cell, width in zip(row[1:], widths))
        for row in rows
    ]


@traces.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--num-requests", type=int, default=1000, show_default=True)
@click.option("--rate", type=float, default=1.0, show_default=True, help="Mean arrival rate, req/s.")
@click.option("--arrival", type=click.Choice(list(ARRIVALS)), default="poisson", show_default=True)
@click.option("--cv", type=float, help="Inter-arrival coefficient of variation (gamma).")
@click.option(
    "--prompt",
    default=WorkloadSpec.prompt,
    show_default=True,
    help="Prompt lengths: fixed:N, uniform:MIN:MAX or lognormal:MEAN:SIGMA[:MAX].",
)
@click.option("--output", default=WorkloadSpec.output, show_default=True, help="Output lengths, same forms.")
@click.option("--lengths-from", help="Resample (prompt, output) pairs from this dataset or trace instead.")
@click.option("--n", type=int, default=1, show_default=True, help="Parallel samples per request.")
@click.option("--beam-width", type=int, default=1, show_default=True)
@click.option(
    "--prefix-groups",
    type=int,
    default=0,
    show_default=True,
    help="Number of groups whose requests share a prompt prefix.",
)
@click.option(
    "--prefix-tokens", type=int, default=0, show_default=True, help="Tokens of each group's prefix."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--to", type=click.Choice(["jsonl", "csv"]), help="Output format (default: from OUT's suffix).")
def generate(
    out: Path,
    num_requests,
    rate,
    arrival,
    cv,
    prompt,
    output,
    lengths_from,
    n,
    beam_width,
    prefix_groups,
    prefix_tokens,
    seed,
    to,
) -> None:
    """Write a synthetic trace to OUT."""
    spec = WorkloadSpec(
        num_requests=num_requests,
        rate_per_s=rate,
        arrival=arrival,
        cv=cv,
        prompt=prompt,
        output=output,
        lengths_from=lengths_from,
        n=n,
        beam_width=beam_width,
        num_prefix_groups=prefix_groups,
        prefix_tokens=prefix_tokens,
    )
    trace = generate_trace(spec, np.random.default_rng(seed), seed_note=f"seed {seed}")
    written = _save(trace, out, to)
    click.echo(f"wrote {len(trace):,} requests to {out} ({written}): {spec.describe()}, seed {seed}")


@traces.command(short_help="Convert a trace to kvsim JSONL or CSV, optionally transformed.")
@click.argument("source")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", type=click.Choice(["jsonl", "csv"]), help="Output format (default: from OUT's suffix).")
@_source_options
@click.option("--window", nargs=2, type=float, metavar="START_S END_S", help="Keep arrivals in [START, END).")
@click.option("--max-requests", type=int, help="Keep the first N requests (after --window).")
@click.option("--subsample", "fraction", type=float, help="Keep each request with this probability (--seed).")
def convert(
    source,
    out: Path,
    to,
    format_,
    columns,
    rate,
    seed,
    arrival,
    cv,
    arrivals_from,
    window,
    max_requests,
    fraction,
) -> None:
    """Convert SOURCE (a bundled name or a path, any format) to kvsim JSONL or CSV. Transforms apply in the
    order rate, window, max-requests, subsample."""
    trace = _load(source, format_, columns, rate, seed, arrival, cv, arrivals_from)
    if window:
        trace = cut_window(trace, *window)
    if max_requests is not None:
        trace = take_first(trace, max_requests)
    if fraction is not None:
        trace = subsample(trace, fraction, np.random.default_rng([seed, 1]))  # a stream apart from arrivals'
    written = _save(trace, out, to)
    click.echo(f"wrote {len(trace):,} requests to {out} ({written})")


def _save(trace, out: Path, to: str | None) -> str:
    """save_trace, with a folder that cannot be made or a file that cannot be written as one-line errors."""
    from kvsim.simulator.out_folder import explain_os_error

    file_above = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if file_above is not None:
        raise KvsimError(
            f"OUT {out}: {file_above} is a file, so nothing can be written under it; choose another path"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return save_trace(trace, out, to, progress=True)
    except OSError as exc:
        raise KvsimError(f"cannot write trace {out}: {explain_os_error(exc)}") from None
