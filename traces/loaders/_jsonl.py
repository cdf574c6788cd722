"""JSON Lines parsing for the trace loaders: the whole file parsed at once and its columns checked in bulk;
only when something is wrong does a per-line pass run, to raise an error naming the line and the field."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np

from kvsim.errors import KvsimError
from kvsim.traces.loaders._parse import bad_field, fits_int64, too_large


def json_records(path: Path, text: str) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON Lines file (lines end with \\n only)."""
    lines = text.split("\n")
    numbers = [i for i, line in enumerate(lines) if line and not line.isspace()]
    try:  # fast path: one parse of all lines as a JSON array, instead of a json.loads call per line
        records = json.loads("[" + ",".join([lines[i] for i in numbers]) + "]")
        if len(records) == len(numbers) and set(map(type, records)) <= {dict}:
            return [(i + 1, record) for i, record in zip(numbers, records)]
    except json.JSONDecodeError:
        pass
    records = []  # slow path, to name the bad line
    for i in numbers:
        try:
            record = json.loads(lines[i])
        except json.JSONDecodeError as exc:
            raise KvsimError(
                f"{path}, line {i + 1}: not valid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(record, dict):
            raise KvsimError(f"{path}, line {i + 1}: expected a JSON object, got {type(record).__name__}")
        records.append((i + 1, record))
    return records


def json_column(records: list[tuple[int, dict]], name: str, kind: str, default=None) -> np.ndarray | None:
    """Column ``name`` of parsed records, checked in bulk: ``kind`` is ``count`` (integers >= 1), ``id``
    (integers >= 0) or ``time`` (finite numbers >= 0). None when any value is missing (and there is no
    ``default``), of the wrong type or out of range: the caller then runs the per-line checks, which raise an
    error naming the line. This keeps a clean million-line file off the slow per-field path."""
    try:
        values = (
            [r[name] for _, r in records] if default is None else [r.get(name, default) for _, r in records]
        )
    except KeyError:
        return None
    types = set(map(type, values))
    try:
        if kind == "time":
            column = np.array(values, dtype=np.float64) if types <= {int, float} else None
            ok = column is not None and bool(np.all(np.isfinite(column))) and column.min() >= 0
        else:
            column = np.array(values, dtype=np.int64) if types <= {int} else None
            ok = column is not None and column.min() >= (1 if kind == "count" else 0)
    except OverflowError:
        return None
    return column if ok else None


def json_hash_column(records: list[tuple[int, dict]], name: str, optional: bool) -> list | None:
    """Column ``name`` of prefix-block hash lists as tuples (None where ``optional`` and absent or null), or None
    when any value needs the per-line checks."""
    values = [r.get(name) for _, r in records]
    if any(v is None for v in values) and not optional:
        return None
    lists = [v for v in values if v is not None]
    if not all(type(v) is list and v for v in lists) or not set(map(type, itertools.chain(*lists))) <= {int}:
        return None
    return [None if v is None else tuple(v) for v in values]


def json_int(
    path: Path, line: int, record: dict, name: str, *, min_value: int = 1, what: str = "token count"
) -> int:
    value = _json_field(path, line, record, name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_field(path, line, name, f"not an integer: {value!r}")
    if not fits_int64(value):
        raise bad_field(path, line, name, too_large(str(value)))
    if value < min_value:
        raise bad_field(path, line, name, f"{what} must be >= {min_value}, got {value}")
    return value


def json_float(path: Path, line: int, record: dict, name: str, *, what: str = "timestamp") -> float:
    value = _json_field(path, line, record, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_field(path, line, name, f"bad {what}: not a number: {value!r}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        finite = False
    if not finite or value < 0:
        raise bad_field(path, line, name, f"bad {what}: must be finite and >= 0, got {value!r}")
    return float(value)


def json_hashes(path: Path, line: int, record: dict, name: str) -> tuple[int, ...]:
    value = _json_field(path, line, record, name)
    if not isinstance(value, list) or not value:
        raise bad_field(path, line, name, f"expected a non-empty list of integer block hashes, got {value!r}")
    if not all(isinstance(h, int) and not isinstance(h, bool) for h in value):
        raise bad_field(path, line, name, "every prefix block hash must be an integer")
    return tuple(value)


def require_rows(path: Path, rows: list) -> None:
    if not rows:
        raise KvsimError(f"{path} has no requests; give a file with at least one request")


def _json_field(path: Path, line: int, record: dict, name: str):
    if name not in record:
        raise bad_field(path, line, name, f"missing (the line has {', '.join(record) or 'no fields'})")
    return record[name]
