"""Deployments vLLM would not start, or that no GPU holds, are refused when the SimConfig is made, before any
trace is read (issue 19): not run into a plausible answer."""

from __future__ import annotations

import math

import pytest

from kvsim.errors import KvsimError
from kvsim.simulator import SimConfig
from kvsim.simulator.specs import GPUS, MODELS, max_kv_capacity_bytes, weight_bytes_per_gpu


@pytest.mark.parametrize("scheduler", ["vllm-v0", "orca", "static"])
def test_swap_preemption_without_swap_space_is_refused(scheduler):
    """kvsim recomputed instead; vLLM v0 aborts when a swap-out finds no CPU blocks."""
    with pytest.raises(KvsimError, match="preemption_mode swap with swap_space_gib 0: there is no CPU swap"):
        SimConfig(scheduler=scheduler, preemption_mode="swap", swap_space_gib=0.0)
    SimConfig(scheduler=scheduler, preemption_mode="swap", swap_space_gib=0.5)
    SimConfig(scheduler=scheduler, preemption_mode="recompute", swap_space_gib=0.0)


@pytest.mark.parametrize(
    "field", ["swap_space_gib", "slo_ttft_s", "slo_tpot_s", "waiting_served_ratio", "gpu_memory_utilization"]
)
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_numbers_that_are_not_finite_are_refused(field, value):
    """NaN passed every `< 0` check (swap_space_gib nan was a ValueError in int(); an SLO of nan made every
    request miss it)."""
    with pytest.raises(KvsimError, match=f"{field} must be a finite number, got {value}"):
        SimConfig(**{field: value})


def test_a_kv_capacity_larger_than_the_gpu_beside_its_weights_is_refused():
    """10**15 bytes on an A100-80GB ran for 32 s at 7.5 GB RSS. The most is the GPU's memory less the weights."""
    model, gpu = MODELS["llama-2-7b"], GPUS["a100-80gb"]
    limit = max_kv_capacity_bytes(model, gpu)
    assert limit == gpu.memory_bytes - weight_bytes_per_gpu(model)
    assert SimConfig(kv_capacity_bytes=limit).kv_capacity_bytes == limit
    with pytest.raises(
        KvsimError, match=rf"80.0 GiB less 12.6 GiB of Llama-2-7B weights .* at most {limit} bytes"
    ):
        SimConfig(kv_capacity_bytes=limit + 1)
    with pytest.raises(KvsimError, match="more than one A100-80GB can hold"):
        SimConfig(kv_capacity_bytes=10**15)
    # tp=2 halves the weights on each GPU, so more of its memory may hold KV
    assert SimConfig(kv_capacity_bytes=limit + 1, tp=2).tp == 2


def test_a_token_budget_below_the_context_without_chunked_prefill_is_refused_as_vllm_v0_does():
    """vLLM v0.6.3 vllm/config.py SchedulerConfig._verify_args: without chunked prefill, max_num_batched_tokens
    < max_model_len raises (a longer prompt could never be scheduled: kvsim rejected every request, exit 0)."""
    with pytest.raises(KvsimError, match=r"max_num_batched_tokens 1 is below max_model_len 4096"):
        SimConfig(scheduler="vllm-v0", max_num_batched_tokens=1)
    with pytest.raises(KvsimError, match=r"max_num_batched_tokens 512 is below max_model_len 1024"):
        SimConfig(scheduler="vllm-v0", max_num_batched_tokens=512, max_model_len=1024)
    SimConfig(scheduler="vllm-v0", max_num_batched_tokens=512, max_model_len=512)
    SimConfig(scheduler="vllm-v0", max_num_batched_tokens=512, enable_chunked_prefill=True)


@pytest.mark.parametrize("scheduler", ["vllm", "vllm-v0"])
def test_a_token_budget_below_max_num_seqs_is_refused(scheduler):
    """vLLM's SchedulerConfig refuses max_num_batched_tokens < max_num_seqs (v0.6.3 and 0.34.0 alike); kvsim
    ran it. Refused when the SimConfig is made, on the values the run resolves (v1's H100 default is 1,024
    sequences), and a budget equal to the sequences runs."""
    from simtools import make_trace, run

    trace = make_trace([(0.0, 12, 2)])
    options = {"scheduler": scheduler, "enable_chunked_prefill": True}
    with pytest.raises(KvsimError, match="max_num_batched_tokens 64 is below max_num_seqs 128: vLLM refuses"):
        run(trace, max_num_batched_tokens=64, max_num_seqs=128, **options)
    if scheduler == "vllm":  # v1's own default for the H100
        with pytest.raises(KvsimError, match="max_num_batched_tokens 512 is below max_num_seqs 1024"):
            run(trace, gpu="h100-sxm", max_num_batched_tokens=512, **options)
    assert run(trace, max_num_batched_tokens=64, max_num_seqs=64, **options).summary["num_finished"] == 1
