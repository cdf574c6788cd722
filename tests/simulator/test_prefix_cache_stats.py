"""The prefix cache's hit rate and evictions (DESIGN §6; docs/outputs.md): summary.json's ``prefix_cache``, the
timeline's cumulative counters, and the comparison table's rows."""

from __future__ import annotations

import csv

from simtools import KV_BYTES_PER_TOKEN, make_trace, run

from kvsim.cli.simulate import comparison_table, write_comparison_csv
from kvsim.simulator.recorder import PREFIX_CACHE_COLUMNS, TIMELINE_COLUMNS

CACHING = "paged:enable_prefix_caching=true"
BLOCK_TOKENS = 16


def three_prompts():
    """Three 1,024-token prompts (64 blocks): the second shares the first's leading 512-token chunk, the third
    shares nothing. Each runs alone (arrivals 5 s apart, 0.25 s steps)."""
    return make_trace(
        [(0.0, 1024, 2), (5.0, 1024, 2), (10.0, 1024, 2)], prefix_block_hashes=[(1, 2), (1, 3), (7, 8)]
    )


def test_hits_and_queries_are_counted_in_tokens_and_blocks_and_evictions_in_blocks():
    # 100 blocks: when the third prompt comes, the cache holds the first prompt's 64 blocks and the second's
    # 32 own ones, so 4 blocks are clean: 60 cached blocks are evicted for its prompt, 1 for its decode block.
    result = run(
        three_prompts(), allocator=CACHING, kv_capacity_bytes=100 * BLOCK_TOKENS * KV_BYTES_PER_TOKEN
    )
    assert result.summary["prefix_cache"] == {
        "num_query_tokens": 3 * 1024,
        "num_hit_tokens": 512,
        "num_query_blocks": 3 * 64,
        "num_hit_blocks": 32,
        "num_evicted_blocks": 61,
        "hit_rate_tokens": 512 / 3072,
        "hit_rate_blocks": 32 / 192,
    }
    assert result.recorder.num_cached_tokens.tolist() == [0, 512, 0]


def test_the_timeline_carries_the_cumulative_counters_as_of_each_row():
    result = run(
        three_prompts(), allocator=CACHING, kv_capacity_bytes=100 * BLOCK_TOKENS * KV_BYTES_PER_TOKEN
    )
    names = result.recorder.timeline_column_names
    assert names == (*TIMELINE_COLUMNS, *PREFIX_CACHE_COLUMNS)
    counters = {row[0]: row[len(TIMELINE_COLUMNS) :] for row in result.recorder.timeline_rows()}
    assert counters[0.0] == (1024, 0, 64, 0, 0)  # the first admission
    assert counters[5.0] == (2048, 512, 128, 32, 0)  # the second hits the shared chunk
    assert counters[10.0] == (3072, 512, 192, 32, 60)  # the third's prompt evicted 60 cached blocks
    assert counters[10.5] == (3072, 512, 192, 32, 61)  # and its decode block one more


def test_a_run_without_prefix_caching_reports_none_and_keeps_its_timeline_columns():
    result = run(three_prompts(), kv_capacity_bytes=100 * BLOCK_TOKENS * KV_BYTES_PER_TOKEN)
    assert result.summary["prefix_cache"] is None
    assert result.recorder.timeline_column_names == TIMELINE_COLUMNS
    assert len(result.recorder.timeline_rows()[0]) == len(TIMELINE_COLUMNS)


def test_the_comparison_table_and_csv_show_the_hit_rates_and_evictions(tmp_path):
    capacity = 100 * BLOCK_TOKENS * KV_BYTES_PER_TOKEN
    results = [
        run(three_prompts(), allocator=CACHING, kv_capacity_bytes=capacity),
        run(three_prompts(), kv_capacity_bytes=capacity),
    ]
    rows = {line[:20].strip(): line[20:].split() for line in comparison_table(results).splitlines()}
    assert rows["prefix hit rate tok"] == ["16.7%", "-"]
    assert rows["prefix hit rate blk"] == ["16.7%", "-"]
    assert rows["prefix evicted blk"] == ["61", "-"]
    path = tmp_path / "comparison.csv"
    write_comparison_csv(results, path)
    caching, plain = csv.DictReader(path.open())
    assert float(caching["prefix_cache_hit_rate_tokens"]) == 512 / 3072
    assert caching["prefix_cache_num_evicted_blocks"] == "61"
    assert plain["prefix_cache_hit_rate_tokens"] == ""


def test_the_comparison_csv_has_no_prefix_cache_columns_when_nothing_caches(tmp_path):
    path = tmp_path / "comparison.csv"
    write_comparison_csv([run(three_prompts())], path)
    assert not [c for c in path.read_text().splitlines()[0].split(",") if c.startswith("prefix_cache")]
