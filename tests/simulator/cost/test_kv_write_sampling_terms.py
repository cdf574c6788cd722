"""The KV-cache write and sampling terms: each its own StepTime part, priced from the profile exactly, the
roofline's estimate as stated, and every fast path equal to step_time with them."""

import dataclasses

import numpy as np
import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.batch import Batch, StepTime
from kvsim.simulator.cost import ProfileCostModel, load_profile, roofline_profile, shipped_profile_path
from kvsim.simulator.cost.profile import Profile, Term
from kvsim.simulator.specs import GpuSpec, ModelSpec

MODEL = ModelSpec.from_name("llama-3-8b")  # 32 layers, 8 KV heads of 128, vocab 128,256
KV_BYTES_PER_TOKEN = 2 * 8 * 128 * 2  # K and V, fp16, one layer
LOGIT_BYTES_PER_SEQ = 128_256 * 4  # float32 logits over the vocabulary


def _with_terms(profile: Profile, **terms: Term) -> Profile:
    return dataclasses.replace(profile, terms={**profile.terms, **terms})


def _unit_profile() -> Profile:
    """The H100 roofline with round numbers for the new terms: 1 us + 1 ps/byte (paged), 2 us + 2 ps/byte
    (contiguous), sampling 10 us + 1 ps/byte (greedy) and 50 us + 10 ps/byte (top-p)."""
    return _with_terms(
        roofline_profile(GpuSpec.from_name("h100-sxm")),
        kv_write_paged=Term("linear", {"const_s": 1e-6, "bytes": 1e-12}),
        kv_write_contiguous=Term("linear", {"const_s": 2e-6, "bytes": 2e-12}),
        sampling=Term("linear", {"const_s": 10e-6, "bytes": 1e-12}),
        sampling_top_p=Term("linear", {"const_s": 50e-6, "bytes": 10e-12}),
    )


def test_kv_write_is_one_launch_per_layer_over_the_steps_new_tokens_in_the_batchs_kernel():
    cost = ProfileCostModel(_unit_profile(), MODEL)
    mixed = dict(prefill_q_lens=(500,), prefill_kv_lens=(700,), num_decode_seqs=12, decode_kv_tokens=9000)
    paged = cost.step_time(Batch(**mixed, decode_kv_blocks=600, attention_kernel="paged"))
    contiguous = cost.step_time(Batch(**mixed, attention_kernel="contiguous"))
    tokens = 500 + 12
    assert paged.kv_write_s == pytest.approx(32 * (1e-6 + 1e-12 * tokens * KV_BYTES_PER_TOKEN))
    assert contiguous.kv_write_s == pytest.approx(32 * (2e-6 + 2e-12 * tokens * KV_BYTES_PER_TOKEN))


def test_sampling_is_once_per_step_over_each_sequences_logits_greedy_unless_top_p_is_asked():
    batch = Batch(
        prefill_q_lens=(300, 40), prefill_kv_lens=(300, 40), num_decode_seqs=7, decode_kv_tokens=700
    )
    greedy = ProfileCostModel(_unit_profile(), MODEL).step_time(batch)
    top_p = ProfileCostModel(_unit_profile(), MODEL, sampling="top_p").step_time(batch)
    assert greedy.sampling_s == pytest.approx(
        10e-6 + 1e-12 * 9 * LOGIT_BYTES_PER_SEQ
    )  # 2 prompts + 7 decodes
    assert top_p.sampling_s == pytest.approx(50e-6 + 10e-12 * 9 * LOGIT_BYTES_PER_SEQ)
    assert top_p.total_s - greedy.total_s == pytest.approx(top_p.sampling_s - greedy.sampling_s)


def test_an_unknown_sampler_is_refused_by_name():
    with pytest.raises(KvsimError, match="sampling must be one of greedy, top_p, got 'beam'"):
        ProfileCostModel(_unit_profile(), MODEL, sampling="beam")


