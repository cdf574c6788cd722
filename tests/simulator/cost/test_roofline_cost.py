"""The roofline cost model: hand-computed numbers, TP, and the exactness fast-forwarding relies on."""

import dataclasses

import numpy as np
import pytest

from kvsim.simulator.batch import Batch
from kvsim.simulator.cost import ProfileCostModel, make_cost_model
from kvsim.simulator.cost.paged_factor import VLLM_2023
from kvsim.simulator.cost.profile import Term
from kvsim.simulator.cost.roofline import (
    ALLREDUCE_BW_EFFICIENCY,
    ALLREDUCE_LATENCY_S,
    DECODE_ATTN_BW_EFFICIENCY,
    GEMM_FLOPS_EFFICIENCY,
    HBM_BW_EFFICIENCY,
    KERNEL_LAUNCH_S,
    PREFILL_ATTN_FLOPS_EFFICIENCY,
    STEP_OVERHEAD_S,
)
from kvsim.simulator.specs import GPUS, MODELS, weight_bytes_per_gpu

A100 = GPUS["a100-80gb"]
BW = A100.hbm_bw_bytes_per_s * HBM_BW_EFFICIENCY
FLOPS = A100.dense_fp16_flops_per_s * GEMM_FLOPS_EFFICIENCY


def test_one_llama_2_7b_decode_step_by_hand():
    # Llama-2-7B: 32 layers, hidden 4096, 32 heads of 128, MLP 11008 (gated); vocab 32000. Batch: 4 decoding
    # sequences holding 1000 context tokens in all, on the paged kernel, A100-80GB, tp=1.
    cost = make_cost_model("llama-2-7b", "a100-80gb", profile="roofline")
    step = cost.step_time(Batch(num_decode_seqs=4, decode_kv_tokens=1000, decode_kv_blocks=64))
    t = 4
    gemm_layer_s = 0.0
    for k, n in [(4096, 3 * 4096), (4096, 4096), (4096, 2 * 11008), (11008, 4096)]:
        # 4 tokens: memory bound, weights dominate
        assert 2 * (k * n + t * (k + n)) / BW > 2 * t * k * n / FLOPS
        gemm_layer_s += KERNEL_LAUNCH_S + 2 * (k * n + t * (k + n)) / BW
    assert step.gemm_s == pytest.approx(32 * gemm_layer_s, rel=1e-12)
    kv_bytes_per_layer = 1000 * 2 * 4096 * 2  # K and V of 1000 tokens, 32 heads × 128, fp16
    kv_bw = A100.hbm_bw_bytes_per_s * DECODE_ATTN_BW_EFFICIENCY
    assert step.attn_decode_s == pytest.approx(
        32 * (KERNEL_LAUNCH_S + kv_bytes_per_layer * 1.0 / kv_bw)  # kvsim's kernels, carried over: 1.0
    )
    assert step.lm_head_s == pytest.approx(KERNEL_LAUNCH_S + 2 * (4096 * 32000 + 4 * (4096 + 32000)) / BW)
    assert (step.attn_prefill_s, step.allreduce_s, step.overhead_s) == (0.0, 0.0, STEP_OVERHEAD_S)
    # A small decode batch costs about the weights over the bandwidth (DESIGN §5): all but the input
    # embedding table are read, plus one launch per GEMM.
    read_bytes = weight_bytes_per_gpu(MODELS["llama-2-7b"]) - 32000 * 4096 * 2
    launches_s = (32 * 4 + 1) * KERNEL_LAUNCH_S
    assert step.gemm_s + step.lm_head_s == pytest.approx(read_bytes / BW + launches_s, rel=0.005)


def test_large_prefill_is_compute_bound_and_attention_counts_causal_flops():
    cost = make_cost_model("llama-2-7b", "a100-80gb", profile="roofline")
    step = cost.step_time(Batch(prefill_q_lens=(2048,), prefill_kv_lens=(2048,)))
    gemm_flops_layer = 2 * 2048 * 4096 * (3 * 4096 + 4096 + 2 * 11008 + 11008)
    assert step.gemm_s == pytest.approx(32 * (4 * KERNEL_LAUNCH_S + gemm_flops_layer / FLOPS))
    pairs = 2048 * 2049 // 2
    attn_flops = 4 * 32 * 128 * pairs
    peak = A100.dense_fp16_flops_per_s * PREFILL_ATTN_FLOPS_EFFICIENCY
    assert step.attn_prefill_s == pytest.approx(32 * (KERNEL_LAUNCH_S + attn_flops / peak))
    assert step.attn_decode_s == 0.0


