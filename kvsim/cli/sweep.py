"""``kvsim sweep``: a grid over config fields, each point a full simulation (DESIGN §7, issue 7)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kvsim.errors import KvsimError

EPILOG = """\b
Grid grammar: --grid FIELD=V1,V2 (repeat --grid to add fields or values);
  START:STOP:STEP is an inclusive range (rate=1:10:0.5);
  values holding commas are separated by ';' instead:
  --grid 'allocator=paged:block_size=16,enable_prefix_caching=true;vattention:page_size=64KiB'
  tied fields vary together: --grid allocator+scheduler=paged+vllm,reserved:max+orca
Fields: any SimConfig field (allocator, gpu, tp, max_num_seqs, ...) plus trace, trace_format,
  num_requests, rate, rate_scale, arrival, cv.

\b
Example:
  kvsim sweep --set trace=sharegpt --set model=opt-13b --set gpu=a100-40gb \\
    --grid allocator+scheduler=paged+vllm,reserved:max+orca,reserved:pow2+orca,reserved:oracle+orca \\
    --grid rate=0.5:3:0.5 \\
    --set num_requests=500 --out runs/fig12 --jobs 2

\b
Writes OUT/results.csv (one row per point, grid order), OUT/points/<point_id>/
(a run folder each) and OUT/sweep.json. A point's seed derives from the sweep seed
and its trace fields, so every allocator and rate replays the same request sample.
OUT must be empty, or hold this sweep (--resume: the same spec, or a grown grid);
anything else is refused unless --overwrite clears it. num_requests / cut_s cut the
trace first, then rate rescales the requests kept (the rate offered is the rate asked).
Exit status: 0 when every point ran; 1 when some failed (listed on stderr, and in
results.csv's error column); 2 for bad input or when every point failed.
"""


def _parse_sets(options: tuple[str, ...]) -> dict:
    from kvsim.simulator.sweep.grid import parse_value

    fixed = {}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or not name.strip():
            raise KvsimError(f"--set {option!r}: write FIELD=VALUE, e.g. --set trace=sharegpt")
        fixed[name.strip()] = parse_value(value)
    return fixed


@click.command(epilog=EPILOG)
@click.argument("spec_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--grid", "grid_options", multiple=True, metavar="FIELD=VALUES", help="Swept field (repeatable)."
)
@click.option("--set", "set_options", multiple=True, metavar="FIELD=VALUE", help="Fixed field (repeatable).")
@click.option("--seed", type=int, default=None, help="Sweep seed (default 0, or the spec file's).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--jobs", type=int, default=1, show_default=True, help="Points run at once (processes).")
@click.option(
    "--ray-address", default=None, help="Run on a Ray cluster ('auto', 'ray://host:10001', or 'local')."
)
@click.option(
    "--resume",
    is_flag=True,
    help="Skip points already done in OUT (same spec, or a grown grid); rerun failed ones.",
)
@click.option(
    "--overwrite", is_flag=True, help="Clear what kvsim wrote in OUT (an earlier sweep, run folders) first."
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def sweep(
    spec_file, grid_options, set_options, seed, out_dir, jobs, ray_address, resume, overwrite, progress
):
    """Run a grid of simulations (SPEC_FILE: TOML or YAML with seed, base and grid; options add to it)."""
    from kvsim.simulator.sweep import Grid, SweepSpec, run_sweep
    from kvsim.simulator.sweep.engine import check_fields
    from kvsim.simulator.sweep.point import SEED_FIELDS, known_fields, simulate_point, split_fields

    if spec_file is None and not grid_options:
        raise KvsimError("nothing to sweep: give --grid FIELD=V1,V2 options or a TOML/YAML spec file")
    grid = Grid.from_options(grid_options)
    base = _parse_sets(set_options)
    file_seed = 0
    if spec_file is not None:
        from_file = SweepSpec.from_file(spec_file)
        grid = from_file.grid.merged(grid)
        base = {**from_file.base, **base}
        file_seed = from_file.seed
    spec = SweepSpec(grid=grid, base=base, seed=file_seed if seed is None else seed, seed_fields=SEED_FIELDS)
    check_fields(spec, known_fields())
    if "trace" not in spec.base and "trace" not in spec.grid.names:
        raise KvsimError(
            "no trace: add --set trace=NAME_OR_PATH (or sweep it: --grid trace=sharegpt,azure-conv)"
        )
    for task in spec.tasks():  # every point's values checked now, not as a failure of each point later
        try:
            split_fields(task.config)
        except KvsimError as exc:
            raise KvsimError(f"sweep point {task.point}: {exc}") from exc
    click.echo(f"sweep: {len(spec.grid)} points over {', '.join(spec.grid.names)} -> {out_dir}", err=True)
    result = run_sweep(
        spec,
        simulate_point,
        out_dir,
        jobs=jobs,
        ray_address=ray_address,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
    )
    _print_table(result.rows, spec.grid.names, fixed_identity(spec))
    click.echo(
        f"{len(result.rows)} points ({result.num_run} run now, {len(result.rows) - result.num_run} resumed), "
        f"{result.num_failed} failed; table: {out_dir / 'results.csv'}"
    )
    if result.num_failed:
        _print_failed(result.rows, spec.grid.names)
    if result.num_failed == len(result.rows):
        raise KvsimError(f"every point failed; see the error column of {out_dir / 'results.csv'}")
    if result.num_failed:
        sys.exit(EXIT_SOME_POINTS_FAILED)


# Exit status of a sweep that ran but in which some points failed (listed on stderr; results.csv has every
# point); 2, as for every KvsimError, when every point failed or the input is wrong; 0 when all succeeded.
EXIT_SOME_POINTS_FAILED = 1


_SHOWN = (
    ("ttft_p99_s", "ttft p99 s"),
    ("tpot_p99_s", "tpot p99 s"),
    ("normalized_latency_s_per_token", "norm lat s/tok"),
    ("throughput_requests_per_s", "req/s"),
    ("num_rejected", "rejected"),
)


def fixed_identity(spec) -> dict:
    """The model, GPU and trace of every point, those the grid does not vary (defaults filled in)."""
    from kvsim.simulator.sweep.table import identity

    return {name: value for name, value in identity(spec.base).items() if name not in spec.grid.names}


def _print_table(rows, names, fixed: dict) -> None:
    if fixed:  # what the columns do not say
        click.echo(", ".join(f"{name} {value}" for name, value in fixed.items()))
    header = [*names, *(title for _, title in _SHOWN)]
    lines = [header]
    for row in rows:
        if row["status"] != "ok":
            lines.append([str(row[n]) for n in names] + [f"ERROR {row['error']}"[:60]])
            continue
        cells = [f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c, _ in _SHOWN]
        lines.append([str(row[n]) for n in names] + cells)
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(len(header))]
    for line in lines:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def _print_failed(rows, names) -> None:
    """The failed points on stderr, each with its swept values and its error's first line."""
    failed = [row for row in rows if row["status"] != "ok"]
    click.echo(f"{len(failed)} of {len(rows)} points failed:", err=True)
    for row in failed:
        values = ", ".join(f"{name}={row[name]}" for name in names)
        error = (row["error"] or "").splitlines()[0] if row["error"] else "no error recorded"
        click.echo(f"  point {row['index']} ({values}; {row['run_dir']}): {error}", err=True)
