"""Generators: deterministic under a seed, and the rate, CV and lengths they produce are what was asked,
within sampling error. Tolerances are 5 standard errors, derived per test."""

import math

import numpy as np
import pytest

from kvsim.errors import KvsimError
from kvsim.traces import (
    PREFIX_BLOCK_TOKENS,
    FixedLengths,
    LognormalLengths,
    UniformLengths,
    WorkloadSpec,
    gamma_arrivals,
    generate_trace,
    load_trace,
    parse_lengths,
    poisson_arrivals,
    read_source,
    trace_stats,
)

NUM = 20_000


def rng(seed=0):
    return np.random.default_rng(seed)


def test_arrivals_are_deterministic_under_a_seed():
    assert np.array_equal(poisson_arrivals(100, 2.0, rng(7)), poisson_arrivals(100, 2.0, rng(7)))
    assert not np.array_equal(poisson_arrivals(100, 2.0, rng(7)), poisson_arrivals(100, 2.0, rng(8)))
    assert np.array_equal(gamma_arrivals(100, 2.0, rng(7), cv=3.0), gamma_arrivals(100, 2.0, rng(7), cv=3.0))


@pytest.mark.parametrize("rate_per_s", [0.5, 40.0])
def test_poisson_rate_and_cv_are_within_sampling_error(rate_per_s):
    times = poisson_arrivals(NUM, rate_per_s, rng(1))
    assert np.all(np.diff(times) >= 0) and times[0] > 0
    gaps = np.diff(np.concatenate([[0.0], times]))
    # mean of N exponential gaps: relative standard error 1/sqrt(N); the rate inherits it (delta method)
    assert NUM / times[-1] == pytest.approx(rate_per_s, rel=5 / math.sqrt(NUM))
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=_cv_rel_se(1.0, NUM) * 5)


@pytest.mark.parametrize("cv", [0.5, 2.0, 4.0])
def test_gamma_rate_and_cv_are_within_sampling_error(cv):
    rate_per_s = 3.0
    times = gamma_arrivals(NUM, rate_per_s, rng(2), cv=cv)
    gaps = np.diff(np.concatenate([[0.0], times]))
    # mean of N gamma gaps with coefficient of variation cv: relative standard error cv/sqrt(N)
    assert NUM / times[-1] == pytest.approx(rate_per_s, rel=5 * cv / math.sqrt(NUM))
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=5 * _cv_rel_se(cv, NUM))


def test_the_cv_check_would_catch_the_wrong_process():
    """The CV tolerance is tight enough to tell Poisson from a gamma process of cv 1.3."""
    gaps = np.diff(np.concatenate([[0.0], gamma_arrivals(NUM, 1.0, rng(3), cv=1.3)]))
    assert abs(gaps.std() / gaps.mean() - 1.0) > 5 * _cv_rel_se(1.0, NUM)


def _cv_rel_se(cv: float, num: int) -> float:
    """A conservative relative standard error of the sample CV of gamma gaps with shape k = 1/cv².
    Var(s²)/σ⁴ = (2 + 6/k)/N (gamma excess kurtosis 6/k), so s has relative SE ½·sqrt((2 + 6/k)/N); the
    mean's is cv/sqrt(N). Adding the two ignores their (positive) correlation, which only narrows the CV's."""
    k = 1 / cv**2
    return 0.5 * math.sqrt((2 + 6 / k) / num) + cv / math.sqrt(num)


def test_bad_arrival_parameters_are_errors():
    with pytest.raises(KvsimError, match="rate_per_s must be a finite number > 0"):
        poisson_arrivals(10, 0.0, rng())
    with pytest.raises(KvsimError, match="num_requests must be an integer >= 1"):
        poisson_arrivals(0, 1.0, rng())
    with pytest.raises(KvsimError, match="cv must be > 0"):
        gamma_arrivals(10, 1.0, rng(), cv=0.0)
    with pytest.raises(KvsimError, match="use the gamma arrival process"):
        poisson_arrivals(10, 1.0, rng(), cv=2.0)


def test_fixed_and_uniform_lengths():
    assert FixedLengths(7).sample(3, rng()).tolist() == [7, 7, 7]
    tokens = UniformLengths(3, 6).sample(NUM, rng())
    assert set(tokens.tolist()) == {3, 4, 5, 6}  # both ends included
    # uniform on 4 values: sd = sqrt((4² - 1)/12)
    assert tokens.mean() == pytest.approx(4.5, abs=5 * math.sqrt(15 / 12) / math.sqrt(NUM))


@pytest.mark.parametrize(("mean_tokens", "sigma"), [(200, 0.5), (1000, 1.0)])
def test_lognormal_lengths_have_the_asked_mean_and_spread(mean_tokens, sigma):
    tokens = LognormalLengths(mean_tokens, sigma).sample(NUM, rng(4))
    sd = mean_tokens * math.sqrt(math.exp(sigma**2) - 1)  # lognormal standard deviation
    assert tokens.min() >= 1
    assert tokens.mean() == pytest.approx(mean_tokens, abs=5 * sd / math.sqrt(NUM) + 0.5)  # +0.5: rounding
    # the median of a lognormal is exp(mu) = mean * exp(-sigma²/2)
    assert np.median(tokens) == pytest.approx(mean_tokens * math.exp(-(sigma**2) / 2), rel=0.05)


