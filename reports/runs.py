"""Read run folders (docs/outputs.md) into plain columns: the only input of a simulation report.

A run folder holds ``config.json``, ``summary.json``, ``requests.csv`` and ``timeline.csv`` (not when run with
``--no-timeline``: its config.json says ``"timeline": false``, and ``timeline`` is None). CSV columns come back
as numpy arrays keyed by header name: numbers as ``float64`` with ``nan`` for empty cells, text columns
(``request_id``, ``rejected_reason``) as ``str``. Nothing here imports plotly.
"""

import csv
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kvsim.errors import KvsimError
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


def is_run_dir(path: Path) -> bool:
    return (path / "summary.json").is_file()


def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Expand each path to run folders: a run folder itself, or every run folder below it (a side-by-side
    ``simulate --out DIR`` or a sweep), in sorted path order so reports are deterministic."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise KvsimError(f"{path}: no such folder; pass a run folder written by `kvsim simulate --out`")
        if is_run_dir(path):
            found.append(path)
            continue
        below = sorted(p.parent for p in path.rglob("summary.json"))
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
    return RunResult(
        path=path,
        config=config,
        summary=summary,
        requests=read_csv_columns(path / "requests.csv", REQUEST_COLUMNS),
        timeline=read_csv_columns(path / "timeline.csv", TIMELINE_COLUMNS) if kept else None,
    )


def read_csv_columns(path: Path, required: list[str]) -> dict[str, np.ndarray]:
    """CSV -> {column: array}; every name in ``required`` must be in the header (extra columns are kept)."""
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
        raw_columns = list(zip(*reader)) or [() for _ in header]
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
