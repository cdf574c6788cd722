"""kvsim.traces: request traces (real and synthetic), loaders, generators and transforms (DESIGN §2).

Start with ``load_trace("azure-conv")`` (a bundled name, see ``BUNDLED_TRACES``, or any file path) and
``trace_stats(trace)``; ``generate_trace(WorkloadSpec(...), rng)`` makes synthetic workloads.
"""

from kvsim.traces.arrivals import ARRIVALS, gamma_arrivals, make_arrivals, poisson_arrivals
from kvsim.traces.lengths import (
    LENGTHS,
    FixedLengths,
    LengthDistribution,
    LengthTable,
    LognormalLengths,
    UniformLengths,
    parse_lengths,
)
from kvsim.traces.loaders import LOADERS, detect_format, read_file, save_trace
from kvsim.traces.registry import (
    BUNDLED_TRACES,
    DEFAULT_LENGTH_DATASET_RATE_PER_S,
    BundledTrace,
    load_length_table,
    load_trace,
    read_source,
)
from kvsim.traces.request import PREFIX_BLOCK_TOKENS, Provenance, Request, Trace
from kvsim.traces.stats import trace_stats
from kvsim.traces.synthetic import WorkloadSpec, generate_trace, shared_prefix_hashes
from kvsim.traces.transforms import cut_window, mean_rate_per_s, rescale_to_rate, subsample, take_first

__all__ = [
    "ARRIVALS",
    "BUNDLED_TRACES",
    "DEFAULT_LENGTH_DATASET_RATE_PER_S",
    "LENGTHS",
    "LOADERS",
    "PREFIX_BLOCK_TOKENS",
    "BundledTrace",
    "FixedLengths",
    "LengthDistribution",
    "LengthTable",
    "LognormalLengths",
    "Provenance",
    "Request",
    "Trace",
    "UniformLengths",
    "WorkloadSpec",
    "cut_window",
    "detect_format",
    "gamma_arrivals",
    "generate_trace",
    "load_length_table",
    "load_trace",
    "make_arrivals",
    "mean_rate_per_s",
    "parse_lengths",
    "poisson_arrivals",
    "read_file",
    "read_source",
    "rescale_to_rate",
    "save_trace",
    "shared_prefix_hashes",
    "subsample",
    "take_first",
    "trace_stats",
]