@pytest.mark.parametrize(
    "gpu, setting, factor",
    [
        ("a100-40gb", None, 1.0),  # kvsim's kernels, not measured on the A100: the H100's and H200's mean
        ("h100-sxm", None, 1.01),  # kvsim's kernels as measured on the H100
        ("h200", "kvsim", 0.99),
        ("a100-40gb", "vllm-2023", VLLM_2023[0]),  # the vLLM paper's 2023 kernel
        ("a100-40gb", "1.5", 1.5),
    ],
)
def test_paged_decode_costs_the_paged_factor_more_per_byte_than_contiguous(gpu, setting, factor):
    cost = make_cost_model("opt-13b", gpu, profile="roofline", paged_decode_factor=setting)
    paged = cost.step_time(Batch(num_decode_seqs=8, decode_kv_tokens=8000, attention_kernel="paged"))
    contiguous = cost.step_time(
        Batch(num_decode_seqs=8, decode_kv_tokens=8000, attention_kernel="contiguous")
    )
    launch_s = 40 * KERNEL_LAUNCH_S
    assert (paged.attn_decode_s - launch_s) / (contiguous.attn_decode_s - launch_s) == pytest.approx(factor)
    assert f"paged decode factor {factor:g}" in cost.description


def test_tensor_parallelism_splits_the_work_and_adds_two_allreduces_per_layer():
    one = make_cost_model("llama-2-70b", "h100-sxm", tp=1, profile="roofline")
    four = make_cost_model("llama-2-70b", "h100-sxm", tp=4, profile="roofline")
    batch = Batch(num_decode_seqs=16, decode_kv_tokens=16_000, decode_kv_blocks=1000)
    s1, s4 = one.step_time(batch), four.step_time(batch)
    launches_s = 80 * 4 * KERNEL_LAUNCH_S
    assert 3.5 < (s1.gemm_s - launches_s) / (s4.gemm_s - launches_s) < 4  # weights split, activations not all
    launches_s = 80 * KERNEL_LAUNCH_S
    assert (s1.attn_decode_s - launches_s) / (s4.attn_decode_s - launches_s) == pytest.approx(
        4
    )  # 8 -> 2 KV heads
    message_bytes = 16 * 8192 * 2
    # the H100's all-reduce is DGX H100's measured NCCL time for a 4-GPU group (a hinge in message bytes)
    hinge = four.profile.terms["allreduce.tp4"]
    assert hinge.source == "measured"
    assert s4.allreduce_s == pytest.approx(2 * 80 * hinge.predict(bytes=message_bytes))
    assert s1.allreduce_s == 0.0
    # where no measurement stands for the GPU's interconnect (L4, PCIe), the datasheet ring estimate
    l4 = make_cost_model("llama-2-70b", "l4", tp=4).step_time(batch)
    ring_s = 2 * 3 / 4 * message_bytes / (GPUS["l4"].interconnect_bw_bytes_per_s * ALLREDUCE_BW_EFFICIENCY)
    assert l4.allreduce_s == pytest.approx(2 * 80 * (ALLREDUCE_LATENCY_S + ring_s))


def test_an_empty_step_costs_only_allocator_work():
    cost = make_cost_model("llama-2-7b", "a100-80gb", profile="roofline")
    assert cost.step_time(Batch(allocator_overhead_s=1e-4)).total_s == 1e-4


@pytest.mark.parametrize("kernel", ["paged", "contiguous"])
@pytest.mark.parametrize(
    ("model", "gpu", "tp"),
    [("llama-2-7b", "a100-80gb", 1), ("llama-2-70b", "h100-sxm", 4), ("opt-13b", "l4", 1)],
)
@pytest.mark.parametrize("fitted", ["roofline", "per-seq", "per-block", "ramp", "ramp-only"])
def test_decode_step_times_equal_step_time_bit_for_bit(model, gpu, tp, kernel, fitted):
    cost = make_cost_model(model, gpu, tp, profile="roofline")
    if fitted != "roofline":  # terms a calibrated profile may fit (the roofline has none)
        extra = {
            "per-seq": {"num_seqs": 3.1e-7},
            "per-block": {"num_blocks": 4.3e-9},
            # knees at 1 MiB, 64 MiB and 1 GiB of a layer's KV: windows below, across and above them
            "ramp": {  # with a per-sequence term too, so the order of the sums after the ramp is checked
                "num_seqs": 3.1e-7,
                "kv_bytes_min_1048576": 1.6e-12,
                "kv_bytes_min_67108864": 1.1e-13,
                "kv_bytes_min_1073741824": 2.7e-15,
            },
            # a ramp alone (Vidur's A100 profile): windows on one line of it take the reduced sums
            "ramp-only": {
                "kv_bytes_min_1048576": 1.6e-12,
                "kv_bytes_min_67108864": 1.1e-13,
                "kv_bytes_min_1073741824": 2.7e-15,
            },
        }[fitted]
        if fitted == "ramp" and kernel == "paged":
            extra["num_blocks"] = 4.3e-9
        name = "attn_decode_paged" if fitted == "per-block" else f"attn_decode_{kernel}"
        terms = dict(cost.profile.terms)
        terms[name] = dataclasses.replace(terms[name], params={**terms[name].params, **extra})
        cost = ProfileCostModel(dataclasses.replace(cost.profile, terms=terms), cost.model, tp)
    _assert_decode_step_times_bit_for_bit(
        cost, kernel, reads_blocks=kernel == "paged" and fitted in ("per-block", "ramp")
    )
    _assert_mixed_steps_bit_for_bit(cost, kernel)


