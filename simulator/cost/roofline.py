"""The roofline profile: the same schema as a measured profile, built from a GPU's datasheet (DESIGN §5).

This is a prior, not a prediction. Every number below is a datasheet peak times a named efficiency factor whose
value is a stated assumption; a measured profile (``kvsim calibrate``) replaces all of them. Outputs built on
it say ``roofline``.
"""

from __future__ import annotations

import dataclasses

from kvsim.simulator.cost.collectives import measured_allreduce
from kvsim.simulator.cost.paged_factor import paged_decode_factor as default_paged_decode_factor
from kvsim.simulator.cost.profile import WHOLE_STEP_TERMS, DeviceInfo, Profile, Term
from kvsim.simulator.specs import GpuSpec

# Fraction of the dense fp16 tensor-core peak that large GEMMs reach. cuBLAS typically sustains ~70-80% of
# peak on large fp16 GEMMs on A100/H100; 0.7 takes the low end because serving GEMMs are often skinny.
GEMM_FLOPS_EFFICIENCY = 0.7
# Fraction of the datasheet HBM bandwidth that a streaming read reaches (weights in a skinny GEMM, KV in
# decode attention). Stream-like copies reach ~80-90% of the datasheet figure on A100/H100; 0.8 is the low end.
HBM_BW_EFFICIENCY = 0.8
# Fraction of the HBM bandwidth decode attention reaches on its KV reads (DESIGN §5's eff_bw_attn). A
# split-KV (flash-decoding) kernel streams K and V like a copy, so the streaming figure above applies; the
# kernels issue targets 70% of peak for the paged kernel, which the paged factor below accounts for.
DECODE_ATTN_BW_EFFICIENCY = 0.8
# The paged decode kernel's cost per byte over a contiguous one's belongs to the kernel modelled, not to the
# GPU: roofline_profile's paged_decode_factor, by default kvsim's own kernels' measured ratio (1.01 on the
# H100, 0.99 on the H200, carried over elsewhere); the vLLM paper's 2023 kernel's 1.23 where that system is
# modelled (kvsim.simulator.cost.paged_factor).
# Fraction of peak that prefill (FlashAttention-style) attention reaches. FlashAttention-2 (Dao, 2023, abstract)
# reports 50-73% of the A100 peak in the forward pass; short causal prompts sit at the low end.
PREFILL_ATTN_FLOPS_EFFICIENCY = 0.5
# Host-side launch latency of one CUDA kernel (a few µs without CUDA graphs; assumption, order of magnitude).
KERNEL_LAUNCH_S = 5e-6
# Latency of one small all-reduce over NVLink (assumption: order of NCCL's small-message latency, ~10 µs).
ALLREDUCE_LATENCY_S = 10e-6
# Fraction of the per-direction interconnect bandwidth that a ring all-reduce reaches (assumption).
ALLREDUCE_BW_EFFICIENCY = 0.7
# Per-step host overhead of the serving engine: scheduling, input preparation, sampling (assumption: ~1 ms,
# the order of a Python serving loop's step outside the GPU; measured profiles keep this unless overridden).
STEP_OVERHEAD_S = 1e-3
# Elementwise kernels are memory bound: HBM bytes moved per byte of the output tensor (the terms' feature).
# RMSNorm reads x and writes y; rotary reads and writes q and k; SiLU·mul reads gate and up and writes one;
# a residual add reads two and writes one; the embedding reads one row per token and writes it.
ELEMENTWISE_BYTES_MOVED_PER_OUTPUT_BYTE = {
    "rmsnorm": 2.0,
    "rotary": 2.0,
    "activation": 3.0,
    "residual_add": 3.0,
    "embedding": 2.0,
}

# The KV-cache write reads the new K and V (the QKV GEMM's output) and writes them into the cache: 2 bytes moved
# per byte written, paged or contiguous alike (a paged scatter writes whole rows of num_kv_heads × head_dim).
KV_WRITE_BYTES_MOVED_PER_WRITTEN_BYTE = 2.0
# Sampling, in bytes moved per byte of the float32 logits (assumptions, counted from the kernels a PyTorch
# sampler runs). Greedy: the upcast reads fp16 (0.5) and writes fp32 (1), argmax reads it (1): 2.5. Top-p: the
# upcast (1.5), temperature (2), a segmented radix sort of fp32 keys with int64 indices (4 passes reading and
# writing 12 bytes per 4-byte logit: 24), softmax (3), cumsum (2), the mask (1.25), masked fill (2), the scatter
# back (4) and multinomial (2): about 42, taken as 40. Launches: 2 and about 10, KERNEL_LAUNCH_S each.
SAMPLING_BYTES_MOVED_PER_LOGIT_BYTE = {"sampling": 2.5, "sampling_top_p": 40.0}
SAMPLING_LAUNCHES = {"sampling": 2, "sampling_top_p": 10}


