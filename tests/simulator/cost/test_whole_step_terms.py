"""The elementwise terms (RMSNorm, rotary, activation, residual add, embedding) and the measured all-reduce
in the cost model: each a named StepTime part, exact against the profile's numbers, and the fast paths equal."""

import dataclasses

import numpy as np
import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.batch import Batch
from kvsim.simulator.cost import (
    ProfileCostModel,
    load_profile,
    make_cost_model,
    roofline_profile,
    shipped_profile_path,
)
from kvsim.simulator.cost.profile import Profile, Term
from kvsim.simulator.specs import GpuSpec, ModelSpec

MODEL = ModelSpec.from_name("llama-3-8b")


def _with_terms(profile: Profile, **terms: Term) -> Profile:
    return dataclasses.replace(profile, terms={**profile.terms, **terms})


def test_each_elementwise_term_is_its_own_part_with_its_launch_count():
    # const 1 us and 1 ps per output byte for every op; Llama-3-8B: 32 layers, hidden 4096, 32/8 heads of 128
    unit = Term("linear", {"const_s": 1e-6, "bytes": 1e-12})
    names = ("rmsnorm", "rotary", "activation", "residual_add", "embedding")
    profile = _with_terms(roofline_profile(GpuSpec.from_name("h100-sxm")), **dict.fromkeys(names, unit))
    step = ProfileCostModel(profile, MODEL).step_time(Batch(num_decode_seqs=10, decode_kv_tokens=1000))
    t = 10
    assert step.rmsnorm_s == pytest.approx((2 * 32 + 1) * (1e-6 + 1e-12 * t * 4096 * 2))
    assert step.rotary_s == pytest.approx(32 * (1e-6 + 1e-12 * t * (32 + 8) * 128 * 2))
    assert step.activation_s == pytest.approx(32 * (1e-6 + 1e-12 * t * 14336 * 2))
    assert step.residual_add_s == pytest.approx(2 * 32 * (1e-6 + 1e-12 * t * 4096 * 2))
    assert step.embedding_s == pytest.approx(1e-6 + 1e-12 * t * 4096 * 2)
    parts = (step.rmsnorm_s, step.rotary_s, step.activation_s, step.residual_add_s, step.embedding_s)
    assert step.elementwise_s == sum(parts)


def test_a_profile_without_elementwise_terms_adds_none():
    # kvsim's H200 profile measured none of them (make_cost_model borrows the roofline's for it: see
    # test_borrowed_whole_step_terms); the cost model itself adds nothing for an absent term
    profile = load_profile(shipped_profile_path("h200"))
    step = ProfileCostModel(profile, MODEL).step_time(Batch(prefill_q_lens=(512,), prefill_kv_lens=(512,)))
    assert step.elementwise_s == 0.0 and step.rmsnorm_s == 0.0


def test_roofline_estimates_elementwise_as_bytes_moved_over_bandwidth():
    gpu = GpuSpec.from_name("a100-80gb")
    cost = make_cost_model(MODEL, gpu, profile="roofline")
    step = cost.step_time(Batch(prefill_q_lens=(1000,), prefill_kv_lens=(1000,)))
    # a residual add reads two [t, hidden] tensors and writes one, at 80% of the datasheet bandwidth
    per_launch = 5e-6 + 3 * 1000 * 4096 * 2 / (gpu.hbm_bw_bytes_per_s * 0.8)
    assert step.residual_add_s == pytest.approx(2 * 32 * per_launch)