@pytest.mark.parametrize("kernel", ["paged", "contiguous"])
def test_vidur_a100_profile_decode_windows_equal_step_time_bit_for_bit(kernel):
    """Vidur's A100 profile: a decode ramp (knees at 64 to 16,384 KV tokens for Llama-2-7B) without per-sequence
    or per-block terms, so windows on one line of it take the reduced sums, past the last knee or not."""
    cost = make_cost_model("llama-2-7b", "a100-80gb", 1)
    assert cost._decode_paged[4] and not cost.reads_decode_blocks(kernel)
    _assert_decode_step_times_bit_for_bit(cost, kernel, reads_blocks=False)


@pytest.mark.parametrize("kernel", ["paged", "contiguous"])
@pytest.mark.parametrize(
    ("model", "gpu", "tp"),
    [("llama-2-7b", "a100-80gb", 1), ("codellama-34b", "a100-80gb", 2), ("llama-3-8b", "h100-sxm", 1)],
)
def test_shipped_profiles_time_mixed_steps_as_step_time(model, gpu, tp, kernel):
    """step_total_s takes a step's token-count and sequence-count terms from caches (_token_parts,
    _seq_parts): the same floats as step_time's sum, for prompts alone, prompts beside decodes, and repeats."""
    _assert_mixed_steps_bit_for_bit(make_cost_model(model, gpu, tp), kernel)


def _assert_mixed_steps_bit_for_bit(cost, kernel: str) -> None:
    rng = np.random.default_rng(11)
    for _ in range(60):
        num_prompts = int(rng.integers(1, 4))
        q_lens = tuple(int(q) for q in rng.integers(1, 3000, num_prompts))
        kv_lens = tuple(q + int(c) for q, c in zip(q_lens, rng.integers(0, 2000, num_prompts)))
        seqs = int(rng.choice([0, 1, int(rng.integers(2, 256))]))
        batch = Batch(
            prefill_q_lens=q_lens,
            prefill_kv_lens=kv_lens,
            num_decode_seqs=seqs,
            decode_kv_tokens=seqs * int(rng.integers(1, 4000)),
            decode_kv_blocks=seqs * 3,
            attention_kernel=kernel,
            allocator_overhead_s=float(rng.choice([0.0, 2.5e-5])),
        )
        for _ in range(2):  # the second call reads the caches the first filled
            assert cost.step_total_s(batch) == cost.step_time(batch).total_s  # exact


@pytest.mark.parametrize("kernel", ["paged", "contiguous"])
@pytest.mark.parametrize(
    ("model", "gpu", "tp"),
    [("llama-3-8b", "h100-sxm", 1), ("llama-2-70b", "h100-sxm", 4), ("opt-13b", "h200", 2)],
)
def test_shipped_profiles_decode_step_times_equal_step_time_bit_for_bit(model, gpu, tp, kernel):
    cost = make_cost_model(model, gpu, tp)
    assert cost.source == "measured"  # the GPU run's profile: ramps, a per-block term on paged decode
    assert "num_blocks" in cost.profile.terms["attn_decode_paged"].params
    _assert_decode_step_times_bit_for_bit(cost, kernel, reads_blocks=kernel == "paged")


