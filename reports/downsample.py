"""Timelines as step functions: merge replicas, then downsample to a bounded number of points.

A timeline row holds from its ``time_s`` until the next row of the same replica (docs/outputs.md), so a column is
a right-continuous step function. Two downsamplings, chosen per quantity:

- **time-weighted mean per bucket** for the memory parts: exact area, so a bucket's parts still sum to capacity
  and the stacked area keeps its shape (a short spike is flattened into its bucket, never dropped from the mean);
- **max per bucket** for queue length and batch size: peaks are what a reader looks for, and a mean would hide a
  burst shorter than a bucket.

Below ``max_points`` rows nothing is downsampled. Buckets are equal slices of [first time, last time].
"""

import numpy as np


def merge_replicas(timeline: dict[str, np.ndarray], columns: list[str]) -> dict[str, np.ndarray]:
    """Sum ``columns`` over replicas at every change time of any replica (exact, no resampling).

    Returns ``time_s`` (sorted, unique) and each summed column. Before a replica's first row it counts as 0.
    """
    time_s = np.asarray(timeline["time_s"], dtype=np.float64)
    replica = np.asarray(timeline.get("replica", np.zeros_like(time_s)))
    out_time_s = np.unique(time_s)
    merged = {c: np.zeros_like(out_time_s) for c in columns}
    for r in np.unique(replica):
        rows = np.flatnonzero(replica == r)
        rows = rows[np.argsort(time_s[rows], kind="stable")]
        # index of this replica's last row at or before each merged time; -1 before its first row
        idx = np.searchsorted(time_s[rows], out_time_s, side="right") - 1
        present = idx >= 0
        for c in columns:
            merged[c][present] += np.asarray(timeline[c], dtype=np.float64)[rows[idx[present]]]
    merged["time_s"] = out_time_s
    return merged


def bucket_edges(time_s: np.ndarray, num_buckets: int) -> np.ndarray:
    """``num_buckets + 1`` equal-width edges over [first, last] time."""
    return np.linspace(time_s[0], time_s[-1], num_buckets + 1)


def time_weighted_means(time_s: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of the step function (``values[i]`` on [time_s[i], time_s[i+1])) over each [edges[b], edges[b+1])."""
    widths_s = np.diff(time_s)
    # integral of the step function at each change time; piecewise linear in between, so interp is exact
    integral = np.concatenate(([0.0], np.cumsum(values[:-1] * widths_s)))
    at_edges = np.interp(edges, time_s, integral)
    bucket_s = np.diff(edges)
    return np.divide(np.diff(at_edges), bucket_s, out=np.zeros_like(bucket_s), where=bucket_s > 0)


def bucket_maxima(time_s: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Max of the step function over each bucket: every row whose interval overlaps the bucket counts."""
    first = np.searchsorted(time_s, edges[:-1], side="right") - 1  # row in force at the bucket start
    last = np.searchsorted(time_s, edges[1:], side="left") - 1  # last row starting before the bucket end
    last = np.maximum(last, first)
    first = np.clip(first, 0, len(values) - 1)
    last = np.clip(last, 0, len(values) - 1)
    # A Python loop over at most max_points buckets; the slices together cover each row about once.
    out = np.empty(len(first))
    for b, (lo, hi) in enumerate(zip(first, last)):
        out[b] = values[lo : hi + 1].max()
    return out


def downsample_timeline(
    timeline: dict[str, np.ndarray],
    *,
    mean_columns: list[str],
    max_columns: list[str],
    max_points: int = 2000,
) -> dict[str, np.ndarray]:
    """Replicas merged, then at most ``max_points`` points: bucket starts as ``time_s``, ``mean_columns``
    time-weighted, ``max_columns`` as bucket maxima. Also returns ``downsampled`` (a 0-d bool array)."""
    merged = merge_replicas(timeline, mean_columns + max_columns)
    time_s = merged["time_s"]
    if len(time_s) <= max_points or time_s[-1] <= time_s[0]:
        return {**merged, "downsampled": np.array(False)}
    edges = bucket_edges(time_s, max_points)
    out = {"time_s": edges[:-1], "downsampled": np.array(True)}
    for c in mean_columns:
        out[c] = time_weighted_means(time_s, merged[c], edges)
    for c in max_columns:
        out[c] = bucket_maxima(time_s, merged[c], edges)
    return out
