"""``--scheduler vllm`` follows vLLM v1 as released in 0.34.0 (``vllm/v1/core/sched/scheduler.py``); ``vllm-v0``
keeps v0.6.3. Exact timelines with a constant step of 1 s: a step that starts at t ends at t + 1."""

from __future__ import annotations

import pytest
from simtools import KV_BYTES_PER_TOKEN, make_trace, run

from kvsim.errors import KvsimError
from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.allocators import make_allocator
from kvsim.simulator.allocators.block_pool import BlockPool, request_block_hashes
from kvsim.simulator.cost.constant import ConstantCostModel
from kvsim.simulator.specs import ModelSpec


def v1(trace, **config):
    return run(trace, step_s=1.0, scheduler="vllm", **config)


def test_chunked_prefill_is_on_and_mixes_a_prompt_chunk_with_decodes():
    # Budget 64: step 0-1 computes A's 10 prompt tokens and 54 of B's 100; step 1-2 decodes A and computes
    # B's last 46 tokens beside it.
    trace = make_trace([(0.0, 10, 5), (0.0, 100, 2)])
    result = v1(trace, max_num_batched_tokens=64, max_num_seqs=64)
    assert list(result.recorder.first_token_s) == [1.0, 2.0]
    assert list(result.recorder.finish_s) == [5.0, 3.0]


def test_without_chunked_prefill_decodes_still_run_beside_a_whole_prompt():
    # B arrives during A's decodes: v1 puts B's prompt and A's decode in one step, so A never pauses;
    # v0.6.3 runs B's prompt in a prefill-only step and A finishes one step later.
    trace = make_trace([(0.0, 10, 10), (2.5, 50, 1)])
    options = {"enable_chunked_prefill": False, "max_num_batched_tokens": 4096}
    assert list(v1(trace, **options).recorder.finish_s) == [10.0, 4.0]
    v0 = run(trace, step_s=1.0, scheduler="vllm-v0", **options)
    assert list(v0.recorder.finish_s) == [11.0, 4.0]


def test_long_prefill_token_threshold_caps_chunks_only_when_another_request_is_queued_or_running():
    alone = v1(make_trace([(0.0, 100, 1)]), max_num_batched_tokens=256, long_prefill_token_threshold=30)
    assert list(alone.recorder.first_token_s) == [1.0]  # nobody to starve: the whole prompt at once
    pair = v1(
        make_trace([(0.0, 100, 1), (0.0, 10, 10)]),
        max_num_batched_tokens=256,
        long_prefill_token_threshold=30,
    )
    # 30-token chunks of the 100 while the other request decodes (4 steps); the 10-token prompt fits beside
    # the first chunk. (Were the other to finish first, the last chunk would take the rest at once.)
    assert list(pair.recorder.first_token_s) == [4.0, 1.0]


def test_reserve_full_isl_admits_only_a_prompt_whose_every_block_is_free():
    # 6 blocks of 16. A (40 prompt, 3 blocks) runs; B's 60-token prompt needs 4 blocks, only 3 are free: with
    # scheduler_reserve_full_isl (0.34's default) B waits for A; without it B's first 16-token chunk is
    # admitted and its later chunks take blocks as A's decodes need them. (Waiting, B's 60 tokens then take two
    # steps of the 56-token budget.)
    trace = make_trace([(0.0, 40, 4), (0.0, 60, 2)])
    capacity = {"kv_capacity_bytes": 96 * KV_BYTES_PER_TOKEN, "max_num_batched_tokens": 56, "max_num_seqs": 56}
    reserve = v1(trace, **capacity)
    assert list(reserve.recorder.first_token_s) == [1.0, 6.0]  # admitted at 4, when A finishes
    assert reserve.summary["num_preemptions"] == 0
    chunk_only = v1(trace, scheduler_reserve_full_isl=False, **capacity)
    assert chunk_only.recorder.first_scheduled_s[1] == 0.0  # admitted with A, on its first chunk


def test_a_preempted_request_recomputes_from_its_own_cached_blocks_and_requests_share_nothing():
    # 6 blocks of 16; A and B (40 + 30 tokens each) start together. At A's 49th slot B is preempted (its 3 full
    # blocks, generated tokens included, stay cached, the last one first in line for eviction); A's growth
    # evicts two of them, and B comes back after A with 16 of its 49 tokens cached.
    trace = make_trace([(0.0, 40, 30), (0.0, 40, 30)])
    config = SimConfig(scheduler="vllm", kv_capacity_bytes=96 * KV_BYTES_PER_TOKEN)
    allocators = []

    def paged():
        alloc = make_allocator(
            "paged", model=ModelSpec.from_name("llama-2-7b"), tp=1, capacity_bytes=config.kv_capacity_bytes
        )
        alloc.resolve_for_scheduler("vllm")  # prefix caching on, as v1's default
        allocators.append(alloc)
        return alloc

    result = simulate(config, trace, cost_model=ConstantCostModel(1.0), allocator_factory=paged)
    (alloc,) = allocators
    assert (alloc.num_prefix_query_tokens, alloc.num_prefix_hit_tokens) == (40 + 40 + 49, 16)
    assert result.summary["num_preemptions"] == 1
    assert list(result.recorder.finish_s) == [30.0, 51.0]


