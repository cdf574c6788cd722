"""The vAttention allocator, as a specification."""

from __future__ import annotations

import pytest
from allocator_ops import OPS, run_ops
from hypothesis import HealthCheck, given, settings

from kvsim.errors import KvsimError
from kvsim.simulator.allocators import make_allocator
from kvsim.simulator.allocators.vattention import MAP_LATENCY_S
from kvsim.simulator.specs import ModelSpec

# One layer's K of one token: 8 KV heads × 128 × 2 bytes = 2 KiB, so a 64 KiB page holds 32 tokens; a page
# group is 2 layers × (K, V) = 4 pages = 256 KiB; a token is 8 KiB over all layers.
VMODEL = ModelSpec(
    name="vtiny",
    num_layers=2,
    hidden_size=1024,
    num_heads=8,
    num_kv_heads=8,
    head_dim=128,
    intermediate_size=2048,
    vocab_size=100,
    max_model_len=256,
)
SLOT, GROUP = 8 * 2**10, 256 * 2**10


def vattention(spec="vattention:page_size=64KiB", num_groups=8, model=VMODEL, **kwargs):
    return make_allocator(spec, model=model, tp=1, capacity_bytes=num_groups * GROUP, **kwargs)


def test_a_33_token_prompt_maps_two_pages_in_every_layer_buffer():
    alloc = vattention()
    assert alloc.tokens_per_page == 32
    alloc.allocate(0, 33, final_num_tokens=33)
    parts = alloc.breakdown()
    assert alloc.num_pages_mapped == 2 * 4
    assert (parts.token_states, parts.reserved, parts.internal_frag) == (33 * SLOT, 0, 31 * SLOT)
    assert parts.internal_frag < GROUP  # vAttention's bound: < 2 × num_layers × page_size
    assert alloc.take_overhead_s() == pytest.approx(8 * MAP_LATENCY_S)


def test_growth_maps_a_page_group_only_at_a_page_boundary():
    alloc = vattention()
    alloc.allocate(0, 33, final_num_tokens=100)
    assert alloc.breakdown().reserved == 31 * SLOT
    alloc.take_overhead_s()
    assert alloc.append_slots(0, 31) and alloc.take_overhead_s() == 0.0
    assert alloc.append_slots(0, 1) and alloc.take_overhead_s() == pytest.approx(4 * MAP_LATENCY_S)


def test_a_page_that_does_not_divide_into_tokens_lets_tokens_straddle_pages():
    # 40 KV heads × 128 × 2 bytes = 10 KiB per layer token: a 2 MiB page holds 204.8 tokens.
    opt = ModelSpec(
        name="opt-like",
        num_layers=2,
        hidden_size=5120,
        num_heads=40,
        num_kv_heads=40,
        head_dim=128,
        intermediate_size=20480,
        vocab_size=100,
        max_model_len=2048,
    )
    alloc = make_allocator("vattention", model=opt, tp=1, capacity_bytes=10 * 4 * 2**21)
    assert alloc.tokens_per_page == pytest.approx(204.8)
    assert (alloc.groups_for(409), alloc.groups_for(410)) == (2, 3)


def test_overlapped_mapping_hides_behind_the_previous_step():
    alloc = vattention("vattention:page_size=64KiB,mapping=overlapped")
    alloc.allocate(0, 64, final_num_tokens=64)  # 2 groups: 8 pages
    map_s = 8 * MAP_LATENCY_S
    assert alloc.take_overhead_s(previous_step_s=map_s / 2) == pytest.approx(map_s / 2)
    alloc.append_slots(0, 1)
    assert alloc.take_overhead_s(previous_step_s=1.0) == 0.0


def test_mapping_is_overlapped_by_default_and_synchronous_charges_it_all():
    # vAttention maps the next step's pages during the current one (its §6.2); calibrate/vmm_overlap.py found
    # the driver's calls neither wait for nor slow queued GPU work (benchmarks/results/vmm_overlap-h200.json)
    assert vattention().mapping == "overlapped"
    alloc = vattention("vattention:page_size=64KiB,mapping=synchronous")
    alloc.allocate(0, 64, final_num_tokens=64)  # 2 groups: 8 pages
    assert alloc.take_overhead_s(previous_step_s=1.0) == pytest.approx(8 * MAP_LATENCY_S)


def test_stats_count_the_mapping_time_and_the_part_the_steps_were_charged():
    alloc = vattention("vattention:page_size=64KiB,mapping=overlapped")
    alloc.allocate(0, 64, final_num_tokens=200)  # 2 groups: 8 pages
    alloc.take_overhead_s(previous_step_s=3 * MAP_LATENCY_S)  # 5 pages' time shows
    alloc.append_slots(0, 64)  # 2 groups more
    alloc.take_overhead_s(previous_step_s=1.0)  # hidden
    stats = alloc.stats()
    assert stats["num_pages_mapped"] == 16 and stats["map_s"] == pytest.approx(16 * MAP_LATENCY_S)
    assert stats["map_charged_s"] == pytest.approx(5 * MAP_LATENCY_S)
    sync = vattention("vattention:page_size=64KiB,mapping=synchronous")
    sync.allocate(0, 64, final_num_tokens=64)
    sync.take_overhead_s(previous_step_s=1.0)
    assert sync.stats()["map_charged_s"] == sync.stats()["map_s"] == pytest.approx(8 * MAP_LATENCY_S)


