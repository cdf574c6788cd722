"""The paged allocator's invariants, checked from scratch (O(blocks + sequences); tests only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvsim.simulator.allocators.paged import PagedAllocator


def check_paged_invariants(alloc: PagedAllocator) -> None:
    """Ref counts equal the block tables' holdings; each block is in use, clean-free or cached-free; block
    tables match token counts; the incremental counters equal a recount; the five parts are non-negative and
    sum to capacity; external_frag is 0 and internal_frag is under one block per partial block."""
    bs, pool = alloc.block_size, alloc.pool
    expected_ref_cnt = [0] * pool.num_blocks
    partial: dict[int, list[int]] = {}
    for seq_id, seq in alloc.seqs.items():
        table = seq.block_table
        if seq.num_swapped_blocks:
            assert not table
            continue
        assert len(table) == -(-seq.num_tokens // bs), f"seq {seq_id}: block table length"
        for block_id in table:
            expected_ref_cnt[block_id] += 1
        assert all(pool.num_filled[b] == bs for b in table[:-1]), f"seq {seq_id}: a non-last block not full"
        assert pool.num_filled[table[-1]] == seq.num_tokens - (len(table) - 1) * bs
        if pool.num_filled[table[-1]] < bs:
            partial.setdefault(table[-1], []).append(seq_id)
    pool.check_invariants(expected_ref_cnt)
    assert {b: sorted(s) for b, s in partial.items()} == {
        b: sorted(s) for b, s in alloc._partial_sharers.items()
    }, "partial-block sharers drifted"
    num_reserved = 0
    for block_id, sharers in partial.items():
        will_fill = max(alloc.seqs[s].final_num_tokens - alloc.seqs[s].num_tokens for s in sharers)
        num_reserved += max(0, min(bs - pool.num_filled[block_id], will_fill))
    assert num_reserved == alloc._num_reserved_slots, "reserved counter drifted"
    parts = alloc.breakdown()
    assert min(parts.as_dict().values()) >= 0 and parts.capacity_bytes == alloc.capacity_bytes, parts
    assert parts.external_frag == 0
    assert parts.internal_frag < max(1, len(partial)) * alloc.block_bytes, "internal_frag >= a block per seq"
    assert parts.cached_bytes <= parts.free
    assert alloc.free_bytes() == parts.free, "free_bytes() differs from breakdown().free"
    num_swapped = sum(seq.num_swapped_blocks for seq in alloc.seqs.values())
    assert num_swapped == alloc.num_cpu_blocks_used <= alloc.num_cpu_blocks
