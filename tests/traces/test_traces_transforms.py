"""Transforms: rescale to a rate, cut to a window or a count, seeded subsample; each says what it did."""

import math

import numpy as np
import pytest

from kvsim.errors import KvsimError
from kvsim.traces import (
    Provenance,
    Request,
    Trace,
    cut_window,
    load_trace,
    mean_rate_per_s,
    rescale_to_rate,
    subsample,
    take_first,
    trace_stats,
)


def small_trace():
    times = [1.0, 2.0, 2.0, 4.0, 9.0]
    reqs = [Request(i, t, 10 + i, 1 + i, session_id=f"s{i % 2}") for i, t in enumerate(times)]
    return Trace.from_requests(reqs, Provenance(source="small"))


def test_rescaling_hits_the_target_rate_and_keeps_the_shape():
    azure = load_trace("azure-code")
    fast = rescale_to_rate(azure, 10.0)
    assert mean_rate_per_s(fast) == pytest.approx(10.0, rel=1e-12)
    assert trace_stats(fast)["interarrival_cv"] == pytest.approx(
        trace_stats(azure)["interarrival_cv"], rel=1e-9
    )
    assert np.array_equal(fast.num_prompt_tokens, azure.num_prompt_tokens)
    assert "rescaled from 2.566 to 10 req/s" in fast.provenance.notes


def test_load_trace_rate_rescales_a_real_trace():
    assert mean_rate_per_s(load_trace("azure-conv", rate=2.0)) == pytest.approx(2.0, rel=1e-12)


def test_rescaling_scales_about_the_first_arrival():
    trace = rescale_to_rate(small_trace(), 0.5)  # now (5 - 1) / 8 s = 0.5 req/s: unchanged
    assert trace.arrival_s.tolist() == [1.0, 2.0, 2.0, 4.0, 9.0]
    assert rescale_to_rate(small_trace(), 1.0).arrival_s.tolist() == [1.0, 1.5, 1.5, 2.5, 5.0]


def test_a_trace_that_spans_no_time_cannot_be_rescaled():
    one = Trace.from_requests([Request(0, 3.0, 1, 1)], Provenance(source="one"))
    with pytest.raises(KvsimError, match="spans no time"):
        rescale_to_rate(one, 2.0)
    with pytest.raises(KvsimError, match="target rate must be > 0"):
        rescale_to_rate(small_trace(), 0.0)


def test_a_window_keeps_half_open_arrivals_and_shifts_them_to_zero():
    cut = cut_window(small_trace(), 2.0, 9.0)
    assert cut.request_id.tolist() == [1, 2, 3]
    assert cut.arrival_s.tolist() == [0.0, 0.0, 2.0]
    assert cut.session_id == ["s1", "s0", "s1"]
    assert "window [2.0, 9.0) s" in cut.provenance.notes


def test_an_empty_window_is_an_error():
    with pytest.raises(KvsimError, match=r"no request of 'small' arrives in \[20, 30\) s"):
        cut_window(small_trace(), 20, 30)
    with pytest.raises(KvsimError, match="end_s > start_s"):
        cut_window(small_trace(), 5, 5)


def test_take_first_keeps_the_earliest():
    assert take_first(small_trace(), 2).request_id.tolist() == [0, 1]
    assert len(take_first(small_trace(), 99)) == 5
    with pytest.raises(KvsimError, match="num_requests must be >= 1"):
        take_first(small_trace(), 0)


def test_subsample_is_seeded_and_thins_at_the_asked_fraction():
    azure = load_trace("azure-conv")
    a = subsample(azure, 0.3, np.random.default_rng(1))
    assert np.array_equal(a.request_id, subsample(azure, 0.3, np.random.default_rng(1)).request_id)
    assert not np.array_equal(a.request_id, subsample(azure, 0.3, np.random.default_rng(2)).request_id)
    # kept count ~ Binomial(N, 0.3): 5 standard errors of sqrt(N p (1 - p))
    num = len(azure)
    assert len(a) == pytest.approx(0.3 * num, abs=5 * math.sqrt(num * 0.3 * 0.7))
    assert np.all(np.diff(a.arrival_s) >= 0)
    assert set(a.request_id.tolist()) <= set(azure.request_id.tolist())


def test_subsample_fraction_must_be_a_probability():
    with pytest.raises(KvsimError, match=r"fraction must be in \(0, 1\]"):
        subsample(small_trace(), 1.5, np.random.default_rng())
