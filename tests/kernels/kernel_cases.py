"""Inputs for the kernel tests: random q/K/V with poisoned padding, shuffled block tables, tolerances.

Every cache slot that holds no live token (unused blocks, the tail of a sequence's last block, the rows of a
contiguous region past seq_len) is NaN, and block-table entries past a sequence's last block are an
out-of-range id: a kernel that reads anything it should not returns NaN or crashes instead of passing.
"""

from __future__ import annotations

import torch

# (atol, rtol) against the float32 reference. fp16/bf16 kernels round the softmax weights to the input dtype
# before the PV product (as FlashAttention does) and round the output; the interpreter's fp32 -> bf16 cast
# truncates instead of rounding, so bf16 gets about 2 ulps of bf16 (2^-8 relative) of slack on top.
TOLERANCES = {
    torch.float32: (2e-5, 2e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (2e-2, 2e-2),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    atol, rtol = TOLERANCES[expected.dtype]
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual.float(), expected.float(), atol=atol, rtol=rtol)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(shape, dtype, device, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=gen).to(dtype=dtype, device=device)


def paged_cache(seq_lens: list[int], num_kv_heads: int, head_dim: int, block_size: int, dtype, device, gen):
    """(k_cache, v_cache, block_table) holding each sequence in shuffled, non-contiguous blocks.

    Two spare blocks per sequence are allocated and left unused (poisoned), and the block table has one
    spare column, so ids are scattered over a larger cache than needed.
    """
    blocks_per_seq = [-(-n // block_size) for n in seq_lens]
    max_blocks = max(blocks_per_seq) + 1
    num_blocks = sum(blocks_per_seq) + 2 * len(seq_lens)
    shape = (num_blocks, block_size, num_kv_heads, head_dim)
    k_cache = torch.full(shape, float("nan"), dtype=dtype, device=device)
    v_cache = torch.full(shape, float("nan"), dtype=dtype, device=device)
    block_ids = torch.randperm(num_blocks, generator=gen).tolist()
    block_table = torch.full((len(seq_lens), max_blocks), num_blocks + 7, dtype=torch.int32)
    for i, (seq_len, num_used) in enumerate(zip(seq_lens, blocks_per_seq)):
        mine, block_ids = block_ids[:num_used], block_ids[num_used:]
        block_table[i, :num_used] = torch.tensor(mine, dtype=torch.int32)
        for logical, physical in enumerate(mine):
            live = min(block_size, seq_len - logical * block_size)
            k_cache[physical, :live] = randn((live, num_kv_heads, head_dim), dtype, device, gen)
            v_cache[physical, :live] = randn((live, num_kv_heads, head_dim), dtype, device, gen)
    return k_cache, v_cache, block_table.to(device)


def contiguous_kv(seq_lens: list[int], num_kv_heads: int, head_dim: int, dtype, device, gen):
    """(k, v) [num_seqs, max_seq_len + 3, num_kv_heads, head_dim]; rows past each seq_len are NaN."""
    shape = (len(seq_lens), max(seq_lens) + 3, num_kv_heads, head_dim)
    k = randn(shape, dtype, device, gen)
    v = randn(shape, dtype, device, gen)
    for i, seq_len in enumerate(seq_lens):
        k[i, seq_len:] = float("nan")
        v[i, seq_len:] = float("nan")
    return k, v


def int32(values: list[int], device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int32, device=device)


def cu_seqlens(lengths: list[int], device) -> torch.Tensor:
    bounds = [0]
    for n in lengths:
        bounds.append(bounds[-1] + n)
    return int32(bounds, device)
