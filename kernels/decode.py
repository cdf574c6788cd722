"""Decode attention: one new query token per sequence against its whole KV, paged or contiguous.

Work model (per call, fp16 with head_dim 128 as the example):
- bytes read: sum(seq_lens) x num_kv_heads x head_dim x 2 (K and V) x dtype_bytes, plus q; every KV byte is
  read exactly once, because one program serves all query heads of its KV head (GQA packing).
- FLOPs: 4 x sum(seq_lens) x num_heads x head_dim (QK^T and PV), far below what the bytes allow, so the
  kernel is memory-bound and judged by achieved bandwidth against the HBM peak.

Structure (flash-decoding): stage 1 runs one program per (sequence, KV head, KV split); it loads the group's
query heads as a [BLOCK_H, head_dim] tile (the group padded to at least 16 rows, so `tl.dot` can use tensor
cores), walks its split's tokens in tiles of BLOCK_N with an online softmax, and writes a normalised partial
output and its log-sum-exp. Stage 2 merges the splits of each (sequence, head). With one split, stage 1
writes the output directly and stage 2 is skipped.

Paged and contiguous layouts share this kernel; they differ only in how a token's address is found
(`_token_slots`): through the block table, or as an offset into the sequence's own region.

Sliding-window attention (`window` W, as Mistral's and Gemma's local layers and vLLM's `sliding_window`): the
new token sees the last W tokens, itself included, so the splits cover [max(0, seq_len - W), seq_len) and
only min(seq_len, W) tokens of KV are read; a paged block table's entries before the window are never read
(vLLM frees those blocks and points the entries at its null block).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kvsim.kernels import validation as check
from kvsim.kernels.heuristics import KernelLaunch, decode_tiles, next_power_of_2, plan_kv_splits, run_planned

if check.interpreting():  # before any kernel below is decorated and run
    from kvsim.kernels import interpreter_compat

    interpreter_compat.apply()

LOG2E = 1.4426950408889634  # scores are scaled by log2(e) so the softmax can use exp2


@triton.jit
def _token_slots(offs_n, token_mask, block_table_row_ptr, BLOCK_SIZE: tl.constexpr, PAGED: tl.constexpr):
    """(outer, inner) indices of tokens offs_n [BLOCK_N] of one sequence.

    Paged: outer = physical block id (from the block table), inner = slot in the block.
    Contiguous: outer = 0, inner = token index in the sequence's region.
    """
    if PAGED:
        # block_table: logical block idx -> physical block id
        outer = tl.load(block_table_row_ptr + offs_n // BLOCK_SIZE, mask=token_mask, other=0).to(tl.int64)
        inner = offs_n % BLOCK_SIZE
    else:
        outer = tl.zeros_like(offs_n).to(tl.int64)
        inner = offs_n
    return outer, inner


@triton.jit
def _decode_split_kernel(
    q_ptr,  # [num_seqs, num_heads, HEAD_DIM]
    k_ptr,  # paged: [num_blocks, block_size, num_kv_heads, HEAD_DIM]; contiguous: [num_seqs, max_len, ...]
    v_ptr,  # same layout as k
    block_table_ptr,  # [num_seqs, max_blocks] int32 (unused when not PAGED)
    seq_lens_ptr,  # [num_seqs] int32
    out_ptr,  # [num_seqs, num_heads, HEAD_DIM], written when not SPLIT
    part_out_ptr,  # [num_seqs, num_heads, num_splits, HEAD_DIM] fp32, written when SPLIT
    part_lse_ptr,  # [num_seqs, num_heads, num_splits] fp32 (log2 domain), written when SPLIT
    scale_log2,  # softmax scale x log2(e)
    tokens_per_split,
    window,  # sliding window in tokens (the new token sees the last `window`); 0: the whole sequence
    stride_q_seq,
    stride_q_head,
    stride_k_seq,
    stride_k_outer,
    stride_k_token,
    stride_k_head,
    stride_v_seq,
    stride_v_outer,
    stride_v_token,
    stride_v_head,
    stride_bt_seq,
    stride_o_seq,
    stride_o_head,
    stride_po_seq,
    stride_po_head,
    stride_po_split,
    stride_pl_seq,
    stride_pl_head,
    QUERY_GROUP_SIZE: tl.constexpr,
    BLOCK_H: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    PAGED: tl.constexpr,
    SPLIT: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    seq_idx = tl.program_id(0)
    kv_head = tl.program_id(1)
    split_idx = tl.program_id(2)

    seq_len = tl.load(seq_lens_ptr + seq_idx)
    window_start = tl.where(window > 0, tl.maximum(seq_len - window, 0), 0)
    split_start = window_start + split_idx * tokens_per_split
    split_end = tl.minimum(split_start + tokens_per_split, seq_len)  # empty split: loop below never runs

    offs_h = tl.arange(0, BLOCK_H)  # row r of the tile is query head kv_head * QUERY_GROUP_SIZE + r
    head_mask = offs_h < QUERY_GROUP_SIZE
    heads = kv_head * QUERY_GROUP_SIZE + offs_h
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(
        q_ptr + seq_idx * stride_q_seq + heads[:, None] * stride_q_head + offs_d[None, :],
        mask=head_mask[:, None],
        other=0.0,
    )  # [BLOCK_H, HEAD_DIM]

    k_base = k_ptr + seq_idx.to(tl.int64) * stride_k_seq + kv_head * stride_k_head
    v_base = v_ptr + seq_idx.to(tl.int64) * stride_v_seq + kv_head * stride_v_head
    bt_row_ptr = block_table_ptr + seq_idx * stride_bt_seq

    m_i = tl.full([BLOCK_H], float("-inf"), dtype=tl.float32)  # running max of scores (log2 units)
    l_i = tl.zeros([BLOCK_H], dtype=tl.float32)  # running sum of exp2(score - m_i)
    acc = tl.zeros([BLOCK_H, HEAD_DIM], dtype=tl.float32)
    for start_n in range(split_start, split_end, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        token_mask = offs_n < split_end
        outer, inner = _token_slots(offs_n, token_mask, bt_row_ptr, BLOCK_SIZE, PAGED)
        k = tl.load(
            k_base + outer[:, None] * stride_k_outer + inner[:, None] * stride_k_token + offs_d[None, :],
            mask=token_mask[:, None],
            other=0.0,
        )  # [BLOCK_N, HEAD_DIM]
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale_log2  # [BLOCK_H, BLOCK_N]
        s = tl.where(token_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))  # finite: every tile has at least one valid token
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        vt = tl.load(
            v_base + outer[:, None] * stride_v_outer + inner[:, None] * stride_v_token + offs_d[None, :],
            mask=token_mask[:, None],
            other=0.0,
        )  # [BLOCK_N, HEAD_DIM]
        acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt, input_precision=DOT_PRECISION)
        m_i = m_new

    nonempty = l_i > 0.0
    out = acc / tl.where(nonempty, l_i, 1.0)[:, None]
    if SPLIT:
        lse = tl.where(nonempty, m_i + tl.log2(tl.where(nonempty, l_i, 1.0)), float("-inf"))
        po = part_out_ptr + seq_idx * stride_po_seq + heads * stride_po_head + split_idx * stride_po_split
        tl.store(po[:, None] + offs_d[None, :], out, mask=head_mask[:, None])
        pl = part_lse_ptr + seq_idx * stride_pl_seq + heads * stride_pl_head + split_idx
        tl.store(pl, lse, mask=head_mask)
    else:
        o = out_ptr + seq_idx * stride_o_seq + heads[:, None] * stride_o_head + offs_d[None, :]
        tl.store(o, out.to(out_ptr.dtype.element_ty), mask=head_mask[:, None])


@triton.jit
def _decode_reduce_kernel(
    part_out_ptr,  # [num_seqs, num_heads, num_splits, HEAD_DIM] fp32
    part_lse_ptr,  # [num_seqs, num_heads, num_splits] fp32, log2 domain; -inf for an empty split
    out_ptr,  # [num_seqs, num_heads, HEAD_DIM]
    num_splits,
    stride_po_seq,
    stride_po_head,
    stride_po_split,
    stride_pl_seq,
    stride_pl_head,
    stride_o_seq,
    stride_o_head,
    HEAD_DIM: tl.constexpr,
    BLOCK_SPLITS: tl.constexpr,
):
    seq_idx = tl.program_id(0)
    head = tl.program_id(1)
    offs_s = tl.arange(0, BLOCK_SPLITS)
    split_mask = offs_s < num_splits
    offs_d = tl.arange(0, HEAD_DIM)

    lse = tl.load(
        part_lse_ptr + seq_idx * stride_pl_seq + head * stride_pl_head + offs_s,
        mask=split_mask,
        other=float("-inf"),
    )
    lse_max = tl.max(lse, 0)
    lse_max = tl.where(lse_max == float("-inf"), 0.0, lse_max)  # only for a zero-length sequence
    weights = tl.exp2(lse - lse_max)  # [BLOCK_SPLITS]: each split's share of the softmax denominator
    total = tl.sum(weights, 0)
    weights = weights / tl.where(total > 0.0, total, 1.0)
    parts = tl.load(
        part_out_ptr
        + seq_idx * stride_po_seq
        + head * stride_po_head
        + offs_s[:, None] * stride_po_split
        + offs_d[None, :],
        mask=split_mask[:, None],
        other=0.0,
    )  # [BLOCK_SPLITS, HEAD_DIM]
    out = tl.sum(parts * weights[:, None], 0)
    tl.store(
        out_ptr + seq_idx * stride_o_seq + head * stride_o_head + offs_d, out.to(out_ptr.dtype.element_ty)
    )


def paged_decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float | None = None,
    num_kv_splits: int | None = None,
    max_seq_len: int | None = None,
    window: int | None = None,
) -> torch.Tensor:
    """Attention of one query token per sequence over its paged KV cache (vLLM layout).

    q [num_seqs, num_heads, head_dim]; k_cache, v_cache [num_blocks, block_size, num_kv_heads, head_dim];
    block_table [num_seqs, max_blocks_per_seq] int32 (logical block idx -> physical block id);
    seq_lens [num_seqs] int32 (tokens in the cache, the new one included). Returns [num_seqs, num_heads,
    head_dim] in q's dtype. `num_kv_splits` None picks it from the batch and SM count; `max_seq_len` given
    means the caller vouches for seq_lens and block_table (no device-to-host sync, no value checks).
    `window` W (sliding-window attention): the new token attends to the last W tokens only, and block-table
    entries before them are not read (they may hold any in-range id); None: the whole sequence.
    """
    check.check_float_tensor("q", q, 3, "[num_seqs, num_heads, head_dim]")
    cache_dims = "[num_blocks, block_size, num_kv_heads, head_dim]"
    check.check_float_tensor("k_cache", k_cache, 4, cache_dims)
    check.check_float_tensor("v_cache", v_cache, 4, cache_dims)
    if v_cache.shape != k_cache.shape:
        raise ValueError(f"v_cache has shape {tuple(v_cache.shape)} but k_cache has {tuple(k_cache.shape)}")
    num_seqs, num_heads, head_dim = q.shape
    num_blocks, block_size, num_kv_heads, _ = k_cache.shape
    check.check_heads(num_heads, num_kv_heads, head_dim, k_cache.shape[3], "k_cache")
    check.check_index_tensor("block_table", block_table, (num_seqs, -1), "[num_seqs, max_blocks_per_seq]")
    check.check_index_tensor("seq_lens", seq_lens, (num_seqs,), "[num_seqs]")
    check.check_same_dtype(q, k_cache=k_cache, v_cache=v_cache)
    check.check_same_device(q, k_cache=k_cache, v_cache=v_cache, block_table=block_table, seq_lens=seq_lens)
    window = check.check_window(window)
    if max_seq_len is None and num_seqs > 0:
        max_seq_len = check.check_paged_values(seq_lens, block_table, block_size, num_blocks, min_seq_len=1)
    return run_planned(
        plan_launches(
            q,
            (k_cache, v_cache),
            block_table,
            seq_lens,
            kv_strides=paged_kv_strides(k_cache, v_cache),
            block_size=block_size,
            paged=True,
            scale=check.resolve_scale(scale, head_dim),
            num_kv_splits=num_kv_splits,
            max_seq_len=max_seq_len,
            window=window,
        )
    )


def contiguous_decode_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float | None = None,
    num_kv_splits: int | None = None,
    max_seq_len: int | None = None,
    window: int | None = None,
) -> torch.Tensor:
    """Decode attention over one contiguous KV region per sequence (the layout vAttention keeps).

    q [num_seqs, num_heads, head_dim]; k, v [num_seqs, max_seq_len, num_kv_heads, head_dim]; seq_lens
    [num_seqs] int32. Arguments otherwise as `paged_decode_attention`.
    """
    check.check_float_tensor("q", q, 3, "[num_seqs, num_heads, head_dim]")
    dims = "[num_seqs, max_seq_len, num_kv_heads, head_dim]"
    check.check_float_tensor("k", k, 4, dims)
    check.check_float_tensor("v", v, 4, dims)
    if v.shape != k.shape:
        raise ValueError(f"v has shape {tuple(v.shape)} but k has {tuple(k.shape)}")
    num_seqs, num_heads, head_dim = q.shape
    if k.shape[0] != num_seqs:
        raise ValueError(f"k has {k.shape[0]} sequences in dim 0 but q has {num_seqs}")
    check.check_heads(num_heads, k.shape[2], head_dim, k.shape[3], "k")
    check.check_index_tensor("seq_lens", seq_lens, (num_seqs,), "[num_seqs]")
    check.check_same_dtype(q, k=k, v=v)
    check.check_same_device(q, k=k, v=v, seq_lens=seq_lens)
    window = check.check_window(window)
    if max_seq_len is None and num_seqs > 0:
        lo, hi = torch.stack([seq_lens.min(), seq_lens.max()]).tolist()
        if lo < 1 or hi > k.shape[1]:
            raise ValueError(f"seq_lens must lie in [1, {k.shape[1]}] (k's dim 1), got [{lo}, {hi}]")
        max_seq_len = hi
    return run_planned(
        plan_launches(
            q,
            (k, v),
            seq_lens,  # no block table: any int32 tensor serves as the unused pointer
            seq_lens,
            kv_strides=contiguous_kv_strides(k, v),
            block_size=1,
            paged=False,
            scale=check.resolve_scale(scale, head_dim),
            num_kv_splits=num_kv_splits,
            max_seq_len=max_seq_len,
            window=window,
        )
    )


def paged_kv_strides(k_cache: torch.Tensor, v_cache: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """(seq, outer, token, head) strides: a token's address is block_id x stride(0) + slot x stride(1)."""
    return [(0, t.stride(0), t.stride(1), t.stride(2)) for t in (k_cache, v_cache)]