def test_swap_preemption_is_refused_on_v1_and_points_to_vllm_v0():
    with pytest.raises(KvsimError, match=r"recompute only.*--scheduler vllm-v0"):
        SimConfig(scheduler="vllm", preemption_mode="swap")
    SimConfig(scheduler="vllm-v0", preemption_mode="swap")


def test_v1_options_are_refused_on_other_schedulers():
    with pytest.raises(KvsimError, match=r"long_prefill_token_threshold.*--scheduler vllm"):
        SimConfig(scheduler="vllm-v0", long_prefill_token_threshold=64)


@pytest.mark.parametrize(
    ("gpu", "chunked", "expected"),
    [
        # vLLM 0.34.0 EngineArgs.get_batch_defaults, OpenAI server: (max_num_batched_tokens, max_num_seqs)
        ("h100-sxm", None, (8192, 1024)),
        ("h200", None, (8192, 1024)),
        ("a100-80gb", None, (2048, 256)),  # A100s stay on the small tier
        ("l4", None, (2048, 256)),
        ("h100-sxm", False, (8192, 1024)),  # max(max_model_len 4096, 8192)
        ("a100-80gb", False, (4096, 256)),  # max(max_model_len 4096, 2048)
    ],
)
def test_v1_defaults_by_gpu(gpu, chunked, expected):
    config = SimConfig(scheduler="vllm", gpu=gpu, enable_chunked_prefill=chunked)
    budget = config.resolved_max_num_batched_tokens(4096, *_gpu(gpu))
    assert (budget, config.resolved_max_num_seqs(*_gpu(gpu))) == expected
    assert config.resolved_watermark == 0.0
    v0 = SimConfig(scheduler="vllm-v0", gpu=gpu)
    assert (v0.resolved_max_num_batched_tokens(4096, *_gpu(gpu)), v0.resolved_max_num_seqs()) == (4096, 256)
    assert v0.resolved_watermark == 0.01 and not v0.resolved_enable_chunked_prefill


def _gpu(name):
    from kvsim.simulator.specs import GpuSpec

    gpu = GpuSpec.from_name(name)
    return gpu.name, gpu.memory_bytes


def test_v1_without_chunked_prefill_refuses_a_budget_below_max_model_len():
    with pytest.raises(KvsimError, match="below max_model_len 4096"):  # llama-2-7b's: when the config is made
        SimConfig(scheduler="vllm", enable_chunked_prefill=False, max_num_batched_tokens=2048)
    config = SimConfig(scheduler="vllm", enable_chunked_prefill=False, max_num_batched_tokens=2048, max_model_len=2048)
    with pytest.raises(KvsimError, match="below max_model_len 4096"):
        config.resolved_max_num_batched_tokens(4096)


def test_a_fully_cached_prompt_recomputes_its_last_block():
    model = ModelSpec.from_name("llama-2-7b")
    alloc = make_allocator(
        "paged:enable_prefix_caching=true", model=model, tp=1, capacity_bytes=64 * 16 * KV_BYTES_PER_TOKEN
    )
    hashes = request_block_hashes([7], 32, 48, 16, request_index=0)  # 32 prompt tokens: two full blocks
    assert alloc.allocate(0, 32, final_num_tokens=48, block_hashes=hashes) is not None
    same_prompt = request_block_hashes([7], 32, 48, 16, request_index=1)
    assert same_prompt[:2] == hashes[:2] and same_prompt[2] != hashes[2]  # generated tokens are its own
    assert alloc.lookup_prefix(same_prompt, 32) == 16  # never the last token: block 1 is recomputed
    assert alloc.lookup_prefix(same_prompt, 33) == 32
    no_hashes = request_block_hashes(None, 32, 48, 16, request_index=0)
    assert alloc.lookup_prefix(request_block_hashes(None, 32, 48, 16, request_index=1), 33) == 0
    assert list(no_hashes) != list(hashes)


def test_v1_caches_a_block_whose_content_another_block_caches_and_promotes_it_on_eviction():
    pool = BlockPool(4, 2, allow_duplicates=True)
    first, second = pool.get_new_blocks(2)
    pool.fill_new_blocks([first], 2)
    pool.fill_new_blocks([second], 2)
    pool.cache_block(first, 99)
    pool.cache_block(second, 99)  # v1 keeps it too (v0 would not)
    assert pool.lookup(99) == first
    pool.free_blocks([first])
    pool.free_blocks([second])
    pool.get_new_blocks(3)  # two clean blocks, then the least recently freed cached one: `first`
    assert pool.lookup(99) == second
    pool.check_invariants([1, 0, 1, 1])


def test_contiguous_growth_sizes_a_chunked_prompts_region_for_the_whole_prompt():
    """Under v1 a prompt longer than the budget is allocated chunk by chunk; contiguous-growth's region is made
    for the whole prompt at admission (its ``_admitted_tokens``), as under vllm-v0: no copy while the prompt's
    later chunks arrive. (The region was made for the first chunk, and every later chunk grew it.)"""
    trace = make_trace([(0.0, 1000, 2)])
    options = {
        "allocator": "contiguous-growth:min_region_tokens=16",
        "max_num_batched_tokens": 128,
        "max_num_seqs": 8,
    }
    v1_run = v1(trace, **options)
    v0_run = run(trace, scheduler="vllm-v0", enable_chunked_prefill=True, **options)
    assert v1_run.summary["num_finished"] == 1
    assert v1_run.summary["allocator_stats"]["num_growth_copies"] == v0_run.summary["allocator_stats"][
        "num_growth_copies"
    ] == 0
