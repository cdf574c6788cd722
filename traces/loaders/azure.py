"""Azure LLM inference trace 2023 (Patel et al., "Splitwise", ISCA 2024; CC-BY 4.0).

Columns ``TIMESTAMP,ContextTokens,GeneratedTokens``; ``TIMESTAMP`` is wall-clock time with 7 fractional
digits (``2023-11-16 18:17:03.9799600``). Arrival = seconds from the earliest request.
"""

from __future__ import annotations

from pathlib import Path

from kvsim.traces.loaders._parse import CsvColumns, read_text
from kvsim.traces.request import Provenance, Trace

AZURE_COLUMNS = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]


def load_azure(path: Path, provenance: Provenance | None = None) -> Trace:
    table = CsvColumns(path, read_text(path), AZURE_COLUMNS)
    return Trace.from_columns(
        arrival_s=table.datetimes_s("TIMESTAMP"),
        num_prompt_tokens=table.ints("ContextTokens"),
        num_output_tokens=table.ints("GeneratedTokens"),
        provenance=provenance or Provenance(source=str(path)),
    )
