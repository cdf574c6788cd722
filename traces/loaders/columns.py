"""Traces in other tools' column names: a CSV with a header row, or JSON Lines, whose columns are recognised by
their common names or named by a mapping (``--trace-columns``, the ``trace_columns`` config key).

Recognised names (case-insensitive; in JSON Lines a nested object's keys count too, so OpenAI's
``{"usage": {"prompt_tokens": ..}}`` is found as ``usage.prompt_tokens``):

- prompt tokens: ``PROMPT_NAMES`` (OpenAI usage's ``prompt_tokens``, ``input_tokens``, ``input_length``, ...);
- output tokens: ``OUTPUT_NAMES`` (``completion_tokens``, ``output_tokens``, ``output_length``, ...);
- arrival time: ``ARRIVAL_BASES`` (``timestamp``, ``arrival``, ``arrival_time``, ...), with or without a unit
  suffix (``arrival_s``, ``timestamp_ms``, ``arrival_time_us``, ``time (ns)``).

**Units rule.** Arrival times are read in the unit their column's name says (``_s``, ``_ms``, ``_us``,
``_ns``). A name that says no unit (``timestamp``) holding numbers is refused: seconds and milliseconds both
occur in public traces (Mooncake's ``timestamp`` is ms, BurstGPT's is s), so kvsim does not guess; the mapping
gives the unit (``arrival_s=timestamp:ms``). Date-times (``2023-11-16 18:17:03.97``) carry their own unit and
are read as seconds from the earliest. Numeric times are kept as they are (not re-based), as in kvsim's own
format. Two columns that could hold the same field are refused too; the mapping picks one.

A file without an arrival column is a length dataset (a ``LengthTable``), paired with an arrival process by
``kvsim.traces.load_trace``.

Mapping grammar: ``FIELD=COLUMN[:UNIT],...`` with FIELD one of ``arrival_s``, ``num_prompt_tokens``,
``num_output_tokens`` and UNIT (for ``arrival_s`` only) one of ``s``, ``ms``, ``us``, ``ns``, ``datetime``.
Fields left out of the mapping are recognised by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kvsim.errors import KvsimError
from kvsim.traces.lengths import LengthTable
from kvsim.traces.loaders._jsonl import json_column, json_float, json_int, json_records, require_rows
from kvsim.traces.loaders._parse import CsvColumns, bad_field, read_text
from kvsim.traces.request import Provenance, Trace

PROMPT_NAMES = (
    "num_prompt_tokens",
    "prompt_tokens",
    "input_tokens",
    "input_length",
    "prompt_length",
    "num_input_tokens",
    "input_len",
    "prompt_len",
)
OUTPUT_NAMES = (
    "num_output_tokens",
    "completion_tokens",
    "output_tokens",
    "output_length",
    "completion_length",
    "num_generated_tokens",
    "generated_tokens",
    "output_len",
)
ARRIVAL_BASES = ("arrival", "arrival_time", "arrived_at", "timestamp", "time", "ts", "request_time")
UNIT_TO_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
UNITS = (*UNIT_TO_SECONDS, "datetime")
FIELDS = ("arrival_s", "num_prompt_tokens", "num_output_tokens")

# a unit at the end of a column name, after a separator: arrival_s, timestamp_ms, "time (us)", ts-ns
_UNIT_SUFFIX = re.compile(
    r"^(?P<base>.*?)[\s_.\-(\[]+(?P<unit>s|sec|secs|seconds|ms|msec|millis|milliseconds|us|usec|micros|"
    r"microseconds|ns|nsec|nanos|nanoseconds)[)\]]?$"
)
_WORD_TO_UNIT = {
    **dict.fromkeys(("s", "sec", "secs", "seconds"), "s"),
    **dict.fromkeys(("ms", "msec", "millis", "milliseconds"), "ms"),
    **dict.fromkeys(("us", "usec", "micros", "microseconds"), "us"),
    **dict.fromkeys(("ns", "nsec", "nanos", "nanoseconds"), "ns"),
}


@dataclass(frozen=True)
class ColumnMapping:
    """Which column holds each request field; None: recognise it by name. ``arrival_unit`` None: from the
    column's name (or date-times)."""

    arrival_s: str | None = None
    arrival_unit: str | None = None
    num_prompt_tokens: str | None = None
    num_output_tokens: str | None = None

    @classmethod
    def parse(cls, text: str) -> ColumnMapping:
        """``arrival_s=ts_ms:ms,num_prompt_tokens=in,num_output_tokens=out`` -> a mapping; errors say the fix."""
        if not isinstance(text, str) or not text.strip():
            raise KvsimError(f"trace_columns: expected text like {EXAMPLE!r}, got {text!r}")
        values: dict[str, str | None] = {}
        for item in text.split(","):
            field, sep, column = item.partition("=")
            field, column = field.strip(), column.strip()
            if not sep or not column:
                raise KvsimError(f"trace_columns: {item.strip()!r} is not FIELD=COLUMN; e.g. {EXAMPLE!r}")
            if field not in FIELDS:
                raise KvsimError(f"trace_columns: unknown field {field!r}; fields: {', '.join(FIELDS)}")
            if field in values:
                raise KvsimError(f"trace_columns: {field} given twice")
            unit = None
            if ":" in column:
                column, _, unit = (part.strip() for part in column.rpartition(":"))
                if field != "arrival_s":
                    raise KvsimError(
                        f"trace_columns: {field}={column}:{unit}: only arrival_s takes a unit (token counts have none)"
                    )
                if unit not in UNITS:
                    raise KvsimError(
                        f"trace_columns: unknown time unit {unit!r} for {column!r}; use one of {', '.join(UNITS)}"
                    )
                values["arrival_unit"] = unit
            values[field] = column
        return cls(**values)

    def describe(self) -> str:
        parts = []
        for field in FIELDS:
            column = getattr(self, field)
            if column is not None:
                unit = f":{self.arrival_unit}" if field == "arrival_s" and self.arrival_unit else ""
                parts.append(f"{field}={column}{unit}")
        return ",".join(parts)