def test_a_finished_requests_pages_stay_mapped_as_free_cached_memory_for_the_next_request():
    alloc = vattention(num_groups=4)
    alloc.allocate(0, 96, final_num_tokens=96)  # 3 groups
    alloc.free(0)
    parts = alloc.breakdown()
    assert parts.free == 4 * GROUP and parts.cached_bytes == 3 * GROUP
    alloc.take_overhead_s()
    alloc.allocate(1, 10, final_num_tokens=70)  # reuses the buffer: 1 group needed, 2 stay cached
    assert alloc.take_overhead_s() == 0.0 and alloc.breakdown().cached_bytes == 2 * GROUP
    assert alloc.append_slots(1, 60) and alloc.take_overhead_s() == 0.0  # grows into its own cached pages


def test_without_reuse_pages_a_finished_request_unmaps_everything():
    alloc = vattention("vattention:page_size=64KiB,reuse_pages=false", num_groups=4)
    alloc.allocate(0, 96, final_num_tokens=96)
    alloc.free(0)
    assert alloc.breakdown().cached_bytes == 0 and alloc.num_free_groups == 4


def test_cached_pages_are_taken_back_when_free_memory_runs_out():
    alloc = vattention(num_groups=4)
    alloc.allocate(0, 96, final_num_tokens=96)
    alloc.allocate(1, 1, final_num_tokens=1)  # the last free group
    alloc.free(0)  # 3 cached groups in an idle buffer
    alloc.take_overhead_s()
    assert alloc.append_slots(1, 64)  # needs 2 more groups: taken from the idle buffer and mapped
    assert alloc.take_overhead_s() == pytest.approx(2 * 4 * MAP_LATENCY_S)
    assert alloc.breakdown().cached_bytes == 1 * GROUP
    assert not alloc.append_slots(1, 64) and alloc.append_slots(1, 32)


def test_a_request_cannot_grow_past_its_virtual_region_of_max_model_len_tokens():
    alloc = vattention(num_groups=20)
    alloc.allocate(0, 250, final_num_tokens=256)
    assert alloc.max_uniform_growth([0], 100) == 6
    assert not alloc.append_slots(0, 7) and alloc.append_slots(0, 6)


def test_requests_that_can_never_fit_are_rejected_with_a_reason():
    alloc = vattention(num_groups=2)
    assert alloc.rejection_reason(60, 4) is None
    assert "only 2" in alloc.rejection_reason(60, 5)
    assert "max_model_len" in alloc.rejection_reason(200, 100)


def test_an_unsupported_page_size_names_the_valid_ones():
    with pytest.raises(KvsimError, match="64KiB, 128KiB, 256KiB, 2MiB"):
        vattention("vattention:page_size=1MiB")


@pytest.mark.parametrize(
    "spec", ["vattention:page_size=64KiB", "vattention:page_size=64KiB,reuse_pages=false"]
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_random_operations_keep_every_invariant(spec, ops):
    run_ops(vattention(spec, num_groups=7, swap_space_bytes=3 * GROUP), ops)


def test_can_swap_in_says_whether_the_sequences_come_back_with_their_next_slots():
    # vLLM v0's can_swap_in: the scheduler probes only when the probe would succeed, since a failed one maps
    # pages (and takes other buffers' cached groups) that swapping out again does not give back.
    alloc = vattention(
        "vattention:page_size=64KiB,reuse_pages=false", num_groups=4, swap_space_bytes=4 * GROUP
    )
    alloc.allocate(0, 64, final_num_tokens=100)  # 2 groups of 32 tokens
    alloc.allocate(1, 64, final_num_tokens=100)  # 2 groups: memory full
    assert alloc.swap_out(1) is not None  # 2 groups free
    assert alloc.can_swap_in([1], 0)  # its 2 groups fit ...
    assert not alloc.can_swap_in([1], 1)  # ... but not a third for its next token
    alloc.free(0)
    assert alloc.can_swap_in([1], 1) and alloc.can_swap_in([1], 64) and not alloc.can_swap_in([1], 65)


def test_can_swap_in_counts_cached_groups_as_available():
    alloc = vattention(num_groups=4, swap_space_bytes=4 * GROUP)
    alloc.allocate(0, 64, final_num_tokens=100)
    alloc.allocate(1, 64, final_num_tokens=100)
    alloc.swap_out(1)
    alloc.free(0)  # its 2 groups stay mapped in an idle buffer: cached, taken back on demand
    assert alloc.num_free_groups == 0 and alloc.num_cached_groups == 4
    assert alloc.can_swap_in([1], 1)
    assert alloc.swap_in(1) is not None and alloc.append_slots(1, 1)
