"""Grid grammar: `--grid FIELD=VALUES`, ranges, allocator specs with ':' and ',', TOML (simulator/sweep/grid.py)."""

import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.sweep.grid import Grid, parse_grid_option, point_id, point_seed


def test_comma_separated_values_are_typed():
    assert parse_grid_option("tp=1,2,4") == ("tp", [1, 2, 4])
    assert parse_grid_option("gpu=a100-80gb,h100-sxm") == ("gpu", ["a100-80gb", "h100-sxm"])
    assert parse_grid_option("prefix_caching=true,false") == ("prefix_caching", [True, False])
    assert parse_grid_option("gpu_memory_utilization=0.8,0.9") == ("gpu_memory_utilization", [0.8, 0.9])


def test_range_is_inclusive_and_exact():
    field, values = parse_grid_option("rate=1:10:0.5")
    assert field == "rate"
    assert len(values) == 19
    assert values[:3] == [1.0, 1.5, 2.0] and values[-1] == 10.0
    assert parse_grid_option("rate=0.1:0.3:0.1")[1] == [0.1, 0.2, 0.3]  # no 0.30000000000000004
    assert parse_grid_option("block_size=8:32:8")[1] == [8, 16, 24, 32]
    assert parse_grid_option("rate=1:2:0.3")[1] == [1.0, 1.3, 1.6, 1.9]  # STOP not on the step: not reached


def test_allocator_spec_with_colon_is_a_literal_not_a_range():
    assert parse_grid_option("allocator=paged,reserved:pow2,vattention") == (
        "allocator",
        ["paged", "reserved:pow2", "vattention"],
    )


def test_semicolon_separates_values_that_hold_commas():
    _, values = parse_grid_option(
        "allocator=paged:block_size=16,enable_prefix_caching=true;vattention:page_size=64KiB"
    )
    assert values == ["paged:block_size=16,enable_prefix_caching=true", "vattention:page_size=64KiB"]


def test_repeated_option_appends_and_order_is_kept():
    grid = Grid.from_options(["allocator=paged", "rate=1,2", "allocator=reserved:max"])
    assert grid.names == ("allocator", "rate")
    assert grid.points() == [
        {"allocator": "paged", "rate": 1},
        {"allocator": "paged", "rate": 2},
        {"allocator": "reserved:max", "rate": 1},
        {"allocator": "reserved:max", "rate": 2},
    ]
    assert len(grid) == 4


@pytest.mark.parametrize(
    "option, message",
    [
        ("rate", "FIELD=V1,V2"),
        ("rate=", "no values"),
        ("rate=1,,2", "empty value"),
        ("rate=5:1:1", "START <= STOP"),
        ("rate=1:5:0", "STEP > 0"),
        ("rate=0:1000000:1", "use a larger STEP"),
        ("1rate=1", "FIELD=V1,V2"),
    ],
)
def test_bad_options_say_what_to_write(option, message):
    with pytest.raises(KvsimError, match=message):
        Grid.from_options([option])


def test_duplicate_values_are_rejected():
    with pytest.raises(KvsimError, match="more than once"):
        Grid.from_options(["tp=1,2", "tp=2"])


def test_toml_table_takes_lists_ranges_and_scalars():
    grid = Grid.from_mapping({"allocator": ["paged", "reserved:pow2"], "rate": "1:3:1", "tp": 2})
    assert grid.fields == (("allocator", ("paged", "reserved:pow2")), ("rate", (1, 2, 3)), ("tp", (2,)))
    with pytest.raises(KvsimError, match=r"\[grid\]\.rate"):
        Grid.from_mapping({"rate": [{"a": 1}]})


def test_point_identity_and_seed_depend_on_content_only():
    a = {"allocator": "paged", "rate": 2.0}
    assert point_id(a) == point_id(dict(reversed(list(a.items()))))
    assert point_id(a) != point_id({"allocator": "paged", "rate": 2})  # 2 and 2.0 are different values
    assert point_seed(0, {"trace": "sharegpt"}) == point_seed(0, {"trace": "sharegpt"})
    assert point_seed(0, {"trace": "sharegpt"}) != point_seed(1, {"trace": "sharegpt"})
    assert 0 <= point_seed(123, {}) < 2**32


def test_tied_fields_vary_together():
    grid = Grid.from_options(["allocator+scheduler=paged+vllm,reserved:max+orca", "rate=1,2"])
    assert grid.names == ("allocator", "scheduler", "rate")
    assert grid.points()[:3] == [
        {"allocator": "paged", "scheduler": "vllm", "rate": 1},
        {"allocator": "paged", "scheduler": "vllm", "rate": 2},
        {"allocator": "reserved:max", "scheduler": "orca", "rate": 1},
    ]
    assert Grid.from_mapping({"tp+num_replicas": ["1+4", "2+2"]}).points() == [
        {"tp": 1, "num_replicas": 4},
        {"tp": 2, "num_replicas": 2},
    ]


def test_tied_value_with_the_wrong_number_of_parts_is_an_error():
    with pytest.raises(KvsimError, match="needs 2 parts"):
        Grid.from_options(["allocator+scheduler=paged"])
    with pytest.raises(KvsimError, match="both alone and tied"):
        Grid.from_options(["allocator+scheduler=paged+vllm", "scheduler=orca"])
