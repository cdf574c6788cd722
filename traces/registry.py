"""Bundled traces by short name, and ``load_trace``: the one entry point from a name or a path to a ``Trace``.

The files live in ``traces/data/`` (installed as package data); their provenance is copied from
``traces/data/README.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kvsim.errors import KvsimError
from kvsim.traces.arrivals import make_arrivals
from kvsim.traces.lengths import LengthTable
from kvsim.traces.loaders import read_file
from kvsim.traces.request import Provenance, Trace
from kvsim.traces.transforms import rescale_to_rate

DATA_DIR = Path(__file__).parent / "data"

_AZURE_CITATION = (
    "Patel et al., Splitwise: Efficient Generative LLM Inference Using Phase Splitting, ISCA 2024"
)
_AZURE_SOURCE = "Azure/AzurePublicDataset"


@dataclass(frozen=True)
class BundledTrace:
    filename: str
    format: str  # a key of kvsim.traces.loaders.LOADERS
    description: str
    origin: str  # upstream repository and path
    license: str
    citation: str

    @property
    def path(self) -> Path:
        return DATA_DIR / self.filename

    def provenance(self, name: str) -> Provenance:
        return Provenance(source=f"{name} ({self.origin})", license=self.license, citation=self.citation)


BUNDLED_TRACES: dict[str, BundledTrace] = {
    "azure-conv": BundledTrace(
        "AzureLLMInferenceTrace_conv.csv",
        "azure",
        "Azure LLM inference 2023, conversation service, one hour of production arrivals",
        f"{_AZURE_SOURCE} data/AzureLLMInferenceTrace_conv.csv",
        "CC-BY-4.0",
        _AZURE_CITATION,
    ),
    "azure-code": BundledTrace(
        "AzureLLMInferenceTrace_code.csv",
        "azure",
        "Azure LLM inference 2023, code completion service, one hour of production arrivals (bursty)",
        f"{_AZURE_SOURCE} data/AzureLLMInferenceTrace_code.csv",
        "CC-BY-4.0",
        _AZURE_CITATION,
    ),
    "mooncake-synthetic": BundledTrace(
        "mooncake_fast25_synthetic_trace.jsonl",
        "mooncake",
        "Mooncake FAST'25 synthetic workload: real lengths and prefix hashes, Poisson arrivals",
        "kvcache-ai/Mooncake FAST25-release/traces/synthetic_trace.jsonl",
        "Apache-2.0",
        "Qin et al., Mooncake: A KVCache-centric Disaggregated Architecture for LLM Serving, FAST 2025",
    ),
    "sharegpt": BundledTrace(
        "sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
        "lengths",
        "ShareGPT chat lengths (Llama-2 tokenizer, <= 8K total), no arrival times",
        "microsoft/sarathi-serve data/processed_traces/sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
        "Apache-2.0 (counts only; ShareGPT conversations have their own terms)",
        "Agrawal et al., Taming Throughput-Latency Tradeoff in LLM Inference with Sarathi-Serve, OSDI 2024",
    ),
    "arxiv": BundledTrace(
        "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
        "lengths",
        "arXiv summarization lengths (Vidur's Arxiv-Summarization-4K), no arrival times",
        "microsoft/vidur data/processed_traces/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
        "MIT (counts only; the arXiv corpus has its own terms)",
        "Agrawal et al., Vidur: A Large-Scale Simulation Framework for LLM Inference, MLSys 2024",
    ),
    "bwb": BundledTrace(
        "bwb_stats_llama2_tokenizer_filtered_v2.csv",
        "lengths",
        "Bilingual Web Book translation lengths (Vidur's BWB-4K), no arrival times",
        "project-etalon/etalon data/processed_traces/bwb_stats_llama2_tokenizer_filtered_v2.csv",
        "Apache-2.0 (counts only; the BWB corpus has its own terms)",
        "Agrawal et al., Vidur: A Large-Scale Simulation Framework for LLM Inference, MLSys 2024",
    ),
}

# A length dataset loaded without a rate gets Poisson arrivals at this rate (req/s). It is a placeholder that
# keeps a bare `kvsim traces stats sharegpt` working, not a claim about any service: pass `rate` for real runs.
DEFAULT_LENGTH_DATASET_RATE_PER_S = 1.0


def read_source(
    name_or_path: str | Path, format: str | None = None, columns: str | None = None
) -> Trace | LengthTable:
    """The file behind a bundled name or a path, loaded as it is (a length dataset stays a ``LengthTable``).
    ``columns`` maps a file's columns (``kvsim.traces.loaders.columns``); bundled traces need none."""
    bundled = BUNDLED_TRACES.get(str(name_or_path))
    if bundled is not None:
        if columns is not None:
            raise KvsimError(
                f"trace_columns is for trace files; the bundled trace {str(name_or_path)!r} has known columns"
            )
        return read_file(bundled.path, format or bundled.format, bundled.provenance(str(name_or_path)))
    path = Path(name_or_path)
    if not path.exists():
        raise KvsimError(
            f"no bundled trace or file named {str(name_or_path)!r}; bundled: {', '.join(BUNDLED_TRACES)}"
        )
    return read_file(path, format, columns=columns)


