"""Profiles from Vidur's published measurements: the shipped files are what the command writes, the features
come from the models' shapes, and a wrong file is refused."""

import json

import numpy as np
import pytest
from fitted_json import differences

from kvsim.calibrate import vidur
from kvsim.calibrate.fit import fit_hinge
from kvsim.errors import KvsimError
from kvsim.simulator.cost import load_profile, shipped_profile_path


def test_hinge_fit_recovers_a_flat_then_linear_collective():
    nbytes = np.geomspace(2048, 64 * 2**20, 200)
    seconds = 30e-6 + 1e-11 * np.maximum(0.0, nbytes - 2**20)  # 30 us flat, then 100 GB/s past 1 MiB
    const_s, s_per_byte, knee = fit_hinge(nbytes, seconds)
    assert knee == 2**20
    assert const_s == pytest.approx(30e-6, rel=1e-6) and s_per_byte == pytest.approx(1e-11, rel=1e-6)


def test_differences_finds_a_changed_digit_but_not_rounding():
    shipped = {"terms": {"gemm": {"params": {"const_s": 7.783165737300736e-06}, "n": 365}}, "notes": "x"}
    rounding = {"terms": {"gemm": {"params": {"const_s": 7.783165737969222e-06}, "n": 365}}, "notes": "x"}
    refit = {"terms": {"gemm": {"params": {"const_s": 7.7832e-06}, "n": 365}}, "notes": "x"}
    assert differences(rounding, shipped, rel=1e-6) == []
    assert differences(refit, shipped, rel=1e-6) == [
        "$.terms.gemm.params.const_s: 7.7832e-06 != 7.783165737300736e-06"
    ]
    assert differences({**shipped, "notes": "y"}, shipped, rel=1e-6) == ["$.notes: 'y' != 'x'"]


@pytest.mark.slow
def test_the_shipped_a100_profile_and_allreduce_fits_are_what_build_writes(tmp_path):
    profile_path, fits_path = vidur.build(tmp_path)
    built = load_profile(profile_path).to_dict()
    assert differences(built, load_profile(vidur.PROFILES_DIR / vidur.PROFILE_FILE).to_dict(), rel=1e-6) == []
    shipped = json.loads((vidur.DATA_DIR / vidur.FITS_FILE).read_text())
    assert differences(json.loads(fits_path.read_text()), shipped, rel=1e-6) == []
    assert shipped_profile_path("a100-80gb") == vidur.PROFILES_DIR / vidur.PROFILE_FILE


def test_the_a100_profile_is_marked_as_vidurs_measurement():
    profile = load_profile(vidur.PROFILES_DIR / vidur.PROFILE_FILE)
    assert profile.source == "measured" and profile.device.name == "A100-80GB"
    assert "Vidur" in profile.provenance and "not measured by kvsim" in profile.provenance
    assert profile.terms["step_overhead"].source == "roofline"  # Vidur measured no engine overhead
    for name in ("gemm.qkv", "rmsnorm", "attn_decode_paged", "allreduce.tp4"):
        assert profile.terms[name].fit.mape_holdout_pct is not None and profile.terms[name].fit.n > 900


def test_gemm_features_come_from_the_models_shapes_at_each_tp():
    rows = vidur.operator_rows("compute/a100/meta-llama/Meta-Llama-3-8B/mlp.csv.gz", "llama-3-8b")
    qkv = next(r for r in rows if r["term"] == "gemm.qkv" and r["tp"] == 2 and r["t"] == 64)
    # Llama-3-8B at TP 2: 16 query + 4 KV heads per GPU, head_dim 128 -> n = (16 + 2 * 4) * 128
    assert qkv["flops"] == 2 * 64 * 4096 * (16 + 8) * 128
    act = next(r for r in rows if r["term"] == "activation" and r["tp"] == 4 and r["t"] == 64)
    assert act["bytes"] == 64 * 14336 // 4 * 2


def test_a_csv_of_another_models_shapes_is_refused():
    with pytest.raises(KvsimError, match="n_kv_head is 8, kvsim's Llama-2-7B has 32"):
        vidur.operator_rows("compute/a100/meta-llama/Meta-Llama-3-8B/mlp.csv.gz", "llama-2-7b")


def test_a_missing_data_file_says_where_it_looked(tmp_path):
    with pytest.raises(KvsimError, match="cannot read Vidur data"):
        vidur.read_csv("network/a100_dgx/all_reduce.csv.gz", tmp_path)


def test_crosscheck_matches_kvsims_kernels_to_vidurs_at_the_same_shape_and_tokens(capsys):
    assert vidur.main(["crosscheck"]) == 0
    out = capsys.readouterr().out
    # kvsim measured four GEMMs at TP 1-8 for 15 token counts; Vidur has the 13 up to 4,096 tokens
    for operator in vidur.GEMM_OPERATORS:
        assert f"| Llama-2-7B | {operator} | 52 |" in out
    # the H100 profile's rmsnorm is cited from these very measurements (vidur_h100.py): said so, not a check
    assert "| Llama-2-7B | input_layernorm | rmsnorm (fitted on these) |" in out
