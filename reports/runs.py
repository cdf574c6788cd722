"""Read run folders (docs/outputs.md) into plain columns: the only input of a simulation report.

A run folder holds ``config.json``, ``summary.json``, ``requests.csv`` and ``timeline.csv`` (not when run with
``--no-timeline``: its config.json says ``"timeline": false``, and ``timeline`` is None). CSV columns come back
as numpy arrays keyed by header name: numbers as ``float64`` with ``nan`` for empty cells, text columns
(``request_id``, ``rejected_reason``) as ``str``. Nothing here imports plotly.

An incomplete folder is refused, naming it, never drawn: a CSV whose rows are fewer or more than
``summary.json`` says (``num_requests``, ``num_timeline_rows``), a row with too few cells, a file cut before its
last line ends; hidden partial folders (``.<name>.partial-<pid>``, a write in progress or interrupted) are
skipped when a folder is searched for runs.
"""

import csv
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kvsim.errors import KvsimError
from kvsim.simulator.out_folder import is_temporary
from kvsim.simulator.outputs import REQUEST_COLUMNS
from kvsim.simulator.recorder import TIMELINE_COLUMNS

# The run-folder columns are the simulator's (docs/outputs.md): one definition, written and read.
TEXT_COLUMNS = frozenset({"request_id", "rejected_reason"})


@dataclass(frozen=True)
class RunResult:
    """One run folder, read. ``requests`` and ``timeline`` map column name -> array of equal length;
    ``timeline`` is None for a run without one (``--no-timeline``)."""

    path: Path
    config: dict
    summary: dict
    requests: dict[str, np.ndarray]
    timeline: dict[str, np.ndarray] | None

    @property
    def label(self) -> str:
        return self.summary["label"]

    @property
    def capacity_bytes(self) -> float:
        return float(self.summary["memory"]["capacity_bytes"])


RERUN = "rerun the command that wrote it (kvsim simulate or sweep) to rewrite it"


def is_run_dir(path: Path) -> bool:
    return (path / "summary.json").is_file()


def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Expand each path to run folders: a run folder itself, or every run folder below it (a side-by-side
    ``simulate --out DIR`` or a sweep), in sorted path order so reports are deterministic. Partial writes
    below a folder are skipped; one given by name is refused."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise KvsimError(f"{path}: no such folder; pass a run folder written by `kvsim simulate --out`")
        if is_temporary(path):
            raise KvsimError(f"{path}: an incomplete run folder (a write that did not finish); {RERUN}")
        if is_run_dir(path):
            found.append(path)
            continue
        below = sorted(
            p.parent
            for p in path.rglob("summary.json")
            if not any(is_temporary(folder) for folder in p.relative_to(path).parents)
        )
        if not below:
            raise KvsimError(
                f"{path}: not a kvsim run folder (no summary.json in it or below it); "
                "pass the --out folder of `kvsim simulate`"
            )
        found.extend(below)
    return found


def read_run(path: Path) -> RunResult:
    """Read one run folder; a missing file or column is a ``KvsimError`` naming it."""
    path = Path(path)
    summary = _read_json(path / "summary.json")
    for key in ("label", "memory"):
        if key not in summary:
            raise KvsimError(
                f"{path / 'summary.json'}: missing key {key!r}; rewrite it with `kvsim simulate`"
            )
    config = _read_json(path / "config.json")
    kept = config.get("timeline", True) is not False  # folders written before the key existed have one
    # requests.csv's row count is summary's num_requests; its line ends are checked in folders that
    # record num_timeline_rows (this version's writer ends every line)
    checked = "num_timeline_rows" in summary
    requests = read_csv_columns(path / "requests.csv", REQUEST_COLUMNS)
    _check_rows(path / "requests.csv", requests, summary.get("num_requests"), "num_requests", checked)
    timeline = None
    if kept:
        timeline = read_csv_columns(path / "timeline.csv", TIMELINE_COLUMNS)
        expected = summary.get("num_timeline_rows")
        _check_rows(path / "timeline.csv", timeline, expected, "num_timeline_rows", checked)
    return RunResult(path=path, config=config, summary=summary, requests=requests, timeline=timeline)


def _check_rows(path: Path, columns: dict[str, np.ndarray], expected, key: str, line_end: bool) -> None:
    """Refuse a CSV whose row count is not ``summary.json``'s ``key``, or (``line_end``) whose last line has no
    line end: cut inside its last cell. Folders of older versions (no ``num_timeline_rows``) are checked less."""
    if not isinstance(expected, int) or isinstance(expected, bool):
        return
    num_rows = len(next(iter(columns.values()))) if columns else 0
    if num_rows != expected:
        raise KvsimError(
            f"{path}: {num_rows} rows, but summary.json says {key} {expected}: the run folder "
            f"{path.parent} is incomplete (an interrupted or failed write?); {RERUN}"
        )
    if not line_end:
        return
    with path.open("rb") as f:
        f.seek(-1, 2)  # a run's CSV holds at least its header line
        if f.read(1) != b"\n":
            raise KvsimError(
                f"{path}: its last line is cut short (no line end): the run folder {path.parent} is "
                f"incomplete (an interrupted or failed write?); {RERUN}"
            )


