"""kvsim's own trace files, JSONL and CSV. Writing then reading gives back the same requests exactly
(arrival times are written with ``repr``, the shortest text that reads back as the same float).

JSONL: an optional first line ``{"kvsim_trace": 1, "source": ..., "license": ..., "citation": ..., "notes": ...}``
keeps the provenance, then one object per request with ``request_id``, ``arrival_s``, ``num_prompt_tokens``,
``num_output_tokens`` and optionally ``n``, ``beam_width``, ``prefix_block_hashes`` (list or null),
``session_id`` (string or null).

CSV: header ``request_id,arrival_s,num_prompt_tokens,num_output_tokens[,n,beam_width,session_id,
prefix_block_hashes]``; ``prefix_block_hashes`` is space-separated integers; an empty cell means none (so a
session id cannot be the empty string, and a hash list cannot be empty). Lines end with \\r\\n (RFC 4180),
so fields holding line breaks are quoted. CSV has no room for provenance.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kvsim.errors import KvsimError
from kvsim.traces.loaders._jsonl import (
    json_column,
    json_float,
    json_hash_column,
    json_hashes,
    json_int,
    json_records,
    require_rows,
)
from kvsim.traces.loaders._parse import CsvColumns, bad_field, read_text
from kvsim.traces.request import Provenance, Trace

KVSIM_COLUMNS = ["request_id", "arrival_s", "num_prompt_tokens", "num_output_tokens"]
# A hand-written file may leave request_id out: each request is then numbered by its position (0, 1, ...).
KVSIM_REQUIRED_COLUMNS = KVSIM_COLUMNS[1:]
KVSIM_OPTIONAL_COLUMNS = ["n", "beam_width", "session_id", "prefix_block_hashes"]
HEADER_KEY = "kvsim_trace"  # the JSONL provenance line has this key, with the format version as value


def load_kvsim_jsonl(path: Path, provenance: Provenance | None = None) -> Trace:
    records = list(json_records(path, read_text(path)))
    header = next((record for _, record in records if HEADER_KEY in record), {})
    records = [(line, record) for line, record in records if HEADER_KEY not in record]
    require_rows(path, records)
    numbered = not any("request_id" in record for _, record in records)  # no ids at all: by position
    ids = np.arange(len(records), dtype=np.int64) if numbered else json_column(records, "request_id", "id")
    columns = (
        ids if ids is not None and len(np.unique(ids)) == len(ids) else None,
        json_column(records, "arrival_s", "time"),
        json_column(records, "num_prompt_tokens", "count"),
        json_column(records, "num_output_tokens", "count"),
        json_column(records, "n", "count", default=1),
        json_column(records, "beam_width", "count", default=1),
        json_hash_column(records, "prefix_block_hashes", optional=True),
        _sessions(records),
    )
    if any(column is None for column in columns):
        columns = _checked_line_by_line(path, records, numbered)
    ids, arrival_s, prompt, output, n, beam, hashes, sessions = columns
    if provenance is None:
        origin = header.get("source")
        notes = (f"written from {origin}" if origin else "", header.get("notes", ""))
        provenance = Provenance(
            source=str(path),
            license=header.get("license", "unknown"),
            citation=header.get("citation", ""),
            notes="; ".join(p for p in notes if p),
        )
    return Trace.from_columns(
        request_id=np.asarray(ids, dtype=np.int64),
        arrival_s=np.asarray(arrival_s, dtype=np.float64),
        num_prompt_tokens=np.asarray(prompt, dtype=np.int64),
        num_output_tokens=np.asarray(output, dtype=np.int64),
        n=np.asarray(n, dtype=np.int64),
        beam_width=np.asarray(beam, dtype=np.int64),
        prefix_block_hashes=hashes,
        session_id=sessions,
        provenance=provenance,
    )


def _sessions(records: list[tuple[int, dict]]) -> list | None:
    sessions = [record.get("session_id") for _, record in records]
    return sessions if set(map(type, sessions)) <= {str, type(None)} else None


def _checked_line_by_line(path: Path, records: list[tuple[int, dict]], numbered: bool) -> tuple[list, ...]:
    ids, arrival_s, prompt, output, n, beam, hashes, sessions = [], [], [], [], [], [], [], []
    id_to_line: dict[int, int] = {}
    for line, record in records:
        if numbered:
            request_id = len(ids)
        else:  # then every line has one (a line without one is named)
            request_id = json_int(path, line, record, "request_id", min_value=0, what="request id")
        if request_id in id_to_line:
            raise bad_field(path, line, "request_id", f"{request_id} repeats line {id_to_line[request_id]}")
        id_to_line[request_id] = line
        ids.append(request_id)
        arrival_s.append(json_float(path, line, record, "arrival_s"))
        prompt.append(json_int(path, line, record, "num_prompt_tokens"))
        output.append(json_int(path, line, record, "num_output_tokens"))
        n.append(json_int(path, line, record, "n", what="n") if "n" in record else 1)
        has_beam = "beam_width" in record
        beam.append(json_int(path, line, record, "beam_width", what="beam width") if has_beam else 1)
        has_hashes = record.get("prefix_block_hashes") is not None
        hashes.append(json_hashes(path, line, record, "prefix_block_hashes") if has_hashes else None)
        session = record.get("session_id")
        if session is not None and not isinstance(session, str):
            raise bad_field(path, line, "session_id", f"expected a string or null, got {session!r}")
        sessions.append(session)
    return ids, arrival_s, prompt, output, n, beam, hashes, sessions


def load_kvsim_csv(path: Path, provenance: Provenance | None = None) -> Trace:
    table = CsvColumns(path, read_text(path), KVSIM_REQUIRED_COLUMNS)
    if "request_id" in table.header:
        ids = table.ints("request_id", min_value=0, what="request id")
    else:  # numbered by position
        ids = np.arange(len(table), dtype=np.int64)
    unique, first = np.unique(ids, return_index=True)
    if len(unique) < len(ids):
        repeat = np.setdiff1d(np.arange(len(ids)), first)[0]
        k0 = int(np.flatnonzero(ids == ids[repeat])[0])
        raise bad_field(
            path, table.line_of(repeat), "request_id", f"{ids[repeat]} repeats line {table.line_of(k0)}"
        )
    has = set(table.header)
    hashes = None
    if "prefix_block_hashes" in has:
        hashes = [
            _parse_hashes(table, k, cell) for k, cell in enumerate(table.strings("prefix_block_hashes"))
        ]
    return Trace.from_columns(
        request_id=ids,
        arrival_s=table.floats("arrival_s"),
        num_prompt_tokens=table.ints("num_prompt_tokens"),
        num_output_tokens=table.ints("num_output_tokens"),
        n=table.ints("n", what="n") if "n" in has else None,
        beam_width=table.ints("beam_width", what="beam width") if "beam_width" in has else None,
        prefix_block_hashes=hashes,
        session_id=[s or None for s in table.strings("session_id")] if "session_id" in has else None,
        provenance=provenance or Provenance(source=str(path)),
    )


def _parse_hashes(table: CsvColumns, k: int, cell: str) -> tuple[int, ...] | None:
    if not cell.strip():
        return None
    try:
        return tuple(int(h) for h in cell.split())
    except ValueError:
        problem = f"expected space-separated integer block hashes, got {cell!r}"
        raise bad_field(table.path, table.line_of(k), "prefix_block_hashes", problem) from None


def _columns(trace: Trace) -> list[list]:
    """The request fields as plain Python lists (much faster to write than making ``Request`` objects)."""
    num = len(trace)
    ones = [1] * num
    return [
        trace.request_id.tolist(),
        trace.arrival_s.tolist(),
        trace.num_prompt_tokens.tolist(),
        trace.num_output_tokens.tolist(),
        ones if trace.n is None else trace.n.tolist(),
        ones if trace.beam_width is None else trace.beam_width.tolist(),
        [None] * num if trace.session_id is None else list(trace.session_id),
        [None] * num if trace.prefix_block_hashes is None else list(trace.prefix_block_hashes),
    ]


def write_jsonl(trace: Trace, path: Path, progress: bool = False) -> None:
    p = trace.provenance
    with open(path, "w", encoding="utf-8") as f:
        header = {
            HEADER_KEY: 1,
            "source": p.source,
            "license": p.license,
            "citation": p.citation,
            "notes": p.notes,
        }
        f.write(json.dumps(header) + "\n")
        # formatted by hand, not json.dumps per record (3x faster); floats use repr, as json.dumps does
        for i, a, p_, o, n, b, session, hashes in _with_progress(zip(*_columns(trace)), len(trace), progress):
            h = "null" if hashes is None else "[" + ", ".join(map(str, hashes)) + "]"
            f.write(
                f'{{"request_id": {i}, "arrival_s": {a!r}, "num_prompt_tokens": {p_}, "num_output_tokens": {o}, '
                f'"n": {n}, "beam_width": {b}, "prefix_block_hashes": {h}, "session_id": {json.dumps(session)}}}\n'
            )


def write_csv(trace: Trace, path: Path, progress: bool = False) -> None:
    ids, arrival_s, prompt, output, n, beam, sessions, hashes = _columns(trace)
    for i, (session, h) in enumerate(zip(sessions, hashes)):
        if session == "":
            raise KvsimError(f"request {ids[i]} has an empty session id, which CSV cannot hold; write JSONL")
        if h is not None and not h:
            raise KvsimError(f"request {ids[i]} has an empty hash list, which CSV cannot hold; write JSONL")
    with open(path, "w", encoding="utf-8", newline="") as f:
        # the default "\r\n" line ends (RFC 4180) make the writer quote any field holding \r or \n
        writer = csv.writer(f)
        writer.writerow(KVSIM_COLUMNS + KVSIM_OPTIONAL_COLUMNS)
        rows = zip(
            ids,
            map(repr, arrival_s),
            prompt,
            output,
            n,
            beam,
            ("" if s is None else s for s in sessions),
            ("" if h is None else " ".join(map(str, h)) for h in hashes),
        )
        writer.writerows(_with_progress(rows, len(trace), progress))


# Writing took about 1 s per 200k requests on the (shared) dev machine; below that a bar is noise.
PROGRESS_MIN_REQUESTS = 200_000


def _with_progress(rows: Iterator, total: int, progress: bool) -> Iterator:
    if not progress or total < PROGRESS_MIN_REQUESTS:
        return rows
    from tqdm import tqdm  # lazy: only long writes show a bar (on stderr, and only on a terminal)

    return tqdm(rows, total=total, unit="req", desc="writing", disable=None, leave=False)


WRITERS = {"jsonl": write_jsonl, "csv": write_csv}
