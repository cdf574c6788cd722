"""The reserved (Orca / FasterTransformer) allocator, as a specification."""

from __future__ import annotations

import pytest
from allocator_ops import KV_BYTES_PER_TOKEN, OPS, TINY, run_ops
from hypothesis import HealthCheck, given, settings

from kvsim.simulator.allocators import make_allocator
from kvsim.simulator.allocators.paged import PCIE_BW_BYTES_PER_S

SLOT = KV_BYTES_PER_TOKEN


def reserved(spec, num_slots=1024, swap_slots=0):
    return make_allocator(
        spec, model=TINY, tp=1, capacity_bytes=num_slots * SLOT, swap_space_bytes=swap_slots * SLOT
    )


@pytest.mark.parametrize(
    ("spec", "region", "internal"),
    [
        ("reserved:max", 256, 236),
        ("reserved:pow2", 32, 12),
        ("reserved:oracle", 20, 0),
        ("reserved:oracle:round_to_buddy=true", 32, 12),
    ],
)
def test_the_policy_sizes_the_region_and_slots_beyond_the_final_length_are_internal_frag(
    spec, region, internal
):
    alloc = reserved(spec)
    assert alloc.allocate(0, 12, final_num_tokens=20) is not None
    parts = alloc.breakdown()
    assert alloc.seqs[0].num_region_slots == region
    assert (parts.token_states, parts.reserved, parts.internal_frag) == (12 * SLOT, 8 * SLOT, internal * SLOT)
    assert parts.free == (1024 - region) * SLOT and parts.external_frag == 0


def test_the_spec_is_canonical():
    assert reserved("reserved").name == "reserved:max"
    assert reserved("reserved:pow2").name == "reserved:pow2"


def test_a_region_never_grows_past_its_reservation(tiny_model):
    alloc = reserved("reserved:oracle")
    alloc.allocate(0, 12, final_num_tokens=20)
    assert alloc.max_uniform_growth([0], 100) == 8
    assert alloc.append_slots(0, 8) and not alloc.append_slots(0, 1)


def test_a_blocked_head_of_queue_allocation_shows_free_minus_the_largest_block_as_external_frag():
    alloc = reserved("reserved:oracle", num_slots=1024)
    for seq_id in range(4):
        alloc.allocate(seq_id, 256, final_num_tokens=256)  # offsets 0, 256, 512, 768
    alloc.free(0)
    alloc.free(2)  # 512 slots free, in two blocks of 256
    assert alloc.allocate(9, 300, final_num_tokens=300) is None
    parts = alloc.breakdown()
    assert parts.external_frag == 256 * SLOT and parts.free == 256 * SLOT
    alloc.clear_blocked()
    assert alloc.breakdown().external_frag == 0 and alloc.breakdown().free == 512 * SLOT


def test_reserved_max_with_less_memory_than_max_model_len_rejects_every_request():
    alloc = reserved("reserved:max", num_slots=200)
    assert "every request is rejected" in alloc.rejection_reason(1, 1)
    assert reserved("reserved:oracle", num_slots=200).rejection_reason(1, 1) is None
    assert "max_model_len" in alloc.rejection_reason(200, 100)


def test_fork_copies_the_region_and_fails_cleanly_without_room():
    alloc = reserved("reserved:oracle", num_slots=64)
    alloc.allocate(0, 10, final_num_tokens=30)
    assert alloc.fork(0, 1) and alloc.breakdown().token_states == 20 * SLOT
    before = alloc.breakdown()
    assert not alloc.fork(0, 2) and alloc.breakdown() == before and 2 not in alloc.seqs


def test_swap_moves_the_stored_tokens_and_charges_pcie_time():
    alloc = reserved("reserved:pow2", swap_slots=64)
    alloc.allocate(0, 10, final_num_tokens=30)
    assert alloc.swap_out(0) == 10 * SLOT and alloc.breakdown().free == 1024 * SLOT
    assert alloc.take_overhead_s() == pytest.approx(10 * SLOT / PCIE_BW_BYTES_PER_S)
    assert alloc.swap_in(0) == 10 * SLOT and alloc.seqs[0].num_region_slots == 32


@pytest.mark.parametrize(
    "spec", ["reserved:max", "reserved:pow2", "reserved:oracle", "reserved:oracle:round_to_buddy=true"]
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_random_operations_keep_every_invariant(spec, ops):
    run_ops(reserved(spec, num_slots=700, swap_slots=200), ops)