def read_csv_columns(path: Path, required: list[str]) -> dict[str, np.ndarray]:
    """CSV -> {column: array}; every name in ``required`` must be in the header (extra columns are kept).
    A row with another number of cells than the header (a file cut short) is refused."""
    if not path.is_file():
        raise KvsimError(f"{path}: file missing; a run folder needs it (docs/outputs.md)")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise KvsimError(f"{path}: empty file; expected the header {','.join(required)}")
        missing = [c for c in required if c not in header]
        if missing:
            raise KvsimError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(required)}")
        if not TEXT_COLUMNS.intersection(header):
            fast = _read_numeric(path, header)  # timelines: long and all numbers
            if fast is not None:
                return fast
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise KvsimError(
                f"{path}: line {line} has {len(row)} cells, the header {len(header)}: the file is cut short or "
                f"damaged; {RERUN}"
            )
    raw_columns = list(zip(*rows)) or [() for _ in header]
    columns: dict[str, np.ndarray] = {}
    for name, cells in zip(header, raw_columns):
        if name in TEXT_COLUMNS:
            columns[name] = np.array(cells, dtype=str)
            continue
        try:
            columns[name] = np.array([float(c) if c != "" else np.nan for c in cells], dtype=np.float64)
        except ValueError as exc:
            raise KvsimError(
                f"{path}: column {name!r} holds a non-number ({exc}); fix or regenerate"
            ) from exc
    return columns


def _read_numeric(path: Path, header: list[str]) -> dict[str, np.ndarray] | None:
    """numpy's C parser for an all-number CSV (several times faster than csv); None when a cell is empty or
    not a number, so the caller's cell-by-cell path reports or handles it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": a header-only file
            table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except ValueError:
        return None
    if table.shape[0] == 0:
        table = np.zeros((0, len(header)))
    if table.shape[1] != len(header):
        return None
    return {name: table[:, i].copy() for i, name in enumerate(header)}


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise KvsimError(f"{path}: file missing; a run folder needs it (docs/outputs.md)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise KvsimError(f"{path}: not valid JSON ({exc}); regenerate it with `kvsim simulate`") from exc


# config.json keys that say what was simulated (not how): runs that differ in one are not one study
STUDY_KEYS = ("model", "gpu", "tp", "num_replicas")


def study_differences(runs: list[RunResult], *, workload: bool = True) -> list[str]:
    """What differs between ``runs`` other than their configurations under comparison (allocator, scheduler and
    the like): the model, GPU, parallelism, the trace and (``workload``) its offered rate and request count.
    One line per difference, naming the values and the runs (by label, or by folder where labels repeat); []
    for runs of one study."""

    def trace_name(run: RunResult):
        trace = run.config.get("trace")
        if not isinstance(trace, dict):
            return trace
        return trace.get("name_or_path") or trace.get("source") or trace.get("name")

    def offered(run: RunResult, key: str):
        value = (run.summary.get("workload") or {}).get(key)
        return f"{value:.4g}" if isinstance(value, float) else value

    getters = {key: (lambda run, k=key: run.config.get(k)) for key in STUDY_KEYS}
    getters["trace"] = trace_name
    if workload:
        getters["offered rate req/s"] = lambda run: offered(run, "offered_rate_per_s")
        getters["requests"] = lambda run: offered(run, "num_requests")
    labels = [run.label for run in runs]
    if len(set(labels)) < len(labels):  # the same configuration in several folders: name the folders
        labels = [str(run.path) for run in runs]
    lines = []
    for name, get in getters.items():
        value_to_labels: dict[str, list[str]] = {}
        for run, label in zip(runs, labels):
            value = get(run)
            if value is not None:
                value_to_labels.setdefault(str(value), []).append(label)
        if len(value_to_labels) > 1:
            parts = [f"{value} ({', '.join(labels)})" for value, labels in value_to_labels.items()]
            lines.append(f"{name}: {'; '.join(parts)}")
    return lines


def study_note(runs: list[RunResult], *, workload: bool = True) -> str:
    """A sentence for a report's header when ``runs`` are not one study; "" when they are."""
    lines = study_differences(runs, workload=workload)
    if not lines:
        return ""
    return (
        "These runs differ in more than their configurations, so they are not one study: "
        + "; ".join(lines)
        + ". Compare them knowing that. "
    )
