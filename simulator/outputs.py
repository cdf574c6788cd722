"""Run folders (docs/outputs.md): ``config.json``, ``summary.json``, ``requests.csv``, ``timeline.csv``."""

from __future__ import annotations

import csv
import io
import json
import math
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from kvsim.simulator.metrics import request_metrics
from kvsim.simulator.out_folder import atomic_folder

if TYPE_CHECKING:
    import numpy as np

    from kvsim.simulator.run import RunResult

REQUEST_COLUMNS = (
    "request_id",
    "replica",
    "arrival_s",
    "num_prompt_tokens",
    "num_output_tokens",
    "first_scheduled_s",
    "first_token_s",
    "finish_s",
    "ttft_s",
    "tpot_s",
    "e2e_s",
    "normalized_latency_s_per_token",
    "queueing_delay_s",
    "num_preemptions",
    "num_cached_tokens",
    "kv_evicted_fraction",
    "rejected_reason",
)


def kvsim_version() -> str:
    try:
        return version("kvsim")
    except PackageNotFoundError:
        return "unknown"


def dumps(data: dict) -> str:
    """Deterministic JSON: sorted keys, floats as Python's shortest repr, NaN as null."""
    return json.dumps(_clean(data), sort_keys=True, indent=2) + "\n"


def _clean(value):
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def float_cells(values: np.ndarray) -> list[str]:
    """Float cells: the shortest repr that reads back as the same float, empty for NaN."""
    return ["" if x != x else repr(x) for x in values.tolist()]  # x != x: NaN


def int_cells(values: np.ndarray) -> list[str]:
    return list(map(str, values.tolist()))


def text_cells(values: list[str]) -> list[str]:
    """Text cells, already quoted (``csv_field``) where needed."""
    return values


def write_run_folder(result: RunResult, out_dir: Path) -> Path:
    """Write the run folder ``out_dir`` whole or not at all: its files go into a hidden partial folder beside it,
    renamed to ``out_dir`` when complete (replacing an earlier one whole: no file of an earlier run stays, e.g.
    a timeline.csv after ``--no-timeline``). A failed or interrupted write leaves ``out_dir`` as it was; a full
    disk or a folder that cannot be written is a ``KvsimError`` naming it (``out_folder.py``)."""
    out_dir = Path(out_dir)
    with atomic_folder(out_dir) as partial:
        config = {**result.resolved, "kvsim_version": kvsim_version()}
        (partial / "config.json").write_text(dumps(config), encoding="utf-8")
        (partial / "summary.json").write_text(dumps(result.summary), encoding="utf-8")
        write_requests_csv(result, partial / "requests.csv")
        if result.recorder.keeps_timeline:  # without its rows (`--no-timeline`): config.json says so
            write_timeline_csv(result, partial / "timeline.csv")
    return out_dir


def write_requests_csv(result: RunResult, path: Path) -> None:
    trace, rec = result.trace, result.recorder
    metrics = request_metrics(trace, rec)
    reasons = [""] * len(trace)
    for index, reason in rec.rejected_reason.items():
        reasons[index] = csv_field(reason)
    columns = {
        "request_id": (trace.request_id, int_cells),
        "replica": (rec.replica, _replica_cells),
        "arrival_s": (trace.arrival_s, float_cells),
        "num_prompt_tokens": (trace.num_prompt_tokens, int_cells),
        "num_output_tokens": (trace.num_output_tokens, int_cells),
        **{
            name: (getattr(rec, name), float_cells)
            for name in ("first_scheduled_s", "first_token_s", "finish_s")
        },
        **{name: (values, float_cells) for name, values in metrics.items()},
        "num_preemptions": (rec.num_preemptions, int_cells),
        "num_cached_tokens": (rec.num_cached_tokens, int_cells),
        "kv_evicted_fraction": (rec.kv_evicted_fraction, float_cells),
        "rejected_reason": (reasons, text_cells),
    }
    write_csv(path, REQUEST_COLUMNS, [columns[name] for name in REQUEST_COLUMNS])


def _replica_cells(values: np.ndarray) -> list[str]:
    return ["" if r < 0 else str(r) for r in values.tolist()]  # -1: rejected, never routed


def write_timeline_csv(result: RunResult, path: Path) -> None:
    time_s, *others = result.recorder.timeline_columns()
    header = result.recorder.timeline_column_names  # + PREFIX_CACHE_COLUMNS with prefix caching
    write_csv(path, header, [(time_s, float_cells), *((column, int_cells) for column in others)])


CSV_CHUNK_ROWS = 16384  # rows formatted and written at a time: a few MB of strings, whatever the run's size


def write_csv(path: Path, header: tuple[str, ...], columns: list[tuple]) -> None:
    """A CSV file from ``(values, cells)`` columns: ``cells(values[a:b])`` formats a slice of rows as strings
    (``float_cells``, ``int_cells``, ``text_cells``). The bytes ``csv.writer`` writes with
    ``lineterminator="\\n"``, without its per-cell work; rows are formatted a chunk at a time."""
    num_rows = len(columns[0][0]) if columns else 0
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write(",".join(map(csv_field, header)) + "\n")
        for start in range(0, num_rows, CSV_CHUNK_ROWS):
            end = start + CSV_CHUNK_ROWS
            chunk = [cells(values[start:end]) for values, cells in columns]
            f.write("\n".join(map(",".join, zip(*chunk))))
            f.write("\n")


def csv_field(text: str) -> str:
    """``text`` as ``csv.writer`` writes one cell of a row of several (quoted where the dialect needs it)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow((text, ""))
    return out.getvalue()[:-2]  # less the empty second cell's comma and the line end
