"""BurstGPT CSV (Wang et al., "BurstGPT", KDD 2025; CC-BY 4.0).

Columns ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``; ``Timestamp`` is seconds from
the trace's start (kept, not re-based). In BurstGPT a row with 0 response tokens is a **failed** request (the
release notes call them failures). A simulated request needs an output of at least one token, so failed rows
are left out of the trace, and counted: ``trace.meta["num_failed"]`` and the provenance notes say how many.
Any other zero or negative token count is an error. Request ids are data-row positions in the file, so the
ids of kept requests still point at their rows.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from kvsim.errors import KvsimError
from kvsim.traces.loaders._parse import CsvColumns, bad_field, read_text
from kvsim.traces.request import Provenance, Trace

BURSTGPT_COLUMNS = ["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type"]


def load_burstgpt(path: Path, provenance: Provenance | None = None) -> Trace:
    table = CsvColumns(path, read_text(path), BURSTGPT_COLUMNS)
    arrival_s = table.floats("Timestamp")
    output = table.ints("Response tokens", min_value=0)
    ok = np.flatnonzero(output > 0)
    prompt = table.ints("Request tokens", min_value=0)
    if np.any(prompt[ok] < 1):  # only a failed row may have a zero count
        k = int(ok[np.argmax(prompt[ok] < 1)])
        raise bad_field(
            path, table.line_of(k), "Request tokens", f"token count must be >= 1, got {prompt[k]}"
        )
    num_failed = len(output) - len(ok)
    models = Counter(table.strings("Model")[i] for i in ok)
    provenance = provenance or Provenance(source=str(path))
    note = f"{num_failed} failed requests (0 response tokens) of {len(output)} rows left out"
    provenance = Provenance(
        source=provenance.source,
        license=provenance.license,
        citation=provenance.citation,
        notes="; ".join(part for part in (provenance.notes, note) if part),
    )
    if len(ok) == 0:
        raise KvsimError(
            f"{path}: every one of its {len(output)} rows is a failed request (0 response tokens)"
        )
    return Trace.from_columns(
        arrival_s=arrival_s[ok],
        num_prompt_tokens=prompt[ok],
        num_output_tokens=output[ok],
        request_id=ok,
        provenance=provenance,
        meta={
            "num_failed": num_failed,
            "num_rows": len(output),
            "requests_by_model": dict(sorted(models.items())),
        },
    )
