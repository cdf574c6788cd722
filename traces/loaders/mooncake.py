"""Mooncake trace JSON Lines (Qin et al., "Mooncake", FAST 2025; Apache-2.0).

One object per line: ``timestamp`` (ms from the trace's start), ``input_length``, ``output_length`` and
``hash_ids`` (one prefix-block id per ``PREFIX_BLOCK_TOKENS`` tokens; requests that share leading ids share a
reusable KV prefix), kept as ``prefix_block_hashes``. Arrival = ``timestamp`` / 1000, not re-based.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kvsim.traces.loaders._parse import (
    json_float,
    json_hashes,
    json_int,
    json_records,
    read_text,
    require_rows,
)
from kvsim.traces.request import Provenance, Trace

MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")


def load_mooncake(path: Path, provenance: Provenance | None = None) -> Trace:
    arrival_ms, prompt, output, hashes = [], [], [], []
    for line, record in json_records(path, read_text(path)):
        arrival_ms.append(json_float(path, line, record, "timestamp"))
        prompt.append(json_int(path, line, record, "input_length"))
        output.append(json_int(path, line, record, "output_length"))
        hashes.append(json_hashes(path, line, record, "hash_ids"))
    require_rows(path, arrival_ms)
    return Trace.from_columns(
        arrival_s=np.array(arrival_ms, dtype=np.float64) / 1000.0,
        num_prompt_tokens=np.array(prompt, dtype=np.int64),
        num_output_tokens=np.array(output, dtype=np.int64),
        prefix_block_hashes=hashes,
        provenance=provenance or Provenance(source=str(path)),
    )