def contiguous_kv_strides(k: torch.Tensor, v: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """(seq, outer, token, head) strides: a token's address is seq x stride(0) + token x stride(1)."""
    return [(t.stride(0), 0, t.stride(1), t.stride(2)) for t in (k, v)]


def plan_launches(
    q: torch.Tensor,
    kv: tuple[torch.Tensor, torch.Tensor],
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    kv_strides: list[tuple[int, int, int, int]],
    block_size: int,
    paged: bool,
    scale: float,
    num_kv_splits: int | None,
    max_seq_len: int | None,
    window: int | None = None,
) -> tuple[torch.Tensor, list[KernelLaunch]]:
    """The output tensor and the kernel launches that fill it (split stage, then reduction if split).
    With a `window`, the splits divide the at most `window` tokens a sequence attends to."""
    num_seqs, num_heads, head_dim = q.shape
    num_kv_heads = kv[0].shape[2]
    out = torch.empty((num_seqs, num_heads, head_dim), dtype=q.dtype, device=q.device)
    if num_seqs == 0:
        return out, []
    max_seq_len = check.check_positive_int("max_seq_len", max_seq_len)
    tiles = decode_tiles(head_dim, q.dtype)
    max_attended = min(max_seq_len, window) if window else max_seq_len
    num_kv_splits, split_tokens = plan_kv_splits(
        num_seqs, num_kv_heads, max_attended, head_dim, q.dtype, q.device, num_kv_splits
    )
    split = num_kv_splits > 1
    group = num_heads // num_kv_heads
    if split:
        part_out = torch.empty(
            (num_seqs, num_heads, num_kv_splits, head_dim), dtype=torch.float32, device=q.device
        )
        part_lse = torch.empty((num_seqs, num_heads, num_kv_splits), dtype=torch.float32, device=q.device)
    else:  # stage 1 writes `out` directly; the partial pointers are unused
        part_out = part_lse = out
    (ks, ko, kt, kh), (vs, vo, vt, vh) = kv_strides
    stage1 = KernelLaunch(_decode_split_kernel, (num_seqs, num_kv_heads, num_kv_splits), (
        q, kv[0], kv[1], block_table, seq_lens, out, part_out, part_lse,
        scale * LOG2E, split_tokens, window or 0,
        q.stride(0), q.stride(1),
        ks, ko, kt, kh,
        vs, vo, vt, vh,
        block_table.stride(0),
        out.stride(0), out.stride(1),
        part_out.stride(0), part_out.stride(1), part_out.stride(2) if split else 0,
        part_lse.stride(0), part_lse.stride(1),
    ), dict(
        QUERY_GROUP_SIZE=group,
        BLOCK_H=max(16, next_power_of_2(group)),  # tl.dot needs >= 16 rows
        HEAD_DIM=head_dim,
        BLOCK_N=tiles.block_n,
        BLOCK_SIZE=block_size,
        PAGED=paged,
        SPLIT=split,
        DOT_PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        num_warps=tiles.num_warps,
        num_stages=tiles.num_stages,
    ))  # fmt: skip
    if not split:
        return out, [stage1]
    stage2 = KernelLaunch(_decode_reduce_kernel, (num_seqs, num_heads), (
        part_out, part_lse, out, num_kv_splits,
        part_out.stride(0), part_out.stride(1), part_out.stride(2),
        part_lse.stride(0), part_lse.stride(1),
        out.stride(0), out.stride(1),
    ), dict(
        HEAD_DIM=head_dim,
        BLOCK_SPLITS=max(2, next_power_of_2(num_kv_splits)),
        num_warps=4,
    ))  # fmt: skip
    return out, [stage1, stage2]
