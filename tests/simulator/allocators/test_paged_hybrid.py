"""The paged allocator for models with sliding-window layers: vLLM v1's hybrid KV-cache manager (issue 22)."""

from __future__ import annotations

import random

import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.allocators import HybridPagedAllocator, PagedAllocator, make_allocator
from kvsim.simulator.specs import ModelSpec

BS, WINDOW = 16, 64
ALTERNATING = ("sliding_attention", "full_attention") * 2
# 4 layers: 2 windowed, 2 full; 2 KV heads of 16 -> 2 × 2 × 16 × 2 = 128 bytes per token and layer
HYBRID = ModelSpec(
    "hybrid", 4, 64, 4, 2, 16, 128, 100, 100_000, sliding_window=WINDOW, layer_types=ALTERNATING
)
ALL_WINDOW = ModelSpec("windowed", 4, 64, 4, 2, 16, 128, 100, 100_000, sliding_window=WINDOW)
LAYER_BYTES = 128
BLOCK_BYTES = 2 * BS * LAYER_BYTES  # a group of 2 layers


def _alloc(model=HYBRID, num_blocks=64, **options) -> HybridPagedAllocator:
    spec = "paged" + "".join(f":{k}={v}" for k, v in options.items())
    layers = 2 if model is HYBRID else 4
    alloc = make_allocator(spec, model=model, tp=1, capacity_bytes=num_blocks * layers * BS * LAYER_BYTES)
    alloc.resolve_for_scheduler("vllm")
    return alloc


def test_paged_serves_windowed_models_with_the_hybrid_manager_and_dense_ones_as_before():
    assert isinstance(_alloc(), HybridPagedAllocator)
    dense = ModelSpec("dense", 4, 64, 4, 2, 16, 128, 100, 4096)
    assert type(make_allocator("paged", model=dense, tp=1, capacity_bytes=10**6)) is PagedAllocator
    # a window covering the whole context never frees anything: the dense allocator, whose memory is the same
    covered = ModelSpec("covered", 4, 64, 4, 2, 16, 128, 100, 64, sliding_window=WINDOW)
    assert type(make_allocator("paged", model=covered, tp=1, capacity_bytes=10**6)) is PagedAllocator


def test_groups_share_one_pool_of_blocks_sized_for_a_group():
    alloc = _alloc(num_blocks=64)
    assert (alloc.num_groups, alloc.block_bytes, alloc.num_blocks) == (2, BLOCK_BYTES, 64)
    assert alloc.allocate(0, 40, final_num_tokens=50)  # 3 blocks in each group
    assert alloc.pool.num_used_blocks == 6
    alloc.check_invariants()


def test_memory_of_a_long_request_stays_flat_past_the_window():
    """Window 64, blocks of 16: a window group holds at most cdiv(63, 16) + 1 = 5 blocks once past the window;
    the full group grows by one block every 16 tokens; every layer windowed: flat altogether."""
    alloc = _alloc(ALL_WINDOW, num_blocks=64)
    assert alloc.allocate(0, 10, final_num_tokens=5000)
    used = []
    for _ in range(4990):
        assert alloc.append_slots(0, 1)
        used.append(alloc.pool.num_used_blocks)
    assert max(used) == 5 and used[-1000:] == [u for u in used[-1000:] if u in (4, 5)]
    parts = alloc.breakdown()
    assert parts.token_states <= 5 * BS * 4 * LAYER_BYTES and parts.capacity_bytes == alloc.capacity_bytes
    alloc.check_invariants()
    hybrid = _alloc(HYBRID, num_blocks=400)
    assert hybrid.allocate(0, 10, final_num_tokens=3000)
    for _ in range(2990):
        assert hybrid.append_slots(0, 1)
    window_blocks = len(hybrid.seqs[0].tables[0])
    assert window_blocks <= 5 and len(hybrid.seqs[0].tables[1]) == 3000 // BS + 1
    hybrid.check_invariants()


def test_blocks_freed_by_the_window_are_free_memory_not_fragmentation():
    alloc = _alloc(ALL_WINDOW, num_blocks=64)
    assert alloc.allocate(0, 1000, final_num_tokens=1000)  # a 1,000-token prefill: 63 blocks for now
    assert alloc.pool.num_used_blocks == 63
    assert alloc.append_slots(0, 0)  # the next allocation drops the blocks wholly before token 1000 - 64 + 1
    parts = alloc.breakdown()
    held = alloc.pool.num_used_blocks
    assert held == 63 - (1000 - WINDOW + 1) // BS  # 63 - 58 = 5
    assert parts.free == (64 - held) * alloc.block_bytes and parts.internal_frag < alloc.block_bytes
    alloc.check_invariants()


