"""Fitting the profile's terms to measurements (scipy), with quality measured on held-out points.

Each term's form comes from the work its kernel does (simulator/cost/profile.py): ``linear`` terms are fitted
with non-negative least squares, ``max`` (GEMM roofline) terms with bounded ``least_squares``. Both minimise
the RELATIVE error, since times span four orders of magnitude and the goal is a small MAPE everywhere.
Quality is reported on points the fit did not see: a random 20% split, and an extrapolation split (fit on the
smaller 80% by work, test on the largest 20%). The parameters shipped are then fitted on all points.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import least_squares, nnls

from kvsim.simulator.cost.profile import (
    FORM_PARAMS,
    GEMM_OPS,
    OPTIONAL_TERMS,
    RAMP_FEATURES,
    REQUIRED_TERMS,
    DeviceInfo,
    FitQuality,
    Profile,
    Term,
    ramp_param,
)
from kvsim.simulator.cost.roofline import roofline_profile
from kvsim.simulator.specs import GpuSpec

HOLDOUT_FRACTION = 0.2
MIN_POINTS = 6  # below this a term is not fitted (the roofline's stands in, marked as such)
# Terms fitted with a ramp in their first feature (profile.py's RAMP_FEATURES: ``<feature>_min_<K>``), and the knees
# K it may use: every 4x from 1 MiB, those strictly inside the range of the points fitted. Decode attention
# on an H200 (2026-11-26) ran at 0.07 TB/s for 0.5 MB of KV and 4.6 TB/s for 8.6 GB, a bandwidth that rises
# with size; a straight line through that missed by 10 to 14% (held-out MAPE), the ramp by about 7 to 11%.
RAMP_KNEES = tuple(2**20 * 4**k for k in range(9))  # 1 MiB .. 64 GiB


def fit_linear(features: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """β ≥ 0 minimising Σ ((features·β − y) / y)²; ``features`` [n, p] includes the constant column."""
    a = features / seconds[:, None]
    scale = np.abs(a).max(axis=0)
    scale[scale == 0] = 1.0
    beta, _ = nnls(a / scale, np.ones(len(seconds)))
    return beta / scale


def fit_max(flops: np.ndarray, nbytes: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """(const_s, s_per_flop, s_per_byte) ≥ 0 minimising the relative error of const + max(a·flops, b·bytes)."""
    f_scale, b_scale, y_scale = flops.max() or 1.0, nbytes.max() or 1.0, float(np.median(seconds))
    f, b, y = flops / f_scale, nbytes / b_scale, seconds / y_scale

    def residuals(x: np.ndarray) -> np.ndarray:
        return (x[0] + np.maximum(x[1] * f, x[2] * b)) / y - 1.0

    a0, b0 = np.median(y / np.maximum(f, 1e-12)), np.median(y / np.maximum(b, 1e-12))
    best = None
    for x0 in (
        [y.min() / 2, a0 / 2, b0 / 2],
        [y.min() / 2, a0, b0 / 10],
        [y.min() / 2, a0 / 10, b0],
        [0.0, a0, b0],
    ):
        result = least_squares(residuals, np.maximum(x0, 1e-9), bounds=(0.0, np.inf), x_scale="jac")
        if best is None or result.cost < best.cost:
            best = result
    c, a, bb = best.x
    return np.array([c * y_scale, a * y_scale / f_scale, bb * y_scale / b_scale])


# Knees a ``hinge`` fit may place: every √2 from 64 KiB to 64 MiB, those strictly inside the fitted range.
HINGE_KNEES = tuple(round(2**16 * 2 ** (k / 2)) for k in range(21))


def fit_hinge(nbytes: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """(const_s, s_per_byte, knee_bytes) ≥ 0 minimising the relative error of const + s · max(0, bytes − knee):
    for each candidate knee a non-negative linear fit (``fit_linear``), the knee with the least error kept."""
    best, best_cost = None, np.inf
    for knee in (0, *(k for k in HINGE_KNEES if nbytes.min() < k < nbytes.max())):
        columns = np.column_stack([np.ones(len(seconds)), np.maximum(0.0, nbytes - knee)])
        beta = fit_linear(columns, seconds)
        cost = float(np.sum((columns @ beta / seconds - 1.0) ** 2))
        if cost < best_cost:
            best, best_cost = np.array([beta[0], beta[1], float(knee)]), cost
    assert best is not None
    return best


def _design(form: str, features: tuple[str, ...], rows: list[dict[str, Any]]) -> np.ndarray:
    columns = ("flops", "bytes") if form == "max" else features
    x = np.array([[float(row.get(name, 0.0)) for name in columns] for row in rows], dtype=float)
    return x.reshape(len(rows), len(columns))


def _knees(values: np.ndarray) -> tuple[int, ...]:
    """The ramp knees inside the range of ``values`` (a knee outside it would only duplicate the slope)."""
    low, high = float(values.min()), float(values.max())
    return tuple(k for k in RAMP_KNEES if low < k < high)


def _with_ramps(x: np.ndarray, knees: tuple[int, ...]) -> np.ndarray:
    """``x`` with a column min(x[:, 0], K) per knee appended (the ramp features, in knee order)."""
    return np.column_stack([x, *(np.minimum(x[:, 0], k) for k in knees)]) if knees else x


def _fit(form: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if form == "max":
        return fit_max(x[:, 0], x[:, 1], y)
    if form == "hinge":
        return fit_hinge(x[:, 0], y)
    return fit_linear(np.column_stack([np.ones(len(y)), x]), y)


def _predict(form: str, params: np.ndarray, x: np.ndarray) -> np.ndarray:
    if form == "max":
        return params[0] + np.maximum(params[1] * x[:, 0], params[2] * x[:, 1])
    if form == "hinge":
        return params[0] + params[1] * np.maximum(0.0, x[:, 0] - params[2])
    return params[0] + x @ params[1:]


def mape_pct(predicted: np.ndarray, measured: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - measured) / measured) * 100)


def r2(predicted: np.ndarray, measured: np.ndarray) -> float:
    total = float(np.sum((measured - measured.mean()) ** 2))
    return float(1 - np.sum((measured - predicted) ** 2) / total) if total > 0 else float("nan")


def launch_savings_s(row: dict[str, Any]) -> float:
    """Per launch, what a layer's kernels timed alone took beyond the layer run back to back: the layer pays
    the lone-launch cost once (its first kernel), so its other ``launches - 1`` kernels each saved this."""
    return (float(row["parts_s"]) - float(row["median_s"])) / (float(row["launches"]) - 1)


def layer_with_overlap_s(parts_s, launches, overlap_s: float):
    """A whole layer's time as the ``launch_overlap`` term models it (``launch_savings_s`` inverted): its
    kernels timed alone, less ``overlap_s`` for each launch after the first. Scalars or arrays."""
    return parts_s - (launches - 1) * overlap_s


def fit_launch_overlap(rows: list[dict[str, Any]], seed: int = 0) -> Term | None:
    """``launch_overlap`` from whole-layer rows: the median per-launch saving (not below zero). Its quality is
    how well ``parts - (launches - 1) · overlap`` predicts the layers it was not fitted on."""
    rows = [r for r in rows if float(r["launches"]) > 1]
    if len(rows) < MIN_POINTS:
        return None
    savings = np.array([launch_savings_s(r) for r in rows])
    parts = np.array([float(r["parts_s"]) for r in rows])
    launches = np.array([float(r["launches"]) for r in rows])
    layer = np.array([float(r["median_s"]) for r in rows])
    n = len(rows)
    num_test = max(1, round(HOLDOUT_FRACTION * n))
    quality: dict[str, Any] = {"n": n, "n_holdout": num_test, "n_extrapolation": num_test}
    splits = {
        "holdout": np.random.default_rng(seed).permutation(n),
        "extrapolation": np.argsort(parts, kind="stable"),  # fitted on the smaller layers
    }
    for split, order in splits.items():
        train, test = order[:-num_test], order[-num_test:]
        overlap = max(0.0, float(np.median(savings[train])))
        predicted = layer_with_overlap_s(parts[test], launches[test], overlap)
        quality[f"mape_{split}_pct"] = mape_pct(predicted, layer[test])
        quality[f"r2_{split}"] = r2(predicted, layer[test]) if num_test > 1 else None
    clean = {k: (v if v == v else None) for k, v in quality.items()}
    return Term("linear", {"const_s": max(0.0, float(np.median(savings)))}, FitQuality(**clean))


def fit_term(name: str, rows: list[dict[str, Any]], seed: int = 0) -> Term | None:
    """Fit term ``name`` on its rows; None when there are too few points to fit and test."""
    if name == "launch_overlap":
        return fit_launch_overlap(rows, seed)
    form, features = REQUIRED_TERMS.get(name) or OPTIONAL_TERMS[name]
    if form == "table":
        by_size: dict[int, list[float]] = {}
        for row in rows:
            by_size.setdefault(int(row["page_size_bytes"]), []).append(float(row["median_s"]))
        params = {str(size): float(np.median(v)) for size, v in sorted(by_size.items())}
        return Term("table", params, FitQuality(n=len(rows))) if params else None
    if len(rows) < MIN_POINTS:
        return None
    x, y = _design(form, features, rows), np.array([float(r["median_s"]) for r in rows])
    n = len(y)
    num_test = max(1, round(HOLDOUT_FRACTION * n))
    quality: dict[str, Any] = {"n": n, "n_holdout": num_test, "n_extrapolation": num_test}
    work = x[:, 0]  # flops for gemm / prefill, kv_bytes for decode: the size the extrapolation split sorts by
    splits = {
        "holdout": np.random.default_rng(seed).permutation(n),
        "extrapolation": np.argsort(work, kind="stable"),
    }
    ramp = RAMP_FEATURES.get(name)
    assert ramp is None or ramp == features[0], "a ramp is fitted in the term's first feature"
    for split, order in splits.items():
        train, test = order[:-num_test], order[-num_test:]
        knees = _knees(x[train, 0]) if ramp else ()
        params = _fit(form, _with_ramps(x[train], knees), y[train])
        predicted = _predict(form, params, _with_ramps(x[test], knees))
        quality[f"mape_{split}_pct"] = mape_pct(predicted, y[test])
        quality[f"r2_{split}"] = r2(predicted, y[test]) if num_test > 1 else None
    knees = _knees(x[:, 0]) if ramp else ()
    params = _fit(form, _with_ramps(x, knees), y)
    names = (
        FORM_PARAMS[form]
        if form in FORM_PARAMS
        else ("const_s", *features, *(ramp_param(ramp, k) for k in knees))
    )
    clean = {k: (v if v == v else None) for k, v in quality.items()}  # NaN (constant y) -> None
    return Term(form, {k: float(v) for k, v in zip(names, params)}, FitQuality(**clean))


def terms_to_fit(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by the term they fit. Per-op GEMM rows also pool into the generic ``gemm``."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["term"], []).append(row)
        if row["term"].startswith("gemm.") and row["term"][5:] in GEMM_OPS:
            groups.setdefault("gemm", []).append(row)
    return groups


def fit_profile(
    meta: dict[str, Any], rows: list[dict[str, Any]], fallback_gpu: GpuSpec, seed: int = 0
) -> Profile:
    """A profile from a calibration run's rows. Terms that could not be fitted (not measured, too few points,
    or unmeasurable on one GPU: all-reduce, step overhead) come from ``fallback_gpu``'s roofline, marked so."""
    roofline = roofline_profile(fallback_gpu)
    fitted: dict[str, Term] = {}
    for name, group in terms_to_fit(rows).items():
        if name in REQUIRED_TERMS or name in OPTIONAL_TERMS:
            term = fit_term(name, group, seed)
            if term is not None:
                fitted[name] = term
    terms = dict(fitted)
    for name, term in roofline.terms.items():
        if name not in terms:  # (the roofline's all-reduce is measured where collectives ship for the GPU)
            terms[name] = Term(term.form, dict(term.params), term.fit, term.source or "roofline")
    source = meta.get("source", "measured")
    device_fields = DeviceInfo.__dataclass_fields__
    device = DeviceInfo(**{k: v for k, v in meta["device"].items() if k in device_fields})
    borrowed = sorted(name for name, t in terms.items() if t.source == "roofline")
    notes = f"fitted from {len(rows)} measurements"
    if borrowed:
        notes += f"; from the {fallback_gpu.name} roofline: {', '.join(borrowed)}"
    return Profile(
        device,
        source,
        terms,
        representative=bool(meta.get("representative", True)),
        notes=notes,
        model=meta.get("model"),
        tp=int(meta.get("tp", 1)),
        extra={
            k: v for k, v in meta.items() if k not in ("device", "source", "representative", "model", "tp")
        },
    )
