"""The bundled traces load, with the counts and statistics their provenance README states."""

import time

import numpy as np
import pytest

from kvsim.traces import (
    BUNDLED_TRACES,
    DEFAULT_LENGTH_DATASET_RATE_PER_S,
    PREFIX_BLOCK_TOKENS,
    LengthTable,
    load_trace,
    read_source,
    trace_stats,
)

# rows per file, from traces/data/README.md
README_ROWS = {
    "azure-conv": 19_366,
    "azure-code": 8_819,
    "mooncake-synthetic": 3_993,
    "sharegpt": 30_731,
    "arxiv": 28_257,
    "bwb": 33_768,
}


def test_the_registry_names_exactly_the_bundled_files():
    assert set(BUNDLED_TRACES) == set(README_ROWS)
    for bundled in BUNDLED_TRACES.values():
        assert bundled.path.is_file()
        assert bundled.license and bundled.citation and bundled.origin


@pytest.mark.parametrize("name", list(README_ROWS))
def test_every_bundled_trace_loads_sorted_with_every_row(name):
    trace = load_trace(name)
    assert len(trace) == README_ROWS[name]
    assert np.all(np.diff(trace.arrival_s) >= 0)
    assert trace.num_prompt_tokens.min() >= 1 and trace.num_output_tokens.min() >= 1
    assert len(np.unique(trace.request_id)) == len(trace)
    assert trace.provenance.license == BUNDLED_TRACES[name].license
    assert name in trace.provenance.source


def test_azure_conv_statistics_match_the_published_description():
    s = trace_stats(load_trace("azure-conv"))
    assert s["num_requests"] == 19_366
    assert s["num_prompt_tokens"]["mean"] == pytest.approx(1_155, abs=0.5)
    assert s["num_output_tokens"]["mean"] == pytest.approx(211, abs=0.5)
    assert s["rate_per_s"] == pytest.approx(5.53, abs=0.005)
    assert s["span_s"] == pytest.approx(3_502, abs=1)
    assert s["interarrival_cv"] == pytest.approx(1.09, abs=0.005)
    assert s["num_prompt_tokens"]["median"] == 1_020 and s["num_prompt_tokens"]["p99"] == 4_142
    assert s["num_output_tokens"]["max"] == 1_000


def test_azure_code_is_bursty():
    s = trace_stats(load_trace("azure-code"))
    assert s["interarrival_cv"] == pytest.approx(13.2, abs=0.05)
    assert s["rate_per_s"] == pytest.approx(2.57, abs=0.005)


def test_azure_arrivals_keep_all_seven_fractional_digits():
    trace = load_trace("azure-conv")
    # first two rows: 18:15:46.6805900 and 18:15:50.9951690 -> 4.3145790 s apart, to 100 ns
    assert trace.arrival_s[0] == 0.0
    assert trace.arrival_s[1] == pytest.approx(4.314579, abs=1e-9)


def test_azure_conv_loads_in_well_under_half_a_second():
    best_s = min(_time_s(lambda: load_trace("azure-conv")) for _ in range(3))
    assert best_s < 0.3, f"azure-conv took {best_s:.3f} s"


def test_mooncake_keeps_hash_ids_as_prefix_block_hashes():
    trace = load_trace("mooncake-synthetic")
    hashes = trace.prefix_block_hashes
    assert hashes is not None and len(hashes) == len(trace)
    # every row: (len(hash_ids) - 1) * 512 < input_length <= len(hash_ids) * 512 (README)
    num_blocks = np.array([len(h) for h in hashes])
    assert np.all((num_blocks - 1) * PREFIX_BLOCK_TOKENS < trace.num_prompt_tokens)
    assert np.all(trace.num_prompt_tokens <= num_blocks * PREFIX_BLOCK_TOKENS)
    s = trace_stats(trace)["prefix_blocks"]
    assert (s["num_blocks"], s["num_unique_blocks"]) == (121_877, 43_924)
    assert trace.arrival_s[2] == pytest.approx(0.040)  # timestamp 40 ms


@pytest.mark.parametrize("name", ["sharegpt", "arxiv", "bwb"])
def test_a_length_dataset_by_name_gets_a_stated_default_poisson_process(name):
    assert isinstance(read_source(name), LengthTable)
    trace = load_trace(name)
    assert (
        f"poisson arrivals at {DEFAULT_LENGTH_DATASET_RATE_PER_S:g} req/s, seed 0" in trace.provenance.notes
    )
    assert np.array_equal(trace.arrival_s, load_trace(name).arrival_s)  # same seed, same times
    assert not np.array_equal(trace.arrival_s, load_trace(name, seed=1).arrival_s)


def test_a_length_dataset_keeps_its_rows_in_file_order():
    lengths = read_source("sharegpt")
    trace = load_trace("sharegpt", rate=3.0)
    assert np.array_equal(trace.num_prompt_tokens, lengths.num_prompt_tokens)
    assert np.array_equal(trace.num_output_tokens, lengths.num_output_tokens)
    assert trace.num_prompt_tokens[:2].tolist() == [74, 290]  # the first data rows of the file


def test_a_length_dataset_can_take_the_arrival_times_of_a_real_trace():
    trace = load_trace("sharegpt", arrivals_from="azure-conv")
    azure = load_trace("azure-conv")
    assert len(trace) == len(azure)  # ShareGPT has more rows than Azure has arrivals: cut, and said so
    assert np.array_equal(trace.arrival_s, azure.arrival_s)
    assert "19366 of 30731 rows" in trace.provenance.notes


def _time_s(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