EXAMPLE = "arrival_s=ts_ms:ms,num_prompt_tokens=in,num_output_tokens=out"
NEEDS = (
    "a prompt column (prompt_tokens, input_tokens, input_length, ...), an output column (completion_tokens, "
    "output_tokens, output_length, ...), optionally an arrival column whose name says its unit (arrival_s, "
    "timestamp_ms, ...)"
)
ALL_NAMES = (
    f"prompt: {', '.join(PROMPT_NAMES)}; output: {', '.join(OUTPUT_NAMES)}; arrival: {', '.join(ARRIVAL_BASES)} "
    "with a unit suffix (_s, _ms, _us, _ns)"
)


def unit_in_name(name: str) -> str | None:
    """The time unit a column name says (``timestamp_ms`` -> ``ms``), or None."""
    match = _UNIT_SUFFIX.match(name.strip().lower())
    return _WORD_TO_UNIT[match["unit"]] if match else None


def is_arrival_name(name: str) -> bool:
    lowered = name.strip().lower().rpartition(".")[2]
    match = _UNIT_SUFFIX.match(lowered)
    return (match["base"] if match else lowered) in ARRIVAL_BASES


def _last(name: str) -> str:
    return name.strip().lower().rpartition(".")[2]


def recognise(names: list[str]) -> dict[str, list[str]]:
    """Field -> the columns of ``names`` that could hold it, by the recognised names."""
    return {
        "arrival_s": [n for n in names if is_arrival_name(n)],
        "num_prompt_tokens": [n for n in names if _last(n) in PROMPT_NAMES],
        "num_output_tokens": [n for n in names if _last(n) in OUTPUT_NAMES],
    }


def looks_like_lengths(names: list[str]) -> bool:
    """Whether ``names`` hold a recognised prompt and output column (what format detection asks)."""
    found = recognise(names)
    return bool(found["num_prompt_tokens"]) and bool(found["num_output_tokens"])


def resolve(path: Path, names: list[str], mapping: ColumnMapping) -> dict[str, str | None]:
    """Field -> the column that holds it (``arrival_s`` may be None: no times), from the mapping and the
    recognised names; a missing or ambiguous field is an error naming the columns and the fix."""
    found = recognise(names)
    chosen: dict[str, str | None] = {}
    for field in FIELDS:
        mapped = getattr(mapping, field)
        if mapped is not None:
            if mapped not in names:
                raise KvsimError(
                    f"{path}: trace_columns names column {mapped!r} for {field}, but the file has only "
                    f"{', '.join(map(repr, names))}"
                )
            chosen[field] = mapped
            continue
        candidates = found[field]
        if len(candidates) > 1:
            raise KvsimError(
                f"{path}: columns {' and '.join(map(repr, candidates))} could each be {field}; pick one with "
                f"--trace-columns {field}={candidates[0]}"
            )
        if not candidates and field != "arrival_s":
            raise KvsimError(
                f"{path}: no column for {field} among {', '.join(map(repr, names))}; name it with "
                f"--trace-columns {field}=COLUMN (recognised names: {ALL_NAMES})"
            )
        chosen[field] = candidates[0] if candidates else None
    return chosen


