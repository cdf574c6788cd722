"""Allocator specs: ``name[:policy][:key=value,...]`` parsing, canonical names, and errors that list the fix."""

from __future__ import annotations

import pytest
from allocator_ops import TINY

from kvsim.errors import KvsimError
from kvsim.simulator.allocators import ALLOCATORS, make_allocator
from kvsim.simulator.allocators.spec import format_size, parse_size
from kvsim.simulator.specs import ModelSpec

BIG = ModelSpec(
    name="big-heads",
    num_layers=2,
    hidden_size=1024,
    num_heads=8,
    num_kv_heads=8,
    head_dim=128,
    intermediate_size=2048,
    vocab_size=100,
    max_model_len=256,
)


def build(spec, model=TINY, **kwargs):
    return make_allocator(spec, model=model, tp=1, capacity_bytes=64 * 2**20, **kwargs)


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("paged", "paged:block_size=16"),
        ("paged:block_size=32", "paged:block_size=32"),
        ("paged:block_size=16,enable_prefix_caching=true", "paged:block_size=16,enable_prefix_caching=true"),
        ("reserved", "reserved:max"),
        ("reserved:pow2", "reserved:pow2"),
        ("reserved:oracle:round_to_buddy=yes", "reserved:oracle:round_to_buddy=true"),
        ("vattention", "vattention:page_size=2MiB"),
        ("vattention:page_size=64KiB", "vattention:page_size=64KiB"),
        ("vattention:page_size=2MiB,mapping=overlapped", "vattention:page_size=2MiB"),  # the default
        ("vattention:mapping=synchronous", "vattention:page_size=2MiB,mapping=synchronous"),
        ("vattention:page_size=131072", "vattention:page_size=128KiB"),
    ],
)
def test_every_spec_builds_and_names_itself_canonically(spec, canonical):
    alloc = build(spec, model=BIG)
    assert alloc.name == canonical
    assert build(canonical, model=BIG).name == canonical


def test_the_registry_lists_the_four_allocators():
    assert list(ALLOCATORS) == ["paged", "reserved", "vattention", "contiguous-growth"]


def test_a_calibrated_map_latency_reaches_vattention_unless_the_spec_sets_one():
    assert build("vattention", model=BIG, map_latency_s=1e-5).config.map_latency_s == 1e-5
    assert build("vattention:map_latency_s=2e-5", model=BIG, map_latency_s=1e-5).config.map_latency_s == 2e-5
    assert build("paged", map_latency_s=1e-5).name == "paged:block_size=16"


def test_the_label_is_what_the_spec_asked_for_not_the_values_kvsim_resolved():
    """A measured profile's map latency is a resolved value (config.json has it), not part of the label and run
    folder name: `vattention:page_size=64KiB` stays that on a GPU with a profile (issue 19)."""
    calibrated = build("vattention:page_size=64KiB", model=BIG, map_latency_s=3.55195e-05)
    assert calibrated.config.map_latency_s == 3.55195e-05
    assert calibrated.name == "vattention:page_size=64KiB"
    typed = build("vattention:page_size=64KiB,map_latency_s=2e-5", model=BIG, map_latency_s=3.55195e-05)
    assert typed.name == "vattention:page_size=64KiB,map_latency_s=2e-05"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("vattention:page_size=1e400", "'1e400' is not a finite size"),
        ("vattention:map_latency_s=nan", "'nan' is not a finite number"),
        ("vattention:map_latency_s=inf", "'inf' is not a finite number"),
    ],
)
def test_sizes_and_numbers_that_are_not_finite_are_refused(spec, message):
    with pytest.raises(KvsimError, match=message):
        build(spec, model=BIG)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("pagd", "unknown allocator 'pagd'.*valid: paged, reserved, vattention"),
        ("paged:blok_size=8", "no option 'blok_size'; valid: block_size, enable_prefix_caching"),
        ("paged:block_size=big", "block_size: 'big' is not an integer"),
        ("paged:block_size=0", "block_size must be a positive"),
        ("paged:enable_prefix_caching=maybe", "not true or false"),
        ("paged:pow2", "takes no policy"),
        ("reserved:fifo", "unknown policy 'fifo'; valid: max, pow2, oracle"),
        ("reserved:policy=max", "no option 'policy'"),
        ("vattention:page_size=2MB", "not a size"),
        ("vattention:mapping=async", "valid: synchronous, overlapped"),
        ("paged:block_size=8,x", "'x' is not key=value"),
        ("paged:block_size=16,block_size=32", "option 'block_size' is given twice; keep one"),
        ("vattention:page_size=64KiB:page_size=2MiB", "option 'page_size' is given twice"),
    ],
)
def test_a_bad_spec_is_a_kvsim_error_that_lists_the_valid_choices(spec, message):
    with pytest.raises(KvsimError, match=message):
        build(spec, model=BIG)


def test_sizes_read_and_print_in_binary_units():
    assert (
        parse_size("64KiB", "x") == 65536
        and parse_size("2mib", "x") == 2**21
        and parse_size("512", "x") == 512
    )
    assert format_size(2**21) == "2MiB" and format_size(3 * 2**10) == "3KiB" and format_size(1000) == "1000"


def test_capacity_too_small_for_one_block_is_a_kvsim_error():
    with pytest.raises(KvsimError, match="holds no block"):
        make_allocator("paged", model=TINY, tp=1, capacity_bytes=100)
