"""The references themselves: checked against torch's own attention, and paged against contiguous."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kernel_cases import cu_seqlens, generator, int32, paged_cache, randn

from kvsim.kernels import reference as ref


def test_attend_matches_torch_sdpa_causal_gqa():
    gen = generator(1)
    q = randn((9, 6, 32), torch.float32, "cpu", gen)  # [tokens, heads, D]
    k = randn((9, 2, 32), torch.float32, "cpu", gen)
    v = randn((9, 2, 32), torch.float32, "cpu", gen)
    ours = ref.attend(q, k, v, torch.arange(9), None)
    expanded = [t.repeat_interleave(3, dim=1).transpose(0, 1) for t in (k, v)]  # [heads, tokens, D]
    theirs = F.scaled_dot_product_attention(q.transpose(0, 1), *expanded, is_causal=True).transpose(0, 1)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_paged_references_equal_contiguous_ones_on_the_same_tokens():
    gen = generator(2)
    seq_lens = [5, 16, 23]
    k_cache, v_cache, block_table = paged_cache(seq_lens, 2, 16, 4, torch.float32, "cpu", gen)
    k = torch.zeros((3, 23, 2, 16))
    v = torch.zeros((3, 23, 2, 16))
    for i, n in enumerate(seq_lens):
        k[i, :n] = ref.gather_paged(k_cache, block_table[i], n)
        v[i, :n] = ref.gather_paged(v_cache, block_table[i], n)
    assert not k.isnan().any(), "gather_paged must return only live tokens"
    q = randn((3, 4, 16), torch.float32, "cpu", gen)
    lens = int32(seq_lens, "cpu")
    torch.testing.assert_close(
        ref.paged_decode_attention(q, k_cache, v_cache, block_table, lens),
        ref.contiguous_decode_attention(q, k, v, lens),
    )
    # whole-prompt prefill: paged (q_len == seq_len) against contiguous varlen
    q_all = randn((sum(seq_lens), 4, 16), torch.float32, "cpu", gen)
    cu = cu_seqlens(seq_lens, "cpu")
    k_flat = torch.cat([k[i, :n] for i, n in enumerate(seq_lens)])
    v_flat = torch.cat([v[i, :n] for i, n in enumerate(seq_lens)])
    torch.testing.assert_close(
        ref.paged_prefill_attention(q_all, k_cache, v_cache, block_table, cu, lens),
        ref.contiguous_prefill_attention(q_all, k_flat, v_flat, cu),
    )
