"""Timeline downsampling: exact where it claims to be, bounded in size, and peaks kept."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvsim.reports.downsample import (
    bucket_edges,
    bucket_maxima,
    downsample_timeline,
    merge_replicas,
    time_weighted_means,
)


def test_merge_replicas_sums_each_replicas_value_in_force_at_every_change():
    timeline = {
        "time_s": np.array([0.0, 2.0, 1.0, 3.0]),
        "replica": np.array([0, 0, 1, 1]),
        "num_waiting": np.array([5.0, 1.0, 10.0, 0.0]),
    }
    merged = merge_replicas(timeline, ["num_waiting"])
    assert list(merged["time_s"]) == [0.0, 1.0, 2.0, 3.0]
    # replica 1 counts 0 before its first row at t=1
    assert list(merged["num_waiting"]) == [5.0, 15.0, 11.0, 1.0]


def test_time_weighted_mean_of_a_step_is_its_area_over_the_bucket():
    time_s = np.array([0.0, 1.0, 4.0])
    values = np.array([10.0, 2.0, 0.0])  # 10 on [0,1), 2 on [1,4)
    means = time_weighted_means(time_s, values, np.array([0.0, 2.0, 4.0]))
    assert list(means) == pytest.approx([(10 * 1 + 2 * 1) / 2, 2.0])


def test_bucket_maxima_keep_a_spike_shorter_than_a_bucket():
    time_s = np.array([0.0, 4.9, 5.0, 10.0])
    values = np.array([1.0, 50.0, 1.0, 1.0])  # a 0.1 s spike
    edges = bucket_edges(time_s, 2)
    assert list(bucket_maxima(time_s, values, edges)) == [50.0, 1.0]
    assert time_weighted_means(time_s, values, edges)[0] == pytest.approx((4.9 + 5.0) / 5)


def test_short_timelines_pass_through_unchanged():
    timeline = {"time_s": np.array([0.0, 1.0]), "a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    out = downsample_timeline(timeline, mean_columns=["a"], max_columns=["b"], max_points=10)
    assert not out["downsampled"]
    assert list(out["a"]) == [1.0, 2.0] and list(out["b"]) == [3.0, 4.0]


@settings(max_examples=40, deadline=None)
@given(
    num_rows=st.integers(min_value=3, max_value=400),
    max_points=st.integers(min_value=2, max_value=50),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_downsampled_memory_parts_still_sum_to_capacity_and_preserve_area(num_rows, max_points, seed):
    rng = np.random.default_rng(seed)
    capacity = 1000.0
    time_s = np.concatenate(([0.0], np.sort(rng.uniform(0, 100, num_rows - 2)), [100.0]))
    shares = rng.dirichlet([1, 1, 1], size=num_rows) * capacity
    timeline = {"time_s": time_s, "a": shares[:, 0], "b": shares[:, 1], "c": shares[:, 2], "q": shares[:, 0]}
    out = downsample_timeline(
        timeline, mean_columns=["a", "b", "c"], max_columns=["q"], max_points=max_points
    )
    total = out["a"] + out["b"] + out["c"]
    np.testing.assert_allclose(total, capacity, rtol=1e-9)
    assert len(out["time_s"]) <= max(max_points, num_rows)
    if out["downsampled"]:
        width = 100.0 / max_points
        exact_area = np.sum(shares[:-1, 0] * np.diff(time_s))
        assert np.sum(out["a"] * width) == pytest.approx(exact_area, rel=1e-9)
        assert out["q"].max() == pytest.approx(shares[:-1, 0].max())  # the last row has zero width