def _arrival_unit(path: Path, column: str, mapping: ColumnMapping, first_value) -> str:
    """The unit of the arrival column: the mapping's, else its name's, else date-times when the values are
    text; numbers under a name without a unit are refused."""
    if mapping.arrival_unit is not None and mapping.arrival_s == column:
        return mapping.arrival_unit
    unit = unit_in_name(column)
    if unit is not None:
        return unit
    if isinstance(first_value, str) and not _is_number(first_value):
        return "datetime"
    raise KvsimError(
        f"{path}: column {column!r} holds numbers but its name does not say their unit (seconds? milliseconds?); "
        f"give it: --trace-columns arrival_s={column}:s (or :ms, :us, :ns; config key trace_columns)"
    )


def load_columns(path: Path, provenance: Provenance | None = None, mapping: ColumnMapping | None = None):
    """A CSV or JSON Lines file in recognised or mapped columns -> a ``Trace`` (or a ``LengthTable`` when it
    has no arrival column)."""
    mapping = mapping or ColumnMapping()
    text = read_text(path)
    is_jsonl = text.lstrip().startswith("{")
    arrival_s, prompt, output, chosen = (_from_jsonl if is_jsonl else _from_csv)(path, text, mapping)
    how = ", ".join(f"{field} from {column!r}" for field, column in chosen.items() if column is not None)
    base = provenance or Provenance(source=str(path))
    provenance = Provenance(
        source=base.source,
        license=base.license,
        citation=base.citation,
        notes="; ".join(part for part in (base.notes, how) if part),
    )
    if arrival_s is None:
        return LengthTable(prompt, output, provenance)
    return Trace.from_columns(
        arrival_s=arrival_s, num_prompt_tokens=prompt, num_output_tokens=output, provenance=provenance
    )


def _from_csv(path: Path, text: str, mapping: ColumnMapping):
    header = CsvColumns.header_of(path, text)
    chosen = resolve(path, header, mapping)
    table = CsvColumns(path, text, [c for c in chosen.values() if c is not None])
    prompt = table.ints(chosen["num_prompt_tokens"])
    output = table.ints(chosen["num_output_tokens"])
    column = chosen["arrival_s"]
    if column is None:
        return None, prompt, output, chosen
    unit = _arrival_unit(path, column, mapping, table.strings(column)[0])
    arrival_s = (
        table.datetimes_s(column) if unit == "datetime" else table.floats(column) * UNIT_TO_SECONDS[unit]
    )
    return arrival_s, prompt, output, chosen


def _from_jsonl(path: Path, text: str, mapping: ColumnMapping):
    records = [(line, _flattened(record)) for line, record in json_records(path, text)]
    require_rows(path, records)
    names = list(dict.fromkeys(name for _, record in records[:1] for name in record))
    chosen = resolve(path, names, mapping)
    prompt, output = (_json_counts(path, records, chosen[f]) for f in FIELDS[1:])
    column = chosen["arrival_s"]
    if column is None:
        return None, prompt, output, chosen
    unit = _arrival_unit(path, column, mapping, records[0][1].get(column))
    return _json_times(path, records, column, unit), prompt, output, chosen


def _flattened(record: dict) -> dict:
    """One level of nested objects as dotted keys: ``{"usage": {"prompt_tokens": 3}}`` also gives
    ``usage.prompt_tokens``."""
    flat = dict(record)
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": v for inner, v in value.items()})
    return flat


def _json_counts(path: Path, records: list[tuple[int, dict]], name: str) -> np.ndarray:
    column = json_column(records, name, "count")
    if column is None:  # the per-line checks name the bad line
        column = np.array([json_int(path, line, record, name) for line, record in records], dtype=np.int64)
    return column


def _json_times(path: Path, records: list[tuple[int, dict]], name: str, unit: str) -> np.ndarray:
    if unit != "datetime":
        column = json_column(records, name, "time")
        if column is None:
            column = np.array([json_float(path, line, record, name) for line, record in records])
        return column * UNIT_TO_SECONDS[unit]
    stamps = []
    for line, record in records:
        value = record.get(name)
        try:
            stamps.append(np.datetime64(str(value).strip(), "ns") if isinstance(value, str) else None)
        except ValueError:
            stamps.append(None)
        if stamps[-1] is None or np.isnat(stamps[-1]):
            raise bad_field(path, line, name, f"bad timestamp: {value!r} (expected a date-time)")
    ns = np.array(stamps).astype(np.int64)
    return (ns - ns.min()) / 1e9


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