def load_length_table(name_or_path: str | Path, format: str | None = None) -> LengthTable:
    """(prompt, output) pairs of a length dataset or of any trace (its arrival times dropped)."""
    source = read_source(name_or_path, format)
    if isinstance(source, LengthTable):
        return source
    return LengthTable(source.num_prompt_tokens, source.num_output_tokens, source.provenance)


def load_trace(
    name_or_path: str | Path,
    format: str | None = None,
    *,
    rate: float | None = None,
    seed: int = 0,
    arrival: str = "poisson",
    cv: float | None = None,
    arrivals_from: str | Path | None = None,
    columns: str | None = None,
) -> Trace:
    """Load a bundled trace by name, or a file (format detected from content unless given).

    - A trace with arrival times: ``rate`` rescales its times to that mean rate (the shape is kept).
    - A length dataset: its rows, in file order, get arrival times from ``arrivals_from`` (another trace's
      times, row i with arrival i; the longer of the two is cut, and the provenance says so), or else from the
      ``arrival`` process (``poisson``, or ``gamma`` with ``cv``) at ``rate`` (default
      ``DEFAULT_LENGTH_DATASET_RATE_PER_S``) drawn from ``np.random.default_rng(seed)``.

    ``columns`` (``arrival_s=ts:ms,num_prompt_tokens=in,num_output_tokens=out``) names the columns of a file in
    other tools' names (``kvsim.traces.loaders.columns``).
    """
    source = read_source(name_or_path, format, columns)
    if isinstance(source, Trace):
        if arrivals_from is not None:
            raise KvsimError(
                f"{name_or_path!r} has its own arrival times; arrivals_from is for length datasets"
            )
        if arrival != "poisson" or cv is not None:
            raise KvsimError(
                f"{name_or_path!r} has its own arrival times; arrival and cv are for length datasets"
            )
        return source if rate is None else rescale_to_rate(source, rate)
    if arrivals_from is not None:
        times = load_trace(arrivals_from)
        if rate is not None:
            times = rescale_to_rate(times, rate)
        num = min(len(source), len(times))
        arrival_s = times.arrival_s[:num]
        note = (
            f"arrival times of {times.provenance.source} ({num} of {len(source)} rows, {len(times)} arrivals)"
        )
    else:
        rate = DEFAULT_LENGTH_DATASET_RATE_PER_S if rate is None else rate
        num = len(source)
        arrival_s = make_arrivals(arrival, num, rate, np.random.default_rng(seed), cv)
        cv_note = f", cv {cv:g}" if cv is not None else ""
        note = (
            f"generated {arrival} arrivals at {rate:g} req/s{cv_note}, seed {seed} (the dataset has no times)"
        )
    provenance = dataclasses.replace(
        source.provenance, notes="; ".join(p for p in (source.provenance.notes, note) if p)
    )
    return Trace.from_columns(
        arrival_s=arrival_s,
        num_prompt_tokens=source.num_prompt_tokens[:num],
        num_output_tokens=source.num_output_tokens[:num],
        provenance=provenance,
    )
