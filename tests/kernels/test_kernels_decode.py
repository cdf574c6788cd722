"""Decode kernels (paged and contiguous) against the float32 torch reference.

CPU cases run in Triton's interpreter and stay tiny; `gpu` cases are the same checks at serving sizes.
Sequence lengths cover 1 token, exactly one block, one past a block, and ragged batches.
"""

from __future__ import annotations

import pytest
import torch
from kernel_cases import assert_close, contiguous_kv, generator, int32, paged_cache, randn

from kvsim.kernels import contiguous_decode_attention, paged_decode_attention
from kvsim.kernels import reference as ref

F16, BF16, F32 = torch.float16, torch.bfloat16, torch.float32

# (num_heads, num_kv_heads, head_dim, block_size, seq_lens, dtype, num_kv_splits)
CPU_CASES = [
    pytest.param(8, 2, 64, 16, [1, 16, 17, 150], F16, 1, id="gqa4-d64-bs16-edges-nosplit-f16"),
    pytest.param(8, 2, 64, 16, [1, 16, 17, 45], F16, 3, id="gqa4-d64-bs16-edges-split3-f16"),
    pytest.param(2, 2, 128, 8, [8, 9, 30], F32, None, id="mha-d128-bs8-auto-f32"),
    pytest.param(4, 1, 64, 32, [32, 33, 1], BF16, 2, id="mqa-d64-bs32-split2-bf16"),
    pytest.param(4, 2, 64, 128, [128, 129, 5], F16, 1, id="gqa2-d64-bs128-nosplit-f16"),
    pytest.param(4, 2, 64, 128, [300, 1], BF16, 2, id="gqa2-d64-bs128-split2-bf16"),
    pytest.param(2, 1, 256, 16, [20, 70], F16, 2, id="mqa-d256-bs16-split2-f16"),
]
# Llama-3-8B (32 q heads, 8 KV heads, head_dim 128) and friends at serving lengths.
GPU_CASES = [
    pytest.param(
        32, 8, 128, 16, [4096, 1, 17, 2049, 3000, 511, 4095, 64], F16, None, id="llama3-8b-bs16-auto"
    ),
    pytest.param(32, 8, 128, 16, [4096, 1, 17, 2049], BF16, 1, id="llama3-8b-bs16-nosplit-bf16"),
    pytest.param(32, 8, 128, 16, [8191, 33], F16, 16, id="llama3-8b-bs16-split16"),
    pytest.param(32, 1, 128, 256, [5000, 256, 257], F16, None, id="mqa-bs256"),
    pytest.param(16, 16, 64, 8, [1000, 9, 8], BF16, 4, id="mha-d64-bs8"),
    pytest.param(8, 2, 256, 32, [3000, 33], F16, None, id="d256-bs32"),
    pytest.param(32, 8, 128, 16, [1500, 700], F32, 3, id="llama3-8b-f32"),
]


def _decode_case(num_heads, num_kv_heads, head_dim, block_size, seq_lens, dtype, num_kv_splits, device):
    gen = generator(len(seq_lens) * 1000 + head_dim + block_size)
    q = randn((len(seq_lens), num_heads, head_dim), dtype, device, gen)
    lens = int32(seq_lens, device)

    k_cache, v_cache, block_table = paged_cache(
        seq_lens, num_kv_heads, head_dim, block_size, dtype, device, gen
    )
    out = paged_decode_attention(q, k_cache, v_cache, block_table, lens, num_kv_splits=num_kv_splits)
    assert_close(out, ref.paged_decode_attention(q, k_cache, v_cache, block_table, lens))

    k, v = contiguous_kv(seq_lens, num_kv_heads, head_dim, dtype, device, gen)
    out = contiguous_decode_attention(q, k, v, lens, num_kv_splits=num_kv_splits)
    assert_close(out, ref.contiguous_decode_attention(q, k, v, lens))


@pytest.mark.parametrize(
    "num_heads, num_kv_heads, head_dim, block_size, seq_lens, dtype, num_kv_splits", CPU_CASES
)
def test_decode_matches_reference(
    num_heads, num_kv_heads, head_dim, block_size, seq_lens, dtype, num_kv_splits, device
):
    _decode_case(num_heads, num_kv_heads, head_dim, block_size, seq_lens, dtype, num_kv_splits, device)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "num_heads, num_kv_heads, head_dim, block_size, seq_lens, dtype, num_kv_splits", GPU_CASES
)
def test_decode_matches_reference_at_full_size(
    num_heads, num_kv_heads, head_dim, block_size, seq_lens, dtype, num_kv_splits, device
):
    _decode_case(num_heads, num_kv_heads, head_dim, block_size, seq_lens, dtype, num_kv_splits, device)


def test_splitting_does_not_change_the_result_beyond_rounding(device):
    """Flash-decoding's merge is exact up to float32 rounding: 1 and 5 splits agree to a few 1e-6 (on a GPU
    exp2 is approximate, and each split rounds against its own running max)."""
    gen = generator(7)
    seq_lens = [300, 37]
    q = randn((2, 4, 64), F32, device, gen)
    k_cache, v_cache, block_table = paged_cache(seq_lens, 2, 64, 16, F32, device, gen)
    lens = int32(seq_lens, device)
    one = paged_decode_attention(q, k_cache, v_cache, block_table, lens, num_kv_splits=1)
    five = paged_decode_attention(q, k_cache, v_cache, block_table, lens, num_kv_splits=5)
    torch.testing.assert_close(one, five, atol=5e-6, rtol=5e-6)


def test_caller_vouched_max_seq_len_gives_the_same_result(device):
    """Passing max_seq_len skips the host sync and value checks but must not change the output."""
    gen = generator(8)
    seq_lens = [40, 3]
    q = randn((2, 4, 64), F16, device, gen)
    k_cache, v_cache, block_table = paged_cache(seq_lens, 1, 64, 16, F16, device, gen)
    lens = int32(seq_lens, device)
    checked = paged_decode_attention(q, k_cache, v_cache, block_table, lens, num_kv_splits=2)
    vouched = paged_decode_attention(q, k_cache, v_cache, block_table, lens, num_kv_splits=2, max_seq_len=40)
    torch.testing.assert_close(checked, vouched, atol=0, rtol=0)


def test_custom_scale_and_strided_q(device):
    """q may be a strided view (e.g. a slice of a fused QKV projection); scale overrides 1/sqrt(d)."""
    gen = generator(9)
    seq_lens = [19, 50]
    qkv = randn((2, 12, 64), F32, device, gen)
    q = qkv[:, :8]  # [2, 8, 64] with stride(0) = 12 * 64
    k, v = contiguous_kv(seq_lens, 2, 64, F32, device, gen)
    lens = int32(seq_lens, device)
    out = contiguous_decode_attention(q, k, v, lens, scale=0.3, num_kv_splits=2)
    assert_close(out, ref.contiguous_decode_attention(q, k, v, lens, scale=0.3))


def test_empty_batch_returns_empty_output(device):
    q = torch.empty((0, 4, 64), dtype=F16, device=device)
    k_cache = torch.zeros((2, 16, 2, 64), dtype=F16, device=device)
    block_table = torch.zeros((0, 1), dtype=torch.int32, device=device)
    out = paged_decode_attention(q, k_cache, k_cache, block_table, int32([], device))
    assert out.shape == (0, 4, 64)
