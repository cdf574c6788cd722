"""Fitting recovers known parameters from noisy synthetic measurements, and reports held-out quality."""

import numpy as np
import pytest

from kvsim.calibrate.fit import fit_linear, fit_max, fit_profile, fit_term, mape_pct
from kvsim.simulator.specs import GPUS

RNG_SEED = 1234


def noisy(seconds: np.ndarray, rng: np.random.Generator, rel: float = 0.02) -> np.ndarray:
    return seconds * (1 + rng.normal(0, rel, size=seconds.shape))


def decode_rows(rng: np.random.Generator, n: int = 60) -> list[dict]:
    # Truth: 6 µs + 0.5 ns per KB of KV + 0.2 µs per sequence + 4 ns per block.
    rows = []
    for _ in range(n):
        seqs = int(rng.integers(1, 256))
        kv_bytes = float(seqs * rng.integers(64, 8192) * 4096)
        blocks = float(np.ceil(kv_bytes / 4096 / 16))
        truth = 6e-6 + 0.5e-12 * kv_bytes + 0.2e-6 * seqs + 4e-9 * blocks
        rows.append(
            {
                "term": "attn_decode_paged",
                "kv_bytes": kv_bytes,
                "num_seqs": seqs,
                "num_blocks": blocks,
                "median_s": float(noisy(np.array(truth), rng)),
            }
        )
    return rows


def test_nnls_recovers_linear_parameters_from_noisy_points():
    rng = np.random.default_rng(RNG_SEED)
    x = np.column_stack([np.ones(200), rng.uniform(1e6, 1e9, 200), rng.integers(1, 300, 200)])
    truth = np.array([5e-6, 4e-13, 1e-7])
    beta = fit_linear(x, noisy(x @ truth, rng, 0.01))
    assert beta == pytest.approx(truth, rel=0.05)


def test_max_form_recovers_a_gemm_roofline():
    rng = np.random.default_rng(RNG_SEED)
    tokens = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192] * 3, dtype=float)
    k, n = 4096, 14336
    flops, nbytes = 2 * tokens * k * n, 2 * (k * n + tokens * (k + n))
    truth = (4e-6, 1 / 600e12, 1 / 2.8e12)
    seconds = noisy(truth[0] + np.maximum(truth[1] * flops, truth[2] * nbytes), rng, 0.01)
    assert fit_max(flops, nbytes, seconds) == pytest.approx(truth, rel=0.1)


def test_fit_term_reports_held_out_quality():
    rng = np.random.default_rng(RNG_SEED)
    term = fit_term("attn_decode_paged", decode_rows(rng))
    # a straight-line truth: the decode ramp's knees may take part of its slope; the predictions stay on it
    errors = [
        term.predict(kv_bytes=r["kv_bytes"], num_seqs=r["num_seqs"], num_blocks=r["num_blocks"])
        / (6e-6 + 0.5e-12 * r["kv_bytes"] + 0.2e-6 * r["num_seqs"] + 4e-9 * r["num_blocks"])
        - 1
        for r in decode_rows(np.random.default_rng(RNG_SEED + 1))
    ]
    assert np.mean(np.abs(errors)) < 0.03
    fit = term.fit
    assert fit.n == 60 and fit.n_holdout == 12 and fit.n_extrapolation == 12
    assert fit.mape_holdout_pct < 4 and fit.mape_extrapolation_pct < 4 and fit.r2_holdout > 0.99
    # with 20% noise the held-out error shows it: the quality numbers are not in-sample flattery
    noisy_term = fit_term(
        "attn_decode_paged",
        [dict(r, median_s=r["median_s"] * (1 + 0.2 * rng.standard_normal())) for r in decode_rows(rng)],
    )
    assert noisy_term.fit.mape_holdout_pct > 5