def test_total_adds_the_new_parts_and_a_profile_without_them_is_unchanged():
    step = StepTime(gemm_s=1.0, rmsnorm_s=0.25, kv_write_s=0.125, sampling_s=0.0625)
    assert step.small_kernels_s == 0.25 + 0.125 + 0.0625 and step.total_s == 1.4375
    profile = load_profile(shipped_profile_path("h100-sxm"))  # kvsim's H100 profile measured neither
    step = ProfileCostModel(profile, MODEL).step_time(Batch(num_decode_seqs=8, decode_kv_tokens=8000))
    assert step.kv_write_s == 0.0 and step.sampling_s == 0.0


def test_roofline_writes_kv_at_two_bytes_moved_per_byte_and_samples_at_the_stated_factors():
    gpu = GpuSpec.from_name("h200")
    cost = ProfileCostModel(roofline_profile(gpu), MODEL)
    step = cost.step_time(Batch(num_decode_seqs=64, decode_kv_tokens=64 * 1000, decode_kv_blocks=64 * 63))
    s_per_byte = 1 / (gpu.hbm_bw_bytes_per_s * 0.8)
    assert step.kv_write_s == pytest.approx(32 * (5e-6 + 2 * 64 * KV_BYTES_PER_TOKEN * s_per_byte))
    assert step.sampling_s == pytest.approx(2 * 5e-6 + 2.5 * 64 * LOGIT_BYTES_PER_SEQ * s_per_byte)
    top_p = ProfileCostModel(roofline_profile(gpu), MODEL, sampling="top_p").step_time(
        Batch(num_decode_seqs=64, decode_kv_tokens=64 * 1000, decode_kv_blocks=64 * 63)
    )
    assert top_p.sampling_s == pytest.approx(10 * 5e-6 + 40 * 64 * LOGIT_BYTES_PER_SEQ * s_per_byte)


@pytest.mark.parametrize("kernel", ["paged", "contiguous"])
@pytest.mark.parametrize("sampling", ["greedy", "top_p"])
def test_fast_paths_equal_step_time_bit_for_bit_with_kv_write_and_sampling(kernel, sampling):
    for profile in (_unit_profile(), roofline_profile(GpuSpec.from_name("a100-80gb"))):
        cost = ProfileCostModel(profile, MODEL, sampling=sampling)
        rng = np.random.default_rng(1)
        for _ in range(40):
            seqs, tokens = int(rng.integers(1, 300)), int(rng.integers(300, 200_000))
            blocks = tokens // 16 + seqs if kernel == "paged" else 0
            alloc = float(rng.choice([0.0, 3e-5]))
            batch = Batch(
                num_decode_seqs=seqs,
                decode_kv_tokens=tokens,
                decode_kv_blocks=blocks,
                attention_kernel=kernel,
                allocator_overhead_s=alloc,
            )
            steps, listed = cost.decode_step_times(batch, 4), cost.decode_step_times_list(batch, 4)
            segments = cost.decode_segment_times(kernel, [(4, seqs, tokens, [blocks] * 4, None)])
            for i in range(4):
                nth = dataclasses.replace(batch, decode_kv_tokens=tokens + i * seqs)
                assert steps[i] == listed[i] == cost.step_time(nth).total_s == cost.step_total_s(nth)
                no_alloc = dataclasses.replace(nth, allocator_overhead_s=0.0)
                assert segments[i] == cost.step_time(no_alloc).total_s
            mixed = Batch((int(rng.integers(1, 3000)),), (5000,), seqs, tokens, blocks, kernel)
            assert cost.step_total_s(mixed) == cost.step_time(mixed).total_s


def test_a_profile_term_for_the_kv_write_needs_its_bytes_parameter():
    data = roofline_profile(GpuSpec.from_name("h100-sxm")).to_dict()
    data["terms"]["kv_write_paged"] = {"form": "linear", "params": {"const_s": 1e-6, "kv_bytes": 1e-12}}
    with pytest.raises(KvsimError, match=r"terms\.kv_write_paged\.params.*expected \['bytes', 'const_s'\]"):
        Profile.from_dict(data)