def test_lognormal_lengths_are_capped():
    assert LognormalLengths(1000, 2.0, max_tokens=1500).sample(1000, rng()).max() == 1500


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("512", FixedLengths(512)),
        ("fixed:64", FixedLengths(64)),
        ("uniform:10:20", UniformLengths(10, 20)),
        ("lognormal:1000:0.8", LognormalLengths(1000, 0.8)),
        ("lognormal:1000:0.8:4096", LognormalLengths(1000, 0.8, 4096)),
    ],
)
def test_length_specs_parse(spec, expected):
    assert parse_lengths(spec) == expected


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("zipf:1", "unknown length distribution"),
        ("uniform:20:10", "swap them"),
        ("fixed:0", "num_tokens must be an integer >= 1"),
        ("lognormal:1000", "bad length distribution"),
        ("fixed:x", "bad length distribution"),
    ],
)
def test_bad_length_specs_are_errors(spec, words):
    with pytest.raises(KvsimError, match=words):
        parse_lengths(spec)


def test_resampled_lengths_keep_dataset_pairs():
    table = read_source("arxiv")
    prompt, output = table.resample(5000, rng(5))
    pairs = set(zip(table.num_prompt_tokens.tolist(), table.num_output_tokens.tolist()))
    assert all(pair in pairs for pair in zip(prompt.tolist(), output.tolist()))


def test_a_synthetic_trace_is_deterministic_under_a_seed():
    spec = WorkloadSpec(
        num_requests=500, rate_per_s=4.0, arrival="gamma", cv=2.0, num_prefix_groups=3, prefix_tokens=1024
    )
    a, b = generate_trace(spec, rng(9)), generate_trace(spec, rng(9))
    assert list(a) == list(b)
    assert list(a) != list(generate_trace(spec, rng(10)))


def test_a_synthetic_trace_has_the_asked_rate_and_cv():
    spec = WorkloadSpec(num_requests=NUM, rate_per_s=8.0, arrival="gamma", cv=2.0)
    s = trace_stats(generate_trace(spec, rng(11)))
    assert s["rate_per_s"] == pytest.approx(8.0, rel=5 * 2.0 / math.sqrt(NUM))
    assert s["interarrival_cv"] == pytest.approx(2.0, rel=5 * _cv_rel_se(2.0, NUM))
    assert "gamma arrivals at 8 req/s (cv 2)" in s["source"]


def test_n_and_beam_width_are_set_on_every_request():
    trace = generate_trace(WorkloadSpec(num_requests=10, rate_per_s=1.0, n=4, beam_width=2), rng())
    assert all(r.n == 4 and r.beam_width == 2 for r in trace)
    assert generate_trace(WorkloadSpec(num_requests=10, rate_per_s=1.0), rng()).n is None


def test_lengths_can_be_resampled_from_a_bundled_dataset():
    spec = WorkloadSpec(num_requests=2000, rate_per_s=1.0, lengths_from="bwb")
    trace = generate_trace(spec, rng(12))
    bwb = load_trace("bwb")
    assert trace.num_output_tokens.max() <= bwb.num_output_tokens.max()
    assert trace.num_output_tokens.mean() == pytest.approx(bwb.num_output_tokens.mean(), rel=0.05)


def test_shared_prefix_groups_share_whole_leading_blocks_and_nothing_else():
    spec = WorkloadSpec(
        num_requests=300, rate_per_s=1.0, prompt="uniform:1:2000", num_prefix_groups=4, prefix_tokens=1300
    )
    trace = generate_trace(spec, rng(13))
    num_shared = 1300 // PREFIX_BLOCK_TOKENS  # 2 whole blocks; the partial third block mixes in own tokens
    leading = {}
    own_blocks = []
    for r in trace:
        assert r.num_prompt_tokens >= 1301
        assert len(r.prefix_block_hashes) == -(-r.num_prompt_tokens // PREFIX_BLOCK_TOKENS)
        leading.setdefault(r.prefix_block_hashes[:num_shared], 0)
        leading[r.prefix_block_hashes[:num_shared]] += 1
        own_blocks += r.prefix_block_hashes[num_shared:]
    assert len(leading) == 4  # one shared prefix per group
    assert len(own_blocks) == len(set(own_blocks))  # every other block is unique
    assert not set(own_blocks) & {h for prefix in leading for h in prefix}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"num_requests": 0}, "num_requests must be an integer >= 1"),
        ({"rate_per_s": -1.0}, "rate_per_s must be > 0"),
        ({"arrival": "uniform"}, "arrival must be one of poisson, gamma"),
        ({"cv": 2.0}, "needs arrival='gamma'"),
        ({"prompt": "zipf:2"}, "unknown length distribution"),
        ({"n": 0}, "n must be >= 1"),
        ({"num_prefix_groups": 2, "prefix_tokens": 100}, "prefix_tokens must be >= 512"),
        ({"prefix_tokens": 1024}, "prefix_tokens needs num_prefix_groups >= 1"),
    ],
)
def test_a_bad_workload_spec_names_the_field(fields, words):
    with pytest.raises(KvsimError, match=words):
        WorkloadSpec(**{"num_requests": 10, "rate_per_s": 1.0, **fields})
