"""``kvsim report PATH... --out report.html``: one self-contained interactive HTML report.

PATH is one of:
- a run folder, or a folder holding run folders (``simulate --out`` with several allocators), or the
  ``comparison.csv`` written there (its folder is reported);
- a sweep folder (``kvsim sweep --out``), read through its ``results.csv``;
- a plan folder (``kvsim plan --out``), read through its ``plan.csv`` (the capacity rows);
- a CSV table: sweep rows (``request_rate_per_s`` column), ``kvsim plan`` capacity rows
  (``max_sustainable_rate_per_s``) or calibration points (``op``, ``measured_s``, ``predicted_s``, ``held_out``);
- a calibration profile JSON, with its measurements CSV beside it or given by ``--measurements``.
The row formats are documented in ``kvsim.reports.figures``. plotly is imported only when the command runs.
"""

import csv
from pathlib import Path

import click

from kvsim.errors import KvsimError

# header column that identifies a CSV table -> its kind, checked in this order
COLUMN_TO_KIND = {
    "measured_s": "calibration",
    "max_sustainable_rate_per_s": "capacity",
    "request_rate_per_s": "sweep",
}


EPILOG = """\b
Examples:
  kvsim report runs/conv --out conv.html                   # every run folder under runs/conv
  kvsim report runs/conv/paged_block_size-16 --out one.html
  kvsim report runs/fig12 --out fig12.html                 # a kvsim sweep folder (its results.csv)
  kvsim report plans/h100 --out plan.html                  # a kvsim plan folder (its plan.csv)
  kvsim report sweep.csv plan.csv --out plan.html          # sweep rows plus capacity rows
  kvsim report calibrate/profiles/profile-h100-sxm.json --out calibration.html
"""


@click.command(epilog=EPILOG)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_html", required=True, type=click.Path(path_type=Path), help="HTML file to write.")
@click.option("--title", default=None, help="Report title (default: names the configurations).")
@click.option(
    "--measurements",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="With a profile JSON: its measurements CSV (default: measurements-<gpu>.csv beside it).",
)
def report(paths: tuple[Path, ...], out_html: Path, title: str | None, measurements: Path | None) -> None:
    """Write an interactive HTML report of run folders, a sweep table, a plan, a calibration profile or
    calibration points."""
    from kvsim import reports  # plotly loads here, not at `kvsim --help`

    profiles = [p for p in paths if p.suffix.lower() == ".json" and p.is_file()]
    if profiles:
        if len(paths) > 1:
            raise KvsimError("a calibration profile goes in a report of its own; pass one profile JSON alone")
        written = reports.write_profile_report(
            profiles[0], out_html, measurements_path=measurements, title=title
        )
        click.echo(f"wrote {written} ({written.stat().st_size / 2**20:.1f} MiB)")
        return

    from kvsim.reports.sweep import sweep_table_rows

    folders: list[Path] = []
    tables: dict[str, list[dict]] = {}
    for path in paths:
        if path.is_dir() and not (path / "summary.json").is_file() and (path / "results.csv").is_file():
            # a sweep folder is read through its table, not its many run folders
            tables.setdefault("sweep", []).extend(sweep_table_rows(path))
            continue
        if path.is_dir() and not (path / "summary.json").is_file() and (path / "plan.csv").is_file():
            # a plan folder: its capacity table (plan.json beside it holds every probe)
            kind, rows = _read_table(path / "plan.csv")
            tables.setdefault(kind, []).extend(rows)
            continue
        if path.is_dir():
            folders.append(path)
            continue
        if not path.is_file():
            raise KvsimError(f"{path}: no such file or folder; pass run folders or a CSV table")
        if _is_comparison_table(path):  # `simulate --out`'s table: the run folders beside it are the report
            folders.append(path.parent)
            continue
        kind, rows = _read_table(path)
        tables.setdefault(kind, []).extend(rows)
    if folders and tables:
        raise KvsimError("pass either run folders or CSV tables to one `kvsim report`, not both")
    if folders:
        written = reports.write_report(folders, out_html, title=title)
    elif "calibration" in tables:
        if len(tables) > 1:
            raise KvsimError("calibration points go in a report of their own; pass the calibration CSV alone")
        written = reports.write_calibration_report(tables["calibration"], out_html, title=title)
    elif "sweep" in tables:
        written = reports.write_sweep_report(
            tables["sweep"], out_html, title=title, capacity_rows=tables.get("capacity")
        )
    else:
        written = reports.write_capacity_report(tables["capacity"], out_html, title=title)
    click.echo(f"wrote {written} ({written.stat().st_size / 2**20:.1f} MiB)")


def _is_comparison_table(path: Path) -> bool:
    """Whether ``path`` is the comparison.csv that ``kvsim simulate --out`` writes beside its run folders."""
    if path.suffix.lower() != ".csv":
        return False
    try:
        with path.open(newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    except UnicodeDecodeError as exc:
        raise _not_text(path, exc) from None
    return "label" in header and "token_states_frac" in header


def _not_text(path: Path, exc: UnicodeDecodeError) -> KvsimError:
    return KvsimError(
        f"{path}: not a text CSV (byte {exc.start} is not UTF-8); pass run folders or a sweep/plan/calibration CSV"
    )


def _read_table(path: Path) -> tuple[str, list[dict]]:
    if path.suffix.lower() != ".csv":
        raise KvsimError(
            f"{path}: not a folder or a .csv table; pass a run folder or a sweep/plan/calibration CSV"
        )
    try:
        with path.open(newline="", encoding="utf-8") as f:
            if f.readline().startswith("# kvsim-measurements"):
                raise KvsimError(
                    f"{path}: raw calibration measurements; pass the profile JSON written beside it "
                    "(kvsim report profile-<gpu>.json --measurements this.csv)"
                )
            f.seek(0)
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise _not_text(path, exc) from None
    for column, kind in COLUMN_TO_KIND.items():
        if column in header:
            return kind, rows
    raise KvsimError(
        f"{path}: unknown table (columns {', '.join(header) or 'none'}); expected a column "
        + " or ".join(COLUMN_TO_KIND)
    )