def roofline_profile(gpu: GpuSpec, paged_decode_factor: float | None = None) -> Profile:
    """Terms from ``gpu``'s peaks and the efficiency factors above, in the profile schema. The paged decode
    kernel costs ``paged_decode_factor`` × the contiguous one per KV byte (None: kvsim's kernels' measured
    ratio for ``gpu``, ``paged_factor.paged_decode_factor``)."""
    if paged_decode_factor is None:
        paged_decode_factor = default_paged_decode_factor(gpu.name).nominal
    s_per_flop = 1.0 / (gpu.dense_fp16_flops_per_s * GEMM_FLOPS_EFFICIENCY)
    s_per_byte = 1.0 / (gpu.hbm_bw_bytes_per_s * HBM_BW_EFFICIENCY)
    s_per_kv_byte = 1.0 / (gpu.hbm_bw_bytes_per_s * DECODE_ATTN_BW_EFFICIENCY)
    s_per_prefill_flop = 1.0 / (gpu.dense_fp16_flops_per_s * PREFILL_ATTN_FLOPS_EFFICIENCY)
    prefill = {"const_s": KERNEL_LAUNCH_S, "flops": s_per_prefill_flop, "bytes": 0.0, "num_seqs": 0.0}
    terms = {
        "gemm": Term("max", {"const_s": KERNEL_LAUNCH_S, "s_per_flop": s_per_flop, "s_per_byte": s_per_byte}),
        "attn_decode_paged": Term(
            "linear",
            {
                "const_s": KERNEL_LAUNCH_S,
                "kv_bytes": s_per_kv_byte * paged_decode_factor,
                "num_seqs": 0.0,
                "num_blocks": 0.0,
            },
        ),
        "attn_decode_contiguous": Term(
            "linear", {"const_s": KERNEL_LAUNCH_S, "kv_bytes": s_per_kv_byte, "num_seqs": 0.0}
        ),
        # Prefill reads each K/V once per query tile; FLOPs dominate, and paged prefill is costed like the
        # contiguous kernel (the paper's 20-26% overhead is a decode-kernel measurement).
        "attn_prefill_paged": Term("linear", dict(prefill)),
        "attn_prefill_contiguous": Term("linear", dict(prefill)),
        "allreduce": Term(
            "linear",
            {
                "const_s": ALLREDUCE_LATENCY_S,
                "ring_bytes": 1.0 / (gpu.interconnect_bw_bytes_per_s * ALLREDUCE_BW_EFFICIENCY),
            },
        ),
        "step_overhead": Term("linear", {"const_s": STEP_OVERHEAD_S, "num_seqs": 0.0}),
        **{
            name: Term("linear", {"const_s": KERNEL_LAUNCH_S, "bytes": moved * s_per_byte})
            for name, moved in ELEMENTWISE_BYTES_MOVED_PER_OUTPUT_BYTE.items()
        },
        **{
            f"kv_write_{kernel}": Term(
                "linear",
                {"const_s": KERNEL_LAUNCH_S, "bytes": KV_WRITE_BYTES_MOVED_PER_WRITTEN_BYTE * s_per_byte},
            )
            for kernel in ("paged", "contiguous")
        },
        **{
            name: Term(
                "linear", {"const_s": SAMPLING_LAUNCHES[name] * KERNEL_LAUNCH_S, "bytes": moved * s_per_byte}
            )
            for name, moved in SAMPLING_BYTES_MOVED_PER_LOGIT_BYTE.items()
        },
    }
    notes = (
        f"roofline from the {gpu.name} datasheet ({gpu.citation}) with the efficiency factors in "
        "kvsim.simulator.cost.roofline"
    )
    measured = measured_allreduce(gpu.name)
    if measured is not None:  # NCCL all-reduce measured on this GPU's system replaces the ring estimate
        terms.update(measured[0])
        notes += f"; {measured[1]}"
    return Profile(
        device=DeviceInfo(gpu.name, gpu.memory_bytes, gpu.num_sms),
        source="roofline",
        terms=terms,
        notes=notes,
    )


def with_measured_allreduce(profile: Profile, gpu: GpuSpec) -> Profile:
    """``profile`` with its all-reduce taken from the measured collectives of ``gpu``'s system where the
    profile's own came from the datasheet roofline (kvsim calibrates one GPU: it cannot measure all-reduce)."""
    allreduce = profile.terms["allreduce"]
    has_own = any(name.startswith("allreduce.tp") for name in profile.terms)
    if allreduce.source != "roofline" or has_own:
        return profile
    measured = measured_allreduce(gpu.name)
    if measured is None:
        return profile
    terms = {**profile.terms, **measured[0]}
    return dataclasses.replace(profile, terms=terms, notes=f"{profile.notes}; {measured[1]}")


def with_roofline_whole_step_terms(profile: Profile, gpu: GpuSpec) -> Profile:
    """``profile`` with each whole-step term it lacks (``profile.WHOLE_STEP_TERMS``: norms, rotary, activation,
    residual adds, embedding, KV-cache write, sampling) taken from ``gpu``'s roofline and marked ``roofline``, so
    that the cost model's description lists it as borrowed. A profile measured before these terms existed (the
    shipped H100 and H200 files; Vidur's A100 has no KV write or sampling) would otherwise count them as 0."""
    missing = [name for name in WHOLE_STEP_TERMS if name not in profile.terms]
    if not missing:
        return profile
    roofline = roofline_profile(gpu).terms
    borrowed = {name: dataclasses.replace(roofline[name], source="roofline") for name in missing}
    notes = f"{profile.notes}; from the {gpu.name} roofline when loaded: {', '.join(missing)}"
    return dataclasses.replace(profile, terms={**profile.terms, **borrowed}, notes=notes)
