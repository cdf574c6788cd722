"""Trace file formats: one loader per format, registered by name, and format detection from content.

A loader takes a path (and optional provenance) and returns a ``Trace``, except ``lengths``, which returns a
``LengthTable`` (no arrival times) that ``kvsim.traces.load_trace`` pairs with an arrival process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from kvsim.errors import KvsimError
from kvsim.traces.lengths import LengthTable
from kvsim.traces.loaders.azure import AZURE_COLUMNS, load_azure
from kvsim.traces.loaders.burstgpt import BURSTGPT_COLUMNS, load_burstgpt
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
}

# CSV formats, told apart by the columns their header must hold (checked in this order)
_CSV_SIGNATURES = [
    ("kvsim-csv", KVSIM_REQUIRED_COLUMNS),
    ("azure", AZURE_COLUMNS),
    ("burstgpt", BURSTGPT_COLUMNS),
    ("vidur", VIDUR_COLUMNS),  # before lengths: a length dataset with arrival times
    ("lengths", LENGTH_COLUMNS),
]


def detect_format(path: Path) -> str:
    """The format of ``path``, from its first non-blank line: a JSON object's keys or a CSV header's names."""
    first = _first_line(path)
    if first.lstrip().startswith("{"):
        try:
            keys = set(json.loads(first))
        except (json.JSONDecodeError, TypeError):
            raise KvsimError(f"{path}, line 1: starts like JSON Lines but is not a JSON object") from None
        if HEADER_KEY in keys or "arrival_s" in keys:
            return "kvsim-jsonl"
        if {"timestamp", "input_length", "output_length"} <= keys:
            return "mooncake"
        raise KvsimError(
            f"{path}: cannot tell the JSONL format from the keys {sorted(keys)}; kvsim JSONL needs arrival_s, "
            f"Mooncake needs {', '.join(MOONCAKE_FIELDS)}"
        )
    names = {name.strip() for name in first.split(",")}
    for name, columns in _CSV_SIGNATURES:
        if set(columns) <= names:
            return name
    raise KvsimError(
        f"{path}: cannot tell the format from the first line {first[:120]!r}; give --format "
        f"({', '.join(LOADERS)}), or a CSV whose header has the columns of one of them"
    )


def read_file(
    path: str | Path, format: str | None = None, provenance: Provenance | None = None
) -> Trace | LengthTable:
    path = Path(path)
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
