"""Length datasets of the Vidur/Sarathi-Serve family: ``num_prefill_tokens,num_decode_tokens[,num_total_tokens,
pd_ratio]``. They carry no arrival times; ``kvsim.traces.load_trace`` pairs them with an arrival process."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kvsim.traces.lengths import LengthTable
from kvsim.traces.loaders._parse import CsvColumns, bad_field, read_text
from kvsim.traces.request import Provenance

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