def test_a_prefix_hit_needs_a_hit_in_every_group():
    alloc = _alloc(HYBRID, num_blocks=200, enable_prefix_caching="true")
    hashes = list(range(1000, 1000 + 20))
    assert alloc.allocate(0, 320, final_num_tokens=320, block_hashes=hashes)
    alloc.free(0)  # every full block cached in both groups
    assert alloc.lookup_prefix(hashes, 320) == 19 * BS  # never the last token
    # drop the window group's cached copy of block 15: the window hit at 19 needs blocks 15..18 (cdiv(63, 16))
    pool = alloc.pool
    window_block = pool.hash_to_block[(0, hashes[15])]
    del pool.cached_free_blocks[window_block]  # evicted: back to a clean free block
    pool._uncache(window_block)
    pool.num_filled[window_block] = 0
    pool.free_block_ids.append(window_block)
    alloc.check_invariants()
    # the longest k whose 4 window blocks before it are cached: blocks 11..14 -> k = 15 (full group: 0..14 too)
    assert alloc.lookup_prefix(hashes, 320) == 15 * BS
    admission = alloc.allocate(1, 320, final_num_tokens=320, block_hashes=hashes)
    assert admission.num_cached_tokens == 15 * BS
    seq = alloc.seqs[1]
    assert seq.first == [max(0, 15 * BS - WINDOW + 1) // BS, 0]  # the window group takes blocks 11..14 only
    alloc.check_invariants()


def test_random_operations_keep_every_invariant():
    rng = random.Random(7)
    alloc = _alloc(HYBRID, num_blocks=120, enable_prefix_caching="true")
    live, next_id = {}, 0
    for _ in range(600):
        op = rng.random()
        if op < 0.3 or not live:
            n = rng.randint(1, 300)
            hashes = [rng.randint(0, 3) * 100 + i for i in range(n // BS)]
            if alloc.allocate(next_id, n, final_num_tokens=n + rng.randint(0, 200), block_hashes=hashes):
                live[next_id] = n
            next_id += 1
        elif op < 0.8:
            seq_id = rng.choice(list(live))
            alloc.append_slots(seq_id, rng.choice([1, 1, 1, 5, 40]))
        else:
            seq_id = rng.choice(list(live))
            del live[seq_id]
            alloc.free(seq_id)
        alloc.check_invariants()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("reserved:max", "have no per-layer window; use paged"),
        ("contiguous-growth", "have no per-layer window; use paged"),
        ("vattention", "unmapping the pages that fall out of a 64-token window"),
    ],
)
def test_other_allocators_refuse_windowed_models_with_the_reason(spec, message):
    with pytest.raises(KvsimError, match=message):
        make_allocator(spec, model=HYBRID, tp=1, capacity_bytes=10**7)


def test_vattention_refuses_latent_attention():
    mla = ModelSpec(
        "mla", 2, 64, 4, 4, 24, 128, 100, 4096, kv_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=16,
        v_head_dim=16,
    )  # fmt: skip
    with pytest.raises(KvsimError, match="one latent per token and layer, not K and V"):
        make_allocator("vattention", model=mla, tp=1, capacity_bytes=10**7)
    assert (
        make_allocator("reserved:max", model=mla, tp=1, capacity_bytes=10**7).kv_bytes_per_token == 2 * 40 * 2
    )


def test_only_vllm_v1_has_a_hybrid_manager():
    alloc = make_allocator("paged", model=HYBRID, tp=1, capacity_bytes=10**6)
    with pytest.raises(KvsimError, match="needs vLLM v1's hybrid KV-cache manager"):
        alloc.resolve_for_scheduler("vllm-v0")


def test_a_windowed_model_simulates_under_vllm_and_fast_forward_gives_the_same_run():
    """Mistral-7B-v0.1 (window 4,096 on every layer) on a tight KV budget with long requests: preemptions, and
    the replica runs one step per event for it (run.py), so --fast-forward changes nothing."""
    import numpy as np
    from simtools import random_trace

    from kvsim.simulator import SimConfig, simulate
    from kvsim.simulator.cost.constant import ConstantCostModel

    trace = random_trace(60, seed=3, rate_per_s=4.0, max_prompt=6000, max_output=3000)
    block = 32 * 16 * 4096  # Mistral-7B: 32 layers × 16 tokens × 4,096 bytes
    runs = [
        simulate(
            SimConfig(model="mistral-7b-v0.1", scheduler="vllm", kv_capacity_bytes=400 * block,
                      fast_forward=fast_forward),
            trace,
            cost_model=ConstantCostModel(0.01, 0.0),
        )
        for fast_forward in (True, False)
    ]  # fmt: skip
    a, b = runs
    assert a.summary == b.summary and a.summary["num_finished"] == 60
    np.testing.assert_array_equal(a.recorder.finish_s, b.recorder.finish_s)
    assert a.recorder.timeline_rows() == b.recorder.timeline_rows()
    # a request of up to 9,000 tokens holds at most its window's cdiv(4095, 16) + 1 = 257 blocks (+ its chunk):
    # 400 blocks serve every one, though full attention would need up to 563 blocks for one of them
    assert a.summary["num_rejected"] == 0 and a.summary["num_preemptions"] > 0


def test_windowed_presets_run_with_their_real_cost_model():
    """gpt-oss-20b (window 128 on half its layers) and Gemma-3-27B on the H100's measured profile: the cost
    model times a windowed model's decode steps one at a time, which the replica must then do."""
    from simtools import random_trace

    from kvsim.simulator import SimConfig, simulate

    trace = random_trace(30, seed=1, rate_per_s=10.0, max_prompt=2000, max_output=400)
    for model in ("gpt-oss-20b", "gemma-3-27b"):
        result = simulate(SimConfig(model=model, gpu="h100-sxm"), trace)
        assert result.summary["num_finished"] == 30
