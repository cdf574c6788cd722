"""The report's summary table shows an allocator's own counters (summary.json ``allocator_stats``)."""

from kvsim.reports.summary import HEADER, allocator_counters


def test_counters_read_as_name_value_pairs_and_an_allocator_without_them_shows_nothing():
    assert HEADER[-1] == "Allocator counters"
    stats = {"num_growth_copies": 693, "copy_s": 0.2631982328592445}
    assert allocator_counters(stats) == "num_growth_copies 693, copy_s 0.2632"
    assert allocator_counters({}) == ""
