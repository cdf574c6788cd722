"""The raw measurements CSV: one row per timed point, device info in the header comment.

Line 1: ``# kvsim-measurements {json}`` with the device (DESIGN §5's fields) and run metadata (model, TP,
source, representative, skipped parts with reasons). Then a header and rows. Features are the quantities the
fitted terms are linear in (simulator/cost/work.py counts them); shape columns make rows reproducible.
``--fit-only`` reads this file back, so everything a profile needs is here.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvsim.errors import KvsimError

MAGIC = "# kvsim-measurements "
FEATURE_COLUMNS = (
    "flops",
    "bytes",
    "kv_bytes",
    "num_seqs",
    "num_blocks",
    "page_size_bytes",
    "parts_s",  # launch_overlap rows: the layer's kernels timed one by one, summed
    "launches",  # launch_overlap rows: kernel calls in the layer
)
SHAPE_COLUMNS = (
    "impl",
    "dtype",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "block_size",
    "batch",
    "context",
    "skew",
    "q_len",
    "kv_len",
    "t",
    "k",
    "n",
    "kernel",  # launch_overlap rows: the attention layout, and the batch the layer ran
    "decode_seqs",
    "decode_context",
    "prefill_seqs",
    "prefill_q_len",
    "prefill_prefix",
)
TIMING_COLUMNS = ("median_s", "p10_s", "p90_s", "reps")
COLUMNS = ("term", *FEATURE_COLUMNS, *TIMING_COLUMNS, *SHAPE_COLUMNS)


@dataclass
class Measurements:
    """Rows of one calibration run plus its header. ``meta`` holds ``device`` and the run metadata."""

    meta: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, term: str, features: dict[str, float], timing, **shape: Any) -> None:
        row = {
            "term": term,
            **features,
            "median_s": timing.median_s,
            "p10_s": timing.p10_s,
            "p90_s": timing.p90_s,
            "reps": timing.reps,
            **shape,
        }
        unknown = set(row) - set(COLUMNS)
        assert not unknown, f"unknown measurement columns {unknown}"
        self.rows.append(row)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as f:
            f.write(MAGIC + json.dumps(self.meta, sort_keys=True) + "\n")
            writer = csv.DictWriter(f, COLUMNS, restval="", lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
        return path


def load_measurements(path: str | Path) -> Measurements:
    """Read a measurements CSV; a problem is a KvsimError naming the file, line and field."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise KvsimError(f"cannot read measurements {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise KvsimError(
            f"measurements {path}: not a text file (byte {exc.start} is not UTF-8); pass the CSV that "
            "kvsim calibrate wrote"
        ) from None
    if not lines or not lines[0].startswith(MAGIC):
        raise KvsimError(
            f"measurements {path}, line 1: expected a '{MAGIC.strip()} {{...}}' header written by "
            "kvsim calibrate"
        )
    try:
        meta = json.loads(lines[0][len(MAGIC) :])
    except json.JSONDecodeError as exc:
        raise KvsimError(f"measurements {path}, line 1: the header is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("device"), dict):
        raise KvsimError(f"measurements {path}, line 1: the header needs a 'device' object")
    reader = csv.DictReader(lines[1:])
    missing = {"term", *TIMING_COLUMNS[:1]} - set(reader.fieldnames or ())
    if missing:
        raise KvsimError(f"measurements {path}, line 2: missing columns {', '.join(sorted(missing))}")
    rows = []
    for line_no, raw in enumerate(reader, start=3):
        row: dict[str, Any] = {"term": raw["term"]}
        for column in (*FEATURE_COLUMNS, *TIMING_COLUMNS):
            value = raw.get(column) or ""
            if value == "":
                continue
            try:
                row[column] = float(value)
            except ValueError:
                raise KvsimError(
                    f"measurements {path}, line {line_no}, field {column!r}: {value!r} is not a number"
                ) from None
            if not math.isfinite(row[column]) or row[column] < 0:
                raise KvsimError(
                    f"measurements {path}, line {line_no}, field {column!r}: must be a finite "
                    f"non-negative number, got {value!r}"
                )
        if "median_s" not in row or row["median_s"] <= 0:
            raise KvsimError(
                f"measurements {path}, line {line_no}, field 'median_s': a positive time is required"
            )
        rows.append({**{k: v for k, v in raw.items() if v not in ("", None)}, **row})
    return Measurements(meta, rows)