def _assert_decode_step_times_bit_for_bit(cost, kernel: str, reads_blocks: bool) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        seqs = int(rng.integers(1, 300))
        tokens = int(rng.integers(seqs, 200_000))
        blocks = tokens // 16 + rng.integers(0, 5, size=50).cumsum()
        first = Batch(
            num_decode_seqs=seqs,
            decode_kv_tokens=tokens,
            decode_kv_blocks=int(blocks[0]),
            attention_kernel=kernel,
            allocator_overhead_s=float(rng.choice([0.0, 3.7e-5])),
        )
        fast = cost.decode_step_times(first, 50, blocks)
        # The engine's list path for short windows gives the very same floats.
        assert cost.decode_step_times_list(first, 50, blocks.tolist()) == fast.tolist()
        assert cost.decode_step_times_list(first, 3) == cost.decode_step_times(first, 3).tolist()
        for i in range(50):
            step_i = Batch(
                num_decode_seqs=seqs,
                decode_kv_tokens=tokens + i * seqs,
                decode_kv_blocks=int(blocks[i]),
                attention_kernel=kernel,
                allocator_overhead_s=first.allocator_overhead_s,
            )
            assert fast[i] == cost.step_time(step_i).total_s  # exact, not approx
            assert fast[i] == cost.step_total_s(step_i)
        constant = cost.decode_step_times(first, 3)
        assert (
            constant[2]
            == cost.step_time(
                Batch(
                    num_decode_seqs=seqs,
                    decode_kv_tokens=tokens + 2 * seqs,
                    decode_kv_blocks=int(blocks[0]),
                    attention_kernel=kernel,
                    allocator_overhead_s=first.allocator_overhead_s,
                )
            ).total_s
        )
        # A window planned through finishes: segments of shrinking batches, timed in one call. Block counts
        # come only to a cost model that reads them (the others get None).
        reads = cost.reads_decode_blocks(kernel)
        assert reads == reads_blocks
        segments, expected = [], []
        seg_seqs, seg_tokens = seqs, tokens
        for num_steps in (4, 1, 7):
            seg_blocks = [seg_tokens // 16 + 2 * i for i in range(num_steps)]
            segments.append((num_steps, seg_seqs, seg_tokens, seg_blocks if reads else None, 1))
            for i in range(num_steps):
                step_i = Batch(
                    num_decode_seqs=seg_seqs,
                    decode_kv_tokens=seg_tokens + i * seg_seqs,
                    decode_kv_blocks=seg_blocks[i] if kernel == "paged" else 0,
                    attention_kernel=kernel,
                )
                expected.append(cost.step_time(step_i).total_s)
            seg_tokens += num_steps * seg_seqs - 40
            seg_seqs = max(1, seg_seqs - 1)
        assert cost.decode_segment_times(kernel, segments) == expected  # exact


def test_roofline_outputs_say_so_and_have_no_map_latency():
    cost = make_cost_model(MODELS["mistral-7b"], GPUS["l4"])  # no L4 profile ships
    assert cost.source == "roofline"
    assert "roofline" in cost.description and "L4" in cost.description
    assert cost.map_latency_s(2 << 20) is None


@pytest.mark.parametrize(("gpu", "name"), [("h200", "H200"), ("h100-sxm", "H100-SXM")])
def test_a_shipped_profile_is_picked_and_says_where_it_came_from(gpu, name):
    cost = make_cost_model(MODELS["llama-3-8b"], GPUS[gpu])
    assert cost.source == "measured"
    assert f"{name} measured" in cost.description and "driver 580.159.04" in cost.description
    assert cost.map_latency_s(2 << 20) > 0  # the 2 MiB page map cost was measured
    # its decode terms carry a ramp, and the cost model applies it as the term predicts, per layer
    model = MODELS["llama-3-8b"]
    bytes_per_token = 2 * model.num_kv_heads * model.head_dim * model.dtype_bytes
    for kernel in ("paged", "contiguous"):
        term = cost.profile.terms[f"attn_decode_{kernel}"]
        assert any(name.startswith("kv_bytes_min_") for name in term.params)
        for seqs, tokens in ((1, 300), (16, 40_000), (128, 500_000)):
            blocks = tokens // 16 + seqs
            step = cost.step_time(
                Batch(
                    num_decode_seqs=seqs,
                    decode_kv_tokens=tokens,
                    decode_kv_blocks=blocks,
                    attention_kernel=kernel,
                )
            )
            features = dict(kv_bytes=tokens * bytes_per_token, num_seqs=seqs)
            if kernel == "paged":
                features["num_blocks"] = blocks
            # less the launch overlap measured on whole layers (each launch back to back is that much shorter)
            alone_s = term.predict(**features)
            back_to_back_s = alone_s - min(term.params["const_s"], cost.launch_overlap_s)
            assert step.attn_decode_s == pytest.approx(model.num_layers * back_to_back_s, rel=1e-12)
    assert cost.launch_overlap_s > 0


def test_prefill_of_several_sequences_is_one_launch_per_layer_over_their_summed_work():
    cost = make_cost_model("llama-2-7b", "a100-80gb", profile="roofline")
    peak = A100.dense_fp16_flops_per_s * PREFILL_ATTN_FLOPS_EFFICIENCY
    # a fresh 100-token prompt, and a 50-token chunk after 200 cached tokens (chunked prefill / prefix hit)
    step = cost.step_time(Batch(prefill_q_lens=(100, 50), prefill_kv_lens=(100, 250)))
    pairs = 100 * 101 // 2 + (50 * 200 + 50 * 51 // 2)
    assert step.attn_prefill_s == pytest.approx(32 * (KERNEL_LAUNCH_S + 4 * 32 * 128 * pairs / peak))


def test_launch_overlap_comes_off_every_kernel_launch_of_a_step():
    """A profile's launch_overlap shortens each kernel term's constant (per layer 4 GEMMs, one attention call,
    2 norms, rotary, activation, 2 residual adds and the KV write; per step the LM head, the final norm, the
    embedding and sampling: the H200 file's own terms and those borrowed from the roofline alike), never below
    zero; the roofline has none."""
    cost = make_cost_model(MODELS["llama-3-8b"], GPUS["h200"])
    terms = {name: term for name, term in cost.profile.terms.items() if name != "launch_overlap"}
    without = ProfileCostModel(dataclasses.replace(cost.profile, terms=terms), cost.model)
    overlap_s = 2e-6  # below every fitted constant of the H200 profile, so nothing clamps
    kernels = [t for n, t in terms.items() if n not in ("allreduce", "step_overhead") and t.form != "table"]
    assert all(t.params["const_s"] > overlap_s for t in kernels)
    terms["launch_overlap"] = Term("linear", {"const_s": overlap_s})
    with_overlap = ProfileCostModel(dataclasses.replace(cost.profile, terms=terms), cost.model)
    layers = cost.model.num_layers
    for batch in (
        Batch(num_decode_seqs=16, decode_kv_tokens=16_000, decode_kv_blocks=1_000),
        Batch(prefill_q_lens=(300,), prefill_kv_lens=(300,), attention_kernel="contiguous"),
    ):
        saved = without.step_time(batch).total_s - with_overlap.step_time(batch).total_s
        assert saved == pytest.approx((layers * 12 + 4) * overlap_s, rel=1e-6)
    terms["launch_overlap"] = Term("linear", {"const_s": 1.0})  # more than any constant: they all go to zero
    clamped = ProfileCostModel(dataclasses.replace(cost.profile, terms=terms), cost.model)
    tiny = Batch(num_decode_seqs=1, decode_kv_tokens=1)
    assert 0 < clamped.step_time(tiny).attn_decode_s < without.step_time(tiny).attn_decode_s
    assert "launches back to back 1000000.0 us shorter" in clamped.description


def test_roofline_can_be_asked_for_where_a_measured_profile_ships():
    measured = make_cost_model("llama-3-8b", "h200")
    roofline = make_cost_model("llama-3-8b", "h200", profile="roofline")
    assert measured.source == "measured" and roofline.source == "roofline"
    batch = Batch(num_decode_seqs=64, decode_kv_tokens=64 * 4096, decode_kv_blocks=64 * 256)
    assert measured.step_time(batch).total_s != roofline.step_time(batch).total_s


@pytest.mark.parametrize(("model", "gpu", "tp"), [("llama-2-7b", "a100-80gb", 1), ("llama-3-70b", "h100-sxm", 4)])
def test_prefill_attention_is_work_py_s_flops_and_bytes(model, gpu, tp):
    """The cost model times prefill attention from work.py's FLOPs and bytes through their coefficients: the
    same per-sequence seconds as the functions themselves give."""
    from kvsim.simulator.cost.work import prefill_attn_bytes, prefill_attn_flops

    cost = make_cost_model(model, gpu, tp)
    const_s, s_flop, s_byte, s_seq = cost._prefill_paged
    spec = cost.model
    rng = np.random.default_rng(3)
    for _ in range(40):
        q_len = int(rng.integers(1, 9000))
        kv_len = q_len + int(rng.integers(0, 30000))
        flops = prefill_attn_flops(q_len, kv_len, cost._heads, spec.head_dim)
        nbytes = prefill_attn_bytes(q_len, kv_len, cost._heads, cost._kv_heads, spec.head_dim, spec.dtype_bytes)
        expected = cost._num_layers * (const_s + (s_flop * flops + s_byte * nbytes + s_seq))
        batch = Batch(prefill_q_lens=(q_len,), prefill_kv_lens=(kv_len,), attention_kernel="paged")
        assert cost._attn_prefill_s(batch) == expected