def test_decode_fits_a_ramp_where_bandwidth_grows_with_size():
    """Small decode launches reach a fraction of the HBM bandwidth that large ones do (0.07 TB/s at 0.5 MB, 4.6
    TB/s at 8.6 GB on an H200): the fit's concave ramp follows that; a straight line cannot."""
    rng = np.random.default_rng(RNG_SEED)
    kv_bytes = np.exp(rng.uniform(np.log(5e5), np.log(8e9), 300))
    seqs = rng.integers(1, 256, 300)

    def truth(b):
        return 5e-6 + 2.2e-13 * b + 1.6e-12 * np.minimum(b, 4 * 2**20) + 1e-13 * np.minimum(b, 256 * 2**20)

    rows = [
        {"term": "attn_decode_contiguous", "kv_bytes": b, "num_seqs": int(n), "median_s": float(t)}
        for b, n, t in zip(kv_bytes, seqs, noisy(truth(kv_bytes), rng, 0.01))
    ]
    term = fit_term("attn_decode_contiguous", rows)
    assert term.fit.mape_holdout_pct < 2.5 and term.fit.mape_extrapolation_pct < 2.5
    assert any(name.startswith("kv_bytes_min_") for name in term.params)
    for b in (1e6, 3e7, 5e8, 6e9):
        assert term.predict(kv_bytes=b, num_seqs=8) == pytest.approx(truth(b), rel=0.03)
    line = np.column_stack([np.ones(300), kv_bytes, seqs])
    seconds = np.array([r["median_s"] for r in rows])
    assert mape_pct(line @ fit_linear(line, seconds), seconds) > 10  # in-sample, even


def test_too_few_points_fit_nothing():
    assert fit_term("attn_decode_paged", decode_rows(np.random.default_rng(0), n=4)) is None


def test_profile_fills_unmeasured_terms_from_the_roofline_and_says_so():
    rng = np.random.default_rng(RNG_SEED)
    rows = decode_rows(rng) + [
        {"term": "vmm_map", "page_size_bytes": 2097152, "median_s": s} for s in (30e-6, 31e-6, 35e-6)
    ]
    meta = {
        "device": {"name": "H100-SXM", "memory_bytes": 80 * 2**30, "num_sms": 132, "date": "2026-11-25"},
        "source": "measured",
        "representative": True,
        "model": "Llama-3-8B",
        "tp": 1,
    }
    profile = fit_profile(meta, rows, GPUS["h100-sxm"])
    assert (
        profile.terms["attn_decode_paged"].source is None and profile.terms["attn_decode_paged"].fit.n == 60
    )
    assert profile.terms["vmm_map"].params == {"2097152": 31e-6}
    assert profile.terms["gemm"].source == "roofline" and profile.terms["step_overhead"].source == "roofline"
    # one GPU cannot measure all-reduce: DGX H100's NCCL timings (Vidur's) stand in, marked measured
    assert profile.terms["allreduce"].source == "measured" and profile.terms["allreduce.tp4"].form == "hinge"
    assert "roofline" in profile.notes and profile.model == "Llama-3-8B"


def layer_rows(rng: np.random.Generator, overlap_s: float, n: int = 20) -> list[dict]:
    """Whole layers of 5 or 6 kernel calls: alone, each call costs ``overlap_s`` more than back to back."""
    rows = []
    for _ in range(n):
        launches = int(rng.choice([5, 6]))
        layer_s = float(rng.uniform(100e-6, 3e-3))
        parts_s = layer_s + (launches - 1) * overlap_s
        rows.append(
            {
                "term": "launch_overlap",
                "parts_s": float(noisy(np.array(parts_s), rng, 0.005)),
                "launches": launches,
                "median_s": layer_s,
            }
        )
    return rows


def test_launch_overlap_is_the_per_launch_saving_of_layers_over_their_parts():
    term = fit_term("launch_overlap", layer_rows(np.random.default_rng(RNG_SEED), 6e-6))
    assert term.form == "linear" and set(term.params) == {"const_s"}
    assert term.params["const_s"] == pytest.approx(6e-6, rel=0.15)
    assert term.fit.n == 20 and term.fit.mape_holdout_pct < 1.5 and term.fit.mape_extrapolation_pct < 1.5
    # layers no faster than their parts: no overlap, never a negative one
    none = fit_term("launch_overlap", layer_rows(np.random.default_rng(RNG_SEED), -3e-6))
    assert none.params["const_s"] == 0.0
    assert fit_term("launch_overlap", layer_rows(np.random.default_rng(0), 6e-6, n=4)) is None