@pytest.mark.parametrize("gpu,tp", [("a100-80gb", 1), ("a100-80gb", 2), ("h100-sxm", 4), ("h200", 8)])
def test_fast_paths_equal_step_time_bit_for_bit_with_the_new_terms(gpu, tp):
    model = ModelSpec.from_name("llama-3-70b") if tp > 1 else MODEL
    cost = make_cost_model(model, gpu, tp)
    rng = np.random.default_rng(0)
    for _ in range(50):
        seqs, tokens = int(rng.integers(1, 200)), int(rng.integers(200, 100_000))
        batch = Batch(num_decode_seqs=seqs, decode_kv_tokens=tokens, decode_kv_blocks=tokens // 16 + seqs)
        steps = cost.decode_step_times(batch, 5)
        listed = cost.decode_step_times_list(batch, 5)
        for i in range(5):
            nth = dataclasses.replace(batch, decode_kv_tokens=tokens + i * seqs)
            assert steps[i] == listed[i] == cost.step_time(nth).total_s == cost.step_total_s(nth)
        mixed = Batch((int(rng.integers(1, 3000)),), (4000,), seqs, tokens, tokens // 16 + seqs)
        assert cost.step_total_s(mixed) == cost.step_time(mixed).total_s


def test_a100_80gb_defaults_to_the_vidur_profile_and_says_so():
    cost = make_cost_model(MODEL, "a100-80gb")
    assert cost.source == "measured"
    assert "Vidur, A100 80GB" in cost.description and "not measured by kvsim" in cost.description
    assert cost.step_time(Batch(num_decode_seqs=1, decode_kv_tokens=100)).rmsnorm_s > 0
    # the roofline stays available, and the A100-40GB (OPT-13B paper set-ups) stays roofline
    assert make_cost_model(MODEL, "a100-80gb", profile="roofline").source == "roofline"
    assert make_cost_model("opt-13b", "a100-40gb").source == "roofline"


def test_allreduce_uses_the_group_sizes_measured_hinge():
    hinge = Term("hinge", {"const_s": 20e-6, "s_per_byte": 1e-11, "knee_bytes": 1_000_000.0})
    profile = _with_terms(roofline_profile(GpuSpec.from_name("l4")), **{"allreduce.tp4": hinge})
    model = ModelSpec.from_name("llama-3-70b")  # hidden 8192: 16,384 bytes per token
    cost = ProfileCostModel(profile, model, 4)
    for t, message in ((10, 163_840), (1000, 16_384_000)):
        expected = 2 * 80 * (20e-6 + 1e-11 * max(0, message - 1_000_000))
        assert cost.step_time(Batch(num_decode_seqs=t, decode_kv_tokens=t * 10)).allreduce_s == pytest.approx(
            expected
        )
    # no hinge for TP 2 in this profile: the ring line of ``allreduce``
    ring = profile.terms["allreduce"].params
    two = ProfileCostModel(profile, model, 2).step_time(Batch(num_decode_seqs=10, decode_kv_tokens=100))
    assert two.allreduce_s == pytest.approx(
        2 * 80 * (ring["const_s"] + ring["ring_bytes"] * 10 * 16384)
    )  # 2 (2-1)/2 = 1


def test_kvsims_own_profiles_take_all_reduce_from_the_measured_collectives():
    model = ModelSpec.from_name("llama-3-70b")
    for gpu, carried in (("h100-sxm", False), ("h200", True)):
        cost = make_cost_model(model, gpu, 4)
        assert cost.profile.terms["allreduce.tp4"].source == "measured"
        assert ("carried over" in cost.profile.notes) is carried
        assert "all-reduce measured" in cost.description
    # the measured 4-GPU DGX H100 all-reduce of 1,000 tokens x 8,192 x 2 bytes: tens of microseconds per call
    per_call = make_cost_model(model, "h100-sxm", 4).step_time(
        Batch(num_decode_seqs=1000, decode_kv_tokens=10**6)
    )
    assert 30e-6 < per_call.allreduce_s / 160 < 150e-6


def test_a_hinge_term_must_have_its_three_parameters():
    data = roofline_profile(GpuSpec.from_name("h100-sxm")).to_dict()
    data["terms"]["allreduce.tp2"] = {"form": "hinge", "params": {"const_s": 1e-5, "s_per_byte": 1e-12}}
    with pytest.raises(KvsimError, match=r"terms\.allreduce\.tp2\.params.*knee_bytes"):
        Profile.from_dict(data)
    assert Term("hinge", {"const_s": 1.0, "s_per_byte": 2.0, "knee_bytes": 3.0}).predict(bytes=5.0) == 5.0
