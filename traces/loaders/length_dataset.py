"""Length datasets of the Vidur/Sarathi-Serve family: ``num_prefill_tokens,num_decode_tokens[,num_total_tokens,
pd_ratio]``. They carry no arrival times; ``kvsim.traces.load_trace`` pairs them with an arrival process.
A file that also has an ``arrived_at`` column is a Vidur trace, loaded with its times."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kvsim.traces.lengths import LengthTable
from kvsim.traces.loaders._parse import CsvColumns, bad_field, read_text
from kvsim.traces.request import Provenance, Trace

LENGTH_COLUMNS = ["num_prefill_tokens", "num_decode_tokens"]


def load_length_dataset(path: Path, provenance: Provenance | None = None) -> LengthTable:
    table = CsvColumns(path, read_text(path), LENGTH_COLUMNS)
    prompt = table.ints("num_prefill_tokens")
    output = table.ints("num_decode_tokens")
    if "num_total_tokens" in table.header:  # a redundant column: a mismatch means a corrupted row
        total = table.ints("num_total_tokens")
        bad = np.flatnonzero(total != prompt + output)
        if len(bad):
            k = int(bad[0])
            problem = f"{total[k]} is not num_prefill_tokens + num_decode_tokens = {prompt[k] + output[k]}"
            raise bad_field(path, table.line_of(k), "num_total_tokens", problem)
    return LengthTable(prompt, output, provenance or Provenance(source=str(path)))


VIDUR_COLUMNS = ["arrived_at", "num_prefill_tokens", "num_decode_tokens"]


def load_vidur_trace(path: Path, provenance: Provenance | None = None) -> Trace:
    """Vidur's processed traces (``arrived_at,num_prefill_tokens,num_decode_tokens``, e.g. its re-encoding of the
    Azure 2023 traces): the length columns plus arrival times in seconds, kept as they are."""
    table = CsvColumns(path, read_text(path), VIDUR_COLUMNS)
    return Trace.from_columns(
        arrival_s=table.floats("arrived_at"),
        num_prompt_tokens=table.ints("num_prefill_tokens"),
        num_output_tokens=table.ints("num_decode_tokens"),
        provenance=provenance or Provenance(source=str(path)),
    )
