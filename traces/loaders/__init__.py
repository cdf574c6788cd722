"""Trace file formats: one loader per format, registered by name, and format detection from content.

A loader takes a path (and optional provenance) and returns a ``Trace``, except ``lengths``, which returns a
``LengthTable`` (no arrival times) that ``kvsim.traces.load_trace`` pairs with an arrival process.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

from kvsim.errors import KvsimError
from kvsim.traces.lengths import LengthTable
from kvsim.traces.loaders.azure import AZURE_COLUMNS, load_azure
from kvsim.traces.loaders.burstgpt import BURSTGPT_COLUMNS, load_burstgpt
from kvsim.traces.loaders.columns import NEEDS, ColumnMapping, load_columns, looks_like_lengths
from kvsim.traces.loaders.kvsim_format import (
    HEADER_KEY,
    KVSIM_REQUIRED_COLUMNS,
    WRITERS,
    load_kvsim_csv,
    load_kvsim_jsonl,
)
from kvsim.traces.loaders.length_dataset import (
    LENGTH_COLUMNS,
    VIDUR_COLUMNS,
    load_length_dataset,
    load_vidur_trace,
)
from kvsim.traces.loaders.mooncake import MOONCAKE_FIELDS, load_mooncake
from kvsim.traces.request import Provenance, Trace

# format name -> loader
LOADERS: dict[str, Callable[..., Trace | LengthTable]] = {
    "azure": load_azure,
    "mooncake": load_mooncake,
    "lengths": load_length_dataset,
    "vidur": load_vidur_trace,
    "burstgpt": load_burstgpt,
    "kvsim-jsonl": load_kvsim_jsonl,
    "kvsim-csv": load_kvsim_csv,
    "columns": load_columns,  # other tools' CSV or JSONL, by recognised or mapped column names
}

# CSV formats, told apart by the columns their header must hold (checked in this order)
_CSV_SIGNATURES = [
    ("kvsim-csv", KVSIM_REQUIRED_COLUMNS),
    ("azure", AZURE_COLUMNS),
    ("burstgpt", BURSTGPT_COLUMNS),
    ("vidur", VIDUR_COLUMNS),  # before lengths: a length dataset with arrival times
    ("lengths", LENGTH_COLUMNS),
]

# format -> what its file holds, for errors that must say what each format needs
FORMAT_TO_COLUMNS = {
    "kvsim-csv": ",".join(KVSIM_REQUIRED_COLUMNS) + " (CSV header)",
    "kvsim-jsonl": "arrival_s, num_prompt_tokens, num_output_tokens (JSONL keys)",
    "azure": ",".join(AZURE_COLUMNS) + " (CSV header)",
    "burstgpt": ",".join(BURSTGPT_COLUMNS) + " (CSV header)",
    "vidur": ",".join(VIDUR_COLUMNS) + " (CSV header)",
    "lengths": ",".join(LENGTH_COLUMNS) + " (CSV header; no arrival times)",
    "mooncake": ", ".join(MOONCAKE_FIELDS) + " (JSONL keys; timestamp in ms)",
    "columns": NEEDS + " (CSV header or JSONL keys)",
}


def formats_in_words() -> str:
    """Every format with the columns it needs, on one line (errors are one line), for error messages."""
    return "; ".join(f"{name}: {columns}" for name, columns in FORMAT_TO_COLUMNS.items())


def detect_format(path: Path) -> str:
    """The format of ``path``, from its first non-blank line: a JSON object's keys or a CSV header's names."""
    first = _first_line(path)
    if first.lstrip().startswith("{"):
        try:
            record = json.loads(first)
            keys = set(record)
        except (json.JSONDecodeError, TypeError):
            raise KvsimError(f"{path}, line 1: starts like JSON Lines but is not a JSON object") from None
        foreign = looks_like_lengths([*keys, *_nested_keys(record)])
        own_names = bool(keys & {"num_prompt_tokens", "num_output_tokens"})
        if HEADER_KEY in keys or ("arrival_s" in keys and (own_names or not foreign)):
            return "kvsim-jsonl"
        if {"timestamp", "input_length", "output_length"} <= keys and "hash_ids" in keys:
            return "mooncake"
        if foreign:
            return "columns"
        raise KvsimError(
            f"{path}: cannot tell the JSONL format from the keys {sorted(keys)}; the formats and what they "
            f"need: {formats_in_words()}. Or map your keys: --trace-columns "
            "arrival_s=KEY:UNIT,num_prompt_tokens=KEY,num_output_tokens=KEY"
        )
    names = [name.strip() for name in next(csv.reader([first]), [])]
    for name, columns in _CSV_SIGNATURES:
        if set(columns) <= set(names):
            return name
    if looks_like_lengths(names):
        return "columns"
    raise KvsimError(
        f"{path}: cannot tell the format from the first line {first[:120]!r}; the formats and the columns "
        f"they need: {formats_in_words()}. Give --format NAME, or map your columns: --trace-columns "
        "arrival_s=COLUMN:UNIT,num_prompt_tokens=COLUMN,num_output_tokens=COLUMN"
    )


def _nested_keys(record: dict) -> list[str]:
    return [f"{key}.{inner}" for key, value in record.items() if isinstance(value, dict) for inner in value]


def read_file(
    path: str | Path,
    format: str | None = None,
    provenance: Provenance | None = None,
    columns: ColumnMapping | str | None = None,
) -> Trace | LengthTable:
    """Load ``path`` in ``format`` (default: detected). ``columns`` (a ``ColumnMapping`` or its text,
    ``arrival_s=ts:ms,...``) names the columns of a file in other tools' names, and implies the ``columns``
    format."""
    path = Path(path)
    if columns is not None:
        if format not in (None, "columns"):
            raise KvsimError(
                f"trace_columns is for the `columns` format, not {format!r}; drop one of trace_columns and "
                "trace_format"
            )
        mapping = columns if isinstance(columns, ColumnMapping) else ColumnMapping.parse(columns)
        _first_line(path)  # a missing, empty or non-text file: the same errors as detection gives
        return load_columns(path, provenance, mapping)
    if format is None:
        format = detect_format(path)
    if format not in LOADERS:
        raise KvsimError(f"unknown trace format {format!r}; use one of {', '.join(LOADERS)}")
    return LOADERS[format](path, provenance)


def save_trace(trace: Trace, path: str | Path, to: str | None = None, *, progress: bool = False) -> str:
    """Write ``trace`` in kvsim's own format; ``to`` is ``jsonl`` or ``csv`` (default: from the suffix).
    ``progress`` shows a bar (tqdm, on a terminal) while writing a long trace. Returns the format written."""
    path = Path(path)
    to = to or path.suffix.lstrip(".").lower()
    if to not in WRITERS:
        raise KvsimError(
            f"cannot write {str(path)!r}: give --to jsonl or --to csv (or a .jsonl/.csv file name)"
        )
    WRITERS[to](trace, path, progress)
    return to


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    return line.rstrip("\r\n")
    except FileNotFoundError:
        raise KvsimError(
            f"trace file {str(path)!r} does not exist; give a bundled name or a file path"
        ) from None
    except IsADirectoryError:
        raise KvsimError(f"{str(path)!r} is a folder; give a trace file") from None
    except UnicodeDecodeError:
        raise KvsimError(f"{path}: not UTF-8 text; give a CSV or JSONL trace file") from None
    raise KvsimError(f"{path} is empty; a trace file needs at least one request")
