"""Sliding-window attention in the four kernels (Mistral v0.1's window, Gemma's and gpt-oss's local layers).

A query at position p sees keys (p - W, p]. Each case is checked twice against the float32 reference: as
given, and with every block-table entry that lies wholly before the window pointed at a NaN-poisoned block,
as vLLM's hybrid KV-cache manager points freed out-of-window blocks at its null block. A kernel that reads a
key outside the window returns NaN there. Windows cover 1 token, less than one KV tile (BLOCK_N), not a
multiple of the block size, longer than the sequence, and prompts longer than one q tile.
"""

from __future__ import annotations

import pytest
import torch
from kernel_cases import assert_close, contiguous_kv, cu_seqlens, generator, int32, paged_cache, randn

from kvsim.kernels import (
    contiguous_decode_attention,
    contiguous_prefill_attention,
    paged_decode_attention,
    paged_prefill_attention,
)
from kvsim.kernels import reference as ref

F16, BF16, F32 = torch.float16, torch.bfloat16, torch.float32


def _poison_before(block_table, k_cache, seq_lens, first_visible):
    """A copy of block_table whose entries for blocks wholly before `first_visible[i]` (the first key any
    query of sequence i may see) name a NaN block that no sequence owns."""
    block_size = k_cache.shape[1]
    used = {int(block_table[i, b]) for i, n in enumerate(seq_lens) for b in range(-(-n // block_size))}
    spare = next(b for b in range(k_cache.shape[0]) if b not in used)
    assert torch.isnan(k_cache[spare].float()).all()
    poisoned = block_table.clone()
    num_poisoned = 0
    for i, first in enumerate(first_visible):
        for b in range(max(first, 0) // block_size):
            poisoned[i, b] = spare
            num_poisoned += 1
    return poisoned, num_poisoned


# (num_heads, num_kv_heads, head_dim, block_size, seq_lens, window, dtype, num_kv_splits)
DECODE_CASES = [
    pytest.param(8, 2, 64, 16, [1, 16, 17, 150], 20, F16, 1, id="gqa4-w20-nosplit-f16"),
    pytest.param(8, 2, 64, 16, [100, 45, 3], 33, F16, 3, id="gqa4-w33-split3-f16"),
    pytest.param(2, 2, 128, 8, [30, 9], 1, F32, None, id="mha-w1-f32"),
    pytest.param(4, 1, 64, 32, [300, 40], 64, BF16, 2, id="mqa-w64-split2-bf16"),
    pytest.param(4, 2, 64, 16, [50, 12], 4096, F16, 2, id="window-longer-than-sequences"),
]


@pytest.mark.parametrize(
    "num_heads, num_kv_heads, head_dim, block_size, seq_lens, window, dtype, num_kv_splits", DECODE_CASES
)
def test_windowed_decode_matches_reference_and_reads_only_the_window(
    num_heads, num_kv_heads, head_dim, block_size, seq_lens, window, dtype, num_kv_splits, device
):
    gen = generator(sum(seq_lens) + window)
    q = randn((len(seq_lens), num_heads, head_dim), dtype, device, gen)
    lens = int32(seq_lens, device)
    k_cache, v_cache, block_table = paged_cache(
        seq_lens, num_kv_heads, head_dim, block_size, dtype, device, gen
    )
    expected = ref.paged_decode_attention(q, k_cache, v_cache, block_table, lens, window=window)
    full = ref.paged_decode_attention(q, k_cache, v_cache, block_table, lens)
    if window < max(seq_lens):
        assert not torch.allclose(expected.float(), full.float()), "the window must change the answer"
    for table in (
        block_table,
        _poison_before(block_table, k_cache, seq_lens, [n - window for n in seq_lens])[0],
    ):
        out = paged_decode_attention(
            q, k_cache, v_cache, table, lens, num_kv_splits=num_kv_splits, window=window
        )
        assert_close(out, expected)

    k, v = contiguous_kv(seq_lens, num_kv_heads, head_dim, dtype, device, gen)
    for i, n in enumerate(seq_lens):  # poison what lies before the window: it must not be read
        k[i, : max(n - window, 0)] = float("nan")
    out = contiguous_decode_attention(q, k, v, lens, num_kv_splits=num_kv_splits, window=window)
    k_clean = torch.nan_to_num(k)
    assert_close(out, ref.contiguous_decode_attention(q, k_clean, v, lens, window=window))


def test_the_poisoning_catches_a_kernel_that_ignores_the_window(device):
    """The check above can fail: without the window the same poisoned table gives NaN."""
    gen = generator(3)
    seq_lens, window = [100, 60], 20
    q = randn((2, 4, 64), F16, device, gen)
    k_cache, v_cache, block_table = paged_cache(seq_lens, 2, 64, 16, F16, device, gen)
    poisoned, num_poisoned = _poison_before(block_table, k_cache, seq_lens, [n - window for n in seq_lens])
    assert num_poisoned == 5 + 2
    out = paged_decode_attention(q, k_cache, v_cache, poisoned, int32(seq_lens, device), num_kv_splits=1)
    assert torch.isnan(out.float()).all()


# (num_heads, num_kv_heads, head_dim, block_size, seq_lens, q_lens, window, dtype)
PREFILL_CASES = [
    pytest.param(2, 1, 64, 16, [1, 16, 17, 150], [1, 16, 5, 140], 24, F16, id="gqa2-w24-chunked-f16"),
    pytest.param(2, 2, 128, 8, [9, 70, 12], [9, 3, 0], 7, F32, id="mha-w7-prefix-hit-f32"),
    pytest.param(4, 1, 64, 32, [300, 7], [300, 7], 100, BF16, id="mqa-w100-two-q-tiles-bf16"),
    pytest.param(2, 1, 64, 16, [200], [200], 1, F32, id="w1-only-itself"),
    pytest.param(2, 1, 64, 16, [90], [90], 500, F16, id="window-longer-than-prompt"),
]


@pytest.mark.parametrize(
    "num_heads, num_kv_heads, head_dim, block_size, seq_lens, q_lens, window, dtype", PREFILL_CASES
)
def test_windowed_paged_prefill_matches_reference_and_reads_only_the_window(
    num_heads, num_kv_heads, head_dim, block_size, seq_lens, q_lens, window, dtype, device
):
    gen = generator(sum(seq_lens) + window + 1)
    k_cache, v_cache, block_table = paged_cache(
        seq_lens, num_kv_heads, head_dim, block_size, dtype, device, gen
    )
    q = randn((sum(q_lens), num_heads, head_dim), dtype, device, gen)
    cu_q, lens = cu_seqlens(q_lens, device), int32(seq_lens, device)
    expected = ref.paged_prefill_attention(q, k_cache, v_cache, block_table, cu_q, lens, window=window)
    first_visible = [n - m - window + 1 for n, m in zip(seq_lens, q_lens)]
    poisoned, _ = _poison_before(block_table, k_cache, seq_lens, first_visible)
    for table in (block_table, poisoned):
        out = paged_prefill_attention(q, k_cache, v_cache, table, cu_q, lens, window=window)
        assert_close(out, expected)


@pytest.mark.parametrize(
    "seq_lens, window, dtype", [([1, 17, 60], 5, F16), ([150, 2], 40, F32), ([70], 1, BF16)]
)
def test_windowed_contiguous_prefill_matches_reference(seq_lens, window, dtype, device):
    gen = generator(sum(seq_lens) + window + 2)
    total = sum(seq_lens)
    q = randn((total, 4, 64), dtype, device, gen)
    k = randn((total, 2, 64), dtype, device, gen)
    v = randn((total, 2, 64), dtype, device, gen)
    cu = cu_seqlens(seq_lens, device)
    out = contiguous_prefill_attention(q, k, v, cu, window=window)
    expected = ref.contiguous_prefill_attention(q, k, v, cu, window=window)
    assert_close(out, expected)
    assert not torch.allclose(expected.float(), ref.contiguous_prefill_attention(q, k, v, cu).float())


@pytest.mark.parametrize("window", [0, -3, 2.5, True])
def test_a_window_that_is_not_a_positive_int_is_refused(window, device):
    gen = generator(0)
    q = randn((1, 2, 64), F16, device, gen)
    k, v = contiguous_kv([4], 2, 64, F16, device, gen)
    with pytest.raises(ValueError, match="window must be a positive int"):
        contiguous_decode_attention(q, k, v, int32([4], device), window=window)
