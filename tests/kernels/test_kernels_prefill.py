"""Prefill kernels (causal varlen; paged and contiguous) against the float32 torch reference.

Paged cases give each sequence q_len <= seq_len new tokens at the end (chunked prefill, prefix-cache hits),
including q_len 0, q_len 1, whole prompts, and prompts longer than one q tile (BLOCK_M = 128 at head_dim
<= 128 in fp16/bf16, 64 otherwise) so the unmasked and the diagonal KV loops both run.
"""

from __future__ import annotations

import pytest
import torch
from kernel_cases import assert_close, cu_seqlens, generator, int32, paged_cache, randn

from kvsim.kernels import (
    contiguous_prefill_attention,
    paged_decode_attention,
    paged_prefill_attention,
)
from kvsim.kernels import reference as ref

F16, BF16, F32 = torch.float16, torch.bfloat16, torch.float32

# (num_heads, num_kv_heads, head_dim, block_size, seq_lens, q_lens, dtype)
PAGED_CPU_CASES = [
    pytest.param(2, 1, 64, 16, [1, 16, 17, 150], [1, 16, 5, 140], F16, id="gqa2-d64-bs16-chunked-f16"),
    pytest.param(2, 2, 128, 8, [9, 70, 12], [9, 3, 0], F32, id="mha-d128-bs8-prefix-hit-f32"),
    pytest.param(4, 1, 64, 128, [130, 7], [130, 7], BF16, id="mqa-d64-bs128-whole-bf16"),
    pytest.param(2, 1, 64, 32, [100], [67], F32, id="d64-bs32-f32-two-q-tiles"),
]
# (num_heads, num_kv_heads, head_dim, seq_lens, dtype)
CONTIGUOUS_CPU_CASES = [
    pytest.param(4, 1, 64, [1, 17, 60], F16, id="mqa-d64-f16"),
    pytest.param(2, 2, 128, [70, 2], F32, id="mha-d128-f32-two-q-tiles"),
    pytest.param(2, 1, 256, [40, 0, 9], BF16, id="d256-bf16-empty-seq"),
]
PAGED_GPU_CASES = [
    pytest.param(32, 8, 128, 16, [4096, 2000, 1, 777], [4096, 512, 1, 700], F16, id="llama3-8b-f16"),
    pytest.param(32, 8, 128, 16, [3000, 1025], [1000, 1025], BF16, id="llama3-8b-bf16"),
    pytest.param(16, 1, 64, 256, [2500, 300], [2500, 17], F16, id="mqa-d64-bs256"),
    pytest.param(8, 8, 256, 32, [1500, 64], [900, 64], BF16, id="mha-d256-bs32"),
    pytest.param(8, 2, 128, 8, [700, 9], [300, 9], F32, id="d128-bs8-f32"),
]
CONTIGUOUS_GPU_CASES = [
    pytest.param(32, 8, 128, [4096, 1, 1000, 3071], F16, id="llama3-8b-f16"),
    pytest.param(16, 16, 64, [2048, 129], BF16, id="mha-d64-bf16"),
    pytest.param(8, 1, 256, [1200, 33], F16, id="mqa-d256-f16"),
]


def _paged_case(num_heads, num_kv_heads, head_dim, block_size, seq_lens, q_lens, dtype, device):
    gen = generator(sum(seq_lens) + head_dim)
    k_cache, v_cache, block_table = paged_cache(
        seq_lens, num_kv_heads, head_dim, block_size, dtype, device, gen
    )
    q = randn((sum(q_lens), num_heads, head_dim), dtype, device, gen)
    cu_q, lens = cu_seqlens(q_lens, device), int32(seq_lens, device)
    out = paged_prefill_attention(q, k_cache, v_cache, block_table, cu_q, lens)
    assert_close(out, ref.paged_prefill_attention(q, k_cache, v_cache, block_table, cu_q, lens))


def _contiguous_case(num_heads, num_kv_heads, head_dim, seq_lens, dtype, device):
    gen = generator(sum(seq_lens) + head_dim + 1)
    total = sum(seq_lens)
    q = randn((total, num_heads, head_dim), dtype, device, gen)
    k = randn((total, num_kv_heads, head_dim), dtype, device, gen)
    v = randn((total, num_kv_heads, head_dim), dtype, device, gen)
    cu = cu_seqlens(seq_lens, device)
    assert_close(contiguous_prefill_attention(q, k, v, cu), ref.contiguous_prefill_attention(q, k, v, cu))


@pytest.mark.parametrize(
    "num_heads, num_kv_heads, head_dim, block_size, seq_lens, q_lens, dtype", PAGED_CPU_CASES
)
def test_paged_prefill_matches_reference(
    num_heads, num_kv_heads, head_dim, block_size, seq_lens, q_lens, dtype, device
):
    _paged_case(num_heads, num_kv_heads, head_dim, block_size, seq_lens, q_lens, dtype, device)


@pytest.mark.parametrize("num_heads, num_kv_heads, head_dim, seq_lens, dtype", CONTIGUOUS_CPU_CASES)
def test_contiguous_prefill_matches_reference(num_heads, num_kv_heads, head_dim, seq_lens, dtype, device):
    _contiguous_case(num_heads, num_kv_heads, head_dim, seq_lens, dtype, device)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "num_heads, num_kv_heads, head_dim, block_size, seq_lens, q_lens, dtype", PAGED_GPU_CASES
)
def test_paged_prefill_matches_reference_at_full_size(
    num_heads, num_kv_heads, head_dim, block_size, seq_lens, q_lens, dtype, device
):
    _paged_case(num_heads, num_kv_heads, head_dim, block_size, seq_lens, q_lens, dtype, device)


@pytest.mark.gpu
@pytest.mark.parametrize("num_heads, num_kv_heads, head_dim, seq_lens, dtype", CONTIGUOUS_GPU_CASES)
def test_contiguous_prefill_matches_reference_at_full_size(
    num_heads, num_kv_heads, head_dim, seq_lens, dtype, device
):
    _contiguous_case(num_heads, num_kv_heads, head_dim, seq_lens, dtype, device)


def test_prefill_of_one_new_token_is_decode(device):
    """A chunk of one query at the end of the sequence attends to every cached token, exactly as decode."""
    gen = generator(11)
    seq_lens = [33, 100, 1]
    k_cache, v_cache, block_table = paged_cache(seq_lens, 2, 64, 16, F32, device, gen)
    q = randn((3, 4, 64), F32, device, gen)
    lens = int32(seq_lens, device)
    prefill = paged_prefill_attention(q, k_cache, v_cache, block_table, cu_seqlens([1, 1, 1], device), lens)
    decode = paged_decode_attention(q, k_cache, v_cache, block_table, lens, num_kv_splits=1)
    torch.testing.assert_close(prefill, decode, atol=1e-5, rtol=1e-5)


def test_first_query_sees_only_the_first_key(device):
    """Causality, stated directly: the output of a prompt's first token is its own value vector."""
    gen = generator(12)
    q, k, v = (randn((20, 2, 64), F32, device, gen) for _ in range(3))
    out = contiguous_prefill_attention(q, k, v, cu_seqlens([20], device))
    torch.testing.assert_close(out[0], v[0], atol=1e-6, rtol=1e-6)
