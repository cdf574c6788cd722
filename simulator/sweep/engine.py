"""Run every point of a grid, gather one results table, keep one run folder per point.

Output folder::

    OUT/sweep.json               the spec (base, grid, seed): enough to rerun
    OUT/results.csv              one row per point in grid order (see table.py)
    OUT/points/<point_id>/       point.json (config, status, error, summary) + the run's files

``point_id`` hashes the point's full configuration, so ``resume`` finds finished points by what they are,
not by where they sit in the grid: a grid that grew keeps its finished points. ``resume`` reruns points that
failed (their failure may have been transient) and skips those with ``status: ok``. A folder holding points
that are not in the spec (another sweep's: other base fields, seed or values) is refused, as is one holding
another command's results; ``overwrite`` clears them first. Each point folder is written whole under a
temporary name and renamed (``out_folder.atomic_folder``), so an interrupted sweep leaves no partial point.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvsim.errors import KvsimError
from kvsim.simulator.out_folder import (
    atomic_folder,
    clean_temporaries,
    clear_outputs,
    commands_in,
    input_differences,
    is_temporary,
    make_out_folder,
    os_errors_named,
    run_folders_in,
    write_file_atomic,
    write_text_atomic,
)
from kvsim.simulator.sweep import table
from kvsim.simulator.sweep.backends import PointRunner, PointTask, execute
from kvsim.simulator.sweep.grid import Grid, Value, canonical_json, point_id, point_seed


@dataclass(frozen=True)
class SweepSpec:
    """A grid over config fields, the fixed fields under it, and the sweep seed.

    ``seed_fields``: the fields that pick the sample of requests; a point's seed derives from the sweep seed
    and its values of these fields (None: all its fields). A ``seed`` field, fixed or swept, replaces the
    sweep seed for its points (sweep ``seed=0,1,2`` for replicates)."""

    grid: Grid
    base: Mapping[str, Value] = field(default_factory=dict)
    seed: int = 0
    seed_fields: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        overlap = [name for name in self.grid.names if name in self.base]
        if overlap:
            raise KvsimError(
                f"field(s) {', '.join(overlap)} both fixed (--set / [base]) and swept (--grid); keep one"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise KvsimError(f"sweep seed must be an integer, got {self.seed!r}")

    @classmethod
    def from_file(cls, path: Path, *, seed_fields: tuple[str, ...] | None = None) -> SweepSpec:
        """A TOML or YAML file (``kvsim.config_file``): ``seed = N`` at top level, ``[base]`` fixed fields,
        ``[grid]`` swept fields (lists or ranges)."""
        from kvsim.config_file import read_config_file

        data = read_config_file(path, "sweep file")
        for name in ("base", "grid"):
            if name in data and not isinstance(data[name], dict):
                raise KvsimError(f"sweep file {path}: {name} must be a table of fields, not {data[name]!r}")
        unknown = sorted(set(data) - {"seed", "base", "grid"})
        if unknown:
            raise KvsimError(f"sweep file {path}: unknown key(s) {unknown}; use seed, [base] and [grid]")
        if "grid" not in data:
            raise KvsimError(f'sweep file {path}: no [grid] table; add one, e.g. [grid] rate = "1:10:1"')
        return cls(
            grid=Grid.from_mapping(data["grid"], where=f"{path} [grid]"),
            base=dict(data.get("base", {})),
            seed=data.get("seed", 0),
            seed_fields=seed_fields,
        )

    def tasks(self) -> list[PointTask]:
        tasks = []
        for index, point in enumerate(self.grid.points()):
            config = {**self.base, **point}
            sweep_seed = config.pop("seed", self.seed)
            if self.seed_fields is None:
                seed_values = config
            else:
                seed_values = {k: v for k, v in config.items() if k in self.seed_fields}
            config["seed"] = point_seed(sweep_seed, seed_values)
            tasks.append(PointTask(index=index, point_id=point_id(config), point=point, config=config))
        return tasks

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "seed_fields": list(self.seed_fields) if self.seed_fields is not None else None,
            "base": dict(self.base),
            "grid": {name: list(values) for name, values in self.grid.fields},
        }


@dataclass(frozen=True)
class SweepResult:
    out_dir: Path
    rows: list[dict[str, Any]]  # one per point, grid order
    num_run: int  # points run now (the rest were resumed)

    @property
    def num_failed(self) -> int:
        return sum(row["status"] != "ok" for row in self.rows)


def run_sweep(
    spec: SweepSpec,
    runner: PointRunner,
    out_dir: Path,
    *,
    jobs: int = 1,
    ray_address: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> SweepResult:
    """Run the points of ``spec`` (those not already done when ``resume``) and write OUT/results.csv.
    ``overwrite`` first clears what kvsim wrote in ``out_dir`` (an earlier sweep, run folders, a plan)."""
    if jobs < 1:
        raise KvsimError(f"--jobs must be at least 1, got {jobs}")
    if resume and overwrite:
        raise KvsimError("--resume keeps the points done and --overwrite clears them: give one, not both")
    out_dir = Path(out_dir)
    tasks = spec.tasks()
    points_dir = out_dir / "points"
    make_out_folder(out_dir)
    if overwrite:
        clear_outputs(out_dir)
    else:
        _claim(out_dir, spec, {t.point_id for t in tasks}, resume=resume)
    with os_errors_named(points_dir, "sweep folder"):
        points_dir.mkdir(parents=True, exist_ok=True)
        clean_temporaries(points_dir)  # points an interrupted sweep was writing
    text = json.dumps(spec.to_json(), indent=2, sort_keys=True) + "\n"
    write_text_atomic(out_dir / "sweep.json", text, "sweep spec")

    index_to_record = {t.index: rec for t in tasks if resume and (rec := _load_done(points_dir / t.point_id))}
    pending = [t for t in tasks if t.index not in index_to_record]
    from tqdm import tqdm  # imported here: plain API users who never ask for a bar do not pay for it

    with tqdm(
        total=len(tasks),
        initial=len(tasks) - len(pending),
        disable=not progress,
        desc="sweep",
        unit="point",
        dynamic_ncols=True,
    ) as bar:
        num_failed = 0
        for outcome in execute(pending, runner, jobs=jobs, ray_address=ray_address):
            task = tasks[outcome["index"]]
            index_to_record[task.index] = _save(points_dir / task.point_id, task, outcome)
            num_failed += outcome["status"] != "ok"
            bar.set_postfix(failed=num_failed, refresh=False)
            bar.update()

    rows = [_row(task, index_to_record[task.index], out_dir) for task in tasks]
    write_file_atomic(
        out_dir / "results.csv", lambda path: table.write_csv(path, rows, spec.grid.names), "sweep table"
    )
    return SweepResult(out_dir=out_dir, rows=rows, num_run=len(pending))


def _claim(out_dir: Path, spec: SweepSpec, point_ids: set[str], *, resume: bool) -> None:
    """Refuse an ``out_dir`` whose results this sweep cannot own: another command's (run folders of
    ``kvsim simulate``, a plan), a sweep without ``resume``, or with ``resume`` points not in ``spec``."""
    others = [f"`kvsim {cmd}`" for cmd in commands_in(out_dir) if cmd != "sweep"]
    folders = [p.name for p in run_folders_in(out_dir)]
    if others or folders:
        what = [f"files of {other}" for other in others]
        if folders:
            what.append(f"run folders {', '.join(folders[:4])}")
        raise KvsimError(
            f"--out {out_dir} holds results not written by this sweep ({', '.join(what)}); pass --overwrite to clear "
            "them first, or choose another --out"
        )
    points_dir = out_dir / "points"
    done = sorted(p.name for p in points_dir.iterdir() if not is_temporary(p)) if points_dir.is_dir() else []
    if not done:
        return
    if not resume:
        raise KvsimError(
            f"{out_dir} already holds a sweep; pass --resume to finish it (the same spec, or a grown grid), "
            "--overwrite to clear it and start again, or choose another --out"
        )
    stale = [name for name in done if name not in point_ids]
    if stale:
        try:
            before = json.loads((out_dir / "sweep.json").read_text())
        except (OSError, ValueError):
            before = {}
        changes = input_differences(before, spec.to_json()) if isinstance(before, dict) else []
        raise KvsimError(
            f"--resume: {out_dir} holds {len(stale)} point(s) that are not in this sweep (e.g. points/{stale[0]})"
            + (f"; its spec differs: {'; '.join(changes)}" if changes else "")
            + ". Resuming would mix two sweeps: pass --overwrite to clear it, or choose another --out "
            "(a resumed sweep may grow its grid, not change its points)"
        )


def _save(point_dir: Path, task: PointTask, outcome: Mapping[str, Any]) -> dict[str, Any]:
    """Write the point's folder whole (a failed earlier try of it is replaced), point.json last."""
    record = {
        "point_id": task.point_id,
        "point": task.point,
        "config": task.config,
        "status": outcome["status"],
        "error": outcome["error"],
        "summary": outcome["summary"],
    }
    with atomic_folder(point_dir, "sweep point folder") as partial:
        for relative, data in outcome["files"].items():
            path = partial / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (partial / "point.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def _load_done(point_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((point_dir / "point.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return record if record.get("status") == "ok" else None


def _row(task: PointTask, record: Mapping[str, Any], out_dir: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"index": task.index, "point_id": task.point_id, **table.identity(task.config)}
    row.update({name: _scalar(value) for name, value in task.point.items()})
    row["seed"] = task.config["seed"]
    row["status"] = record["status"]
    row.update(table.headline(record["summary"]))
    row["error"] = record["error"]
    row["run_dir"] = str(Path("points") / task.point_id)
    return row


def _scalar(value: Value) -> Value:
    return value if isinstance(value, (int, float, bool, str)) else canonical_json(value)


def check_fields(spec: SweepSpec, known: Collection[str], *, hint: str = "") -> None:
    """Raise a KvsimError naming every field of ``spec`` not in ``known`` (before any point runs)."""
    unknown = [name for name in (*spec.base, *spec.grid.names) if name not in known and name != "seed"]
    if unknown:
        raise KvsimError(
            f"unknown field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}{hint}"
        )
