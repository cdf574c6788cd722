"""Mooncake trace JSON Lines (Qin et al., "Mooncake", FAST 2025; Apache-2.0).

One object per line: ``timestamp`` (ms from the trace's start), ``input_length``, ``output_length`` and
``hash_ids`` (one prefix-block id per ``PREFIX_BLOCK_TOKENS`` tokens; requests that share leading ids share a
reusable KV prefix), kept as ``prefix_block_hashes``. Arrival = ``timestamp`` / 1000, not re-based.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kvsim.traces.loaders._jsonl import (
    json_column,
    json_float,
    json_hash_column,
    json_hashes,
    json_int,
    json_records,
    require_rows,
)
from kvsim.traces.loaders._parse import read_text
from kvsim.traces.request import Provenance, Trace

MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")


def load_mooncake(path: Path, provenance: Provenance | None = None) -> Trace:
    records = list(json_records(path, read_text(path)))
    require_rows(path, records)
    columns = (
        json_column(records, "timestamp", "time"),
        json_column(records, "input_length", "count"),
        json_column(records, "output_length", "count"),
        json_hash_column(records, "hash_ids", optional=False),
    )
    if any(column is None for column in columns):
        columns = _checked_line_by_line(path, records)
    arrival_ms, prompt, output, hashes = columns
    return Trace.from_columns(
        arrival_s=np.asarray(arrival_ms, dtype=np.float64) / 1000.0,
        num_prompt_tokens=np.asarray(prompt, dtype=np.int64),
        num_output_tokens=np.asarray(output, dtype=np.int64),
        prefix_block_hashes=hashes,
        provenance=provenance or Provenance(source=str(path)),
    )


def _checked_line_by_line(path: Path, records: list[tuple[int, dict]]) -> tuple[list, list, list, list]:
    arrival_ms, prompt, output, hashes = [], [], [], []
    for line, record in records:
        arrival_ms.append(json_float(path, line, record, "timestamp"))
        prompt.append(json_int(path, line, record, "input_length"))
        output.append(json_int(path, line, record, "output_length"))
        hashes.append(json_hashes(path, line, record, "hash_ids"))
    return arrival_ms, prompt, output, hashes
