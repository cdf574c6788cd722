"""The step's other kernels as calibration times them (calibrate/step_ops.py, step_sweeps.py): each op does
what a serving engine's does, and each sweep row's feature is the bytes the cost model counts for it."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kvsim.calibrate import step_ops  # noqa: E402
from kvsim.calibrate.fit import fit_term  # noqa: E402
from kvsim.calibrate.measurements import Measurements  # noqa: E402
from kvsim.calibrate.run import SMOKE_MODEL, smoke_grid, smoke_step_ops_grid  # noqa: E402
from kvsim.calibrate.step_sweeps import StepOpsSweeper  # noqa: E402
from kvsim.calibrate.sweeps import Sweeper  # noqa: E402
from kvsim.calibrate.timing import Timer  # noqa: E402


def test_rms_norm_scales_each_token_to_unit_root_mean_square():
    x = torch.randn(5, 64) * 3
    y = step_ops.rms_norm(x, torch.full((64,), 2.0))
    assert torch.allclose(y.pow(2).mean(-1).sqrt(), torch.full((5,), 2.0), rtol=1e-3)


def test_rotary_keeps_each_pairs_length_and_turns_position_zero_by_nothing():
    cache = step_ops.rotary_cache(64, 16, "cpu")
    q, k = torch.randn(3, 4, 16), torch.randn(3, 2, 16)
    rq, rk = step_ops.rotary(q, k, cache, torch.tensor([0, 5, 63]))
    assert torch.allclose(rq[0], q[0], atol=1e-6) and torch.allclose(rk[0], k[0], atol=1e-6)
    pair_norm = lambda x: x.reshape(*x.shape[:-1], -1, 2).norm(dim=-1)  # noqa: E731
    assert torch.allclose(pair_norm(rq), pair_norm(q), atol=1e-5)
    assert not torch.allclose(rq[1], q[1])


def test_silu_mul_gates_the_up_half_with_the_silu_of_the_gate_half():
    gate, up = torch.randn(4, 8), torch.randn(4, 8)
    out = step_ops.silu_mul(torch.cat([gate, up], dim=-1))
    assert torch.allclose(out, gate * torch.sigmoid(gate) * up)


def test_paged_kv_write_lands_each_token_at_its_slot_and_nowhere_else():
    k_cache, v_cache = torch.zeros(6, 4, 2, 8), torch.zeros(6, 4, 2, 8)
    k, v = torch.randn(3, 2, 8), torch.randn(3, 2, 8)
    slots = torch.tensor([5 * 4 + 1, 0 * 4 + 3, 2 * 4 + 0])  # block · block_size + offset
    step_ops.kv_write_paged(k_cache, v_cache, slots, k, v)
    assert (
        torch.equal(k_cache[5, 1], k[0])
        and torch.equal(k_cache[0, 3], k[1])
        and torch.equal(v_cache[2, 0], v[2])
    )
    assert int((k_cache != 0).any(-1).any(-1).sum()) == 3


def test_contiguous_kv_write_lands_each_token_in_its_sequences_region():
    k_cache, v_cache = torch.zeros(3, 10, 2, 8), torch.zeros(3, 10, 2, 8)
    k, v = torch.randn(2, 2, 8), torch.randn(2, 2, 8)
    step_ops.kv_write_contiguous(k_cache, v_cache, torch.tensor([2, 0]), torch.tensor([7, 9]), k, v)
    assert torch.equal(k_cache[2, 7], k[0]) and torch.equal(v_cache[0, 9], v[1])


def test_greedy_takes_the_argmax_and_top_p_samples_only_inside_the_nucleus():
    logits = torch.tensor([[0.0, 5.0, 1.0, 4.9], [3.0, 0.0, 0.0, 0.0]])
    assert step_ops.sample_greedy(logits).tolist() == [1, 0]
    torch.manual_seed(0)
    picks = {
        int(t)
        for _ in range(200)
        for t in step_ops.sample_top_p(logits[:1], torch.ones(1, 1), torch.full((1, 1), 0.9)).view(-1)
    }
    assert picks == {1, 3}  # tokens 1 and 3 hold ~0.97 of the mass; 0 and 2 are cut


def test_each_sweep_row_carries_the_bytes_the_cost_model_counts(tmp_path):
    measurements = Measurements({"device": {"name": "cpu"}})
    timer = Timer("cpu", target_s=0.0, min_reps=1, max_reps=1, warmup=0)
    sweeper = Sweeper(smoke_grid(), "cpu", "reference", timer, measurements, show_progress=False)
    ops = StepOpsSweeper(sweeper, SMOKE_MODEL, 1, smoke_step_ops_grid())
    ops.measure_elementwise(("rotary", 8))
    ops.measure_elementwise(("activation", 8))
    ops.measure_kv_write(("paged", "decode", 4))
    ops.measure_kv_write(("contiguous", "prefill", 16))
    ops.measure_sampling(("top_p", 3))
    rows = {(r["term"], r.get("kernel")): r for r in measurements.rows}
    f32 = 4  # the smoke sweeps run in float32
    assert rows[("rotary", None)]["bytes"] == 8 * (4 + 2) * 16 * f32  # q and k heads of the smoke model
    assert rows[("activation", None)]["bytes"] == 8 * 128 * f32
    assert rows[("kv_write_paged", "decode")]["bytes"] == 4 * 2 * 2 * 16 * f32
    assert rows[("kv_write_paged", "decode")]["num_seqs"] == 4
    assert rows[("kv_write_contiguous", "prefill")]["bytes"] == 16 * 2 * 2 * 16 * f32
    assert rows[("sampling_top_p", "top_p")]["bytes"] == 3 * 256 * 4  # float32 logits over the vocabulary
    assert all(r["median_s"] > 0 for r in measurements.rows)


def test_sweeps_cover_every_new_term_with_enough_points_to_fit():
    measurements = Measurements({"device": {"name": "cpu"}})
    sweeper = Sweeper(smoke_grid(), "cpu", "reference", Timer("cpu", 0.0, 1, 1, 0), measurements, False)
    ops = StepOpsSweeper(sweeper, SMOKE_MODEL, 1, smoke_step_ops_grid())
    counts: dict[str, int] = {}
    for points in (ops.elementwise_points(), ops.kv_write_points(), ops.sampling_points()):
        for point in points:
            term = {"greedy": "sampling", "top_p": "sampling_top_p"}.get(point[0], point[0])
            term = f"kv_write_{term}" if term in ("paged", "contiguous") else term
            counts[term] = counts.get(term, 0) + 1
    assert set(counts) == {
        "rmsnorm", "rotary", "activation", "residual_add", "embedding",
        "kv_write_paged", "kv_write_contiguous", "sampling", "sampling_top_p",
    }  # fmt: skip
    assert min(counts.values()) >= 6  # fit.MIN_POINTS


def test_a_new_term_fits_its_line_from_rows_of_bytes():
    rng = np.random.default_rng(0)
    nbytes = 2.0 ** np.arange(10, 26)
    rows = [
        {"term": "kv_write_paged", "bytes": b, "median_s": (3e-6 + 4e-13 * b) * rng.uniform(0.99, 1.01)}
        for b in nbytes
    ]
    term = fit_term("kv_write_paged", rows)
    assert term.params["const_s"] == pytest.approx(3e-6, rel=0.05)
    assert term.params["bytes"] == pytest.approx(4e-13, rel=0.05)
    assert term.fit.n == 16 and term.fit.mape_holdout_pct < 2
