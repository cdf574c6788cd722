"""Prefill attention: causal, variable length, over a paged KV cache or contiguous K/V.

Work model (per sequence with q_len new tokens and seq_len tokens in all, so a prefix of seq_len - q_len
tokens already cached):
- FLOPs: 4 x head_dim x num_heads x pairs, where pairs = sum over queries of (position + 1) =
  q_len x (seq_len - q_len) + q_len x (q_len + 1) / 2 (QK^T and PV, 2 FLOPs per multiply-add). Compute-bound
  for q_len in the hundreds and up; judged in TFLOP/s against the tensor-core peak.
- bytes read: q once; K and V once per q tile (BLOCK_M queries), up to the tile's last position.

Structure (FlashAttention-2): one program per (q tile of BLOCK_M queries, sequence, query head). It walks the
KV tiles up to its last query's position with an online softmax, in two loops: tiles wholly at or before the
tile's first query position need no mask; the rest (the diagonal) are masked per (query, key). Tiles past the
last query's position are never loaded. Programs whose q tile lies beyond their sequence's q_len do no work.

Query i of a sequence (0-based among its q_len queries) sits at position seq_len - q_len + i, so one kernel
covers a whole prompt (q_len == seq_len), chunked prefill and prefix-cache hits (q_len < seq_len).

Sliding-window attention (`window` W): the query at position p sees keys (p - W, p]. A tile then walks only
[first query's window start, last query's position]: keys visible to all its queries (after the last query's
window start, at or before the first query) unmasked, and the two edges masked, so the pairs, FLOPs and KV
bytes are those of min(p + 1, W) keys per query. W = 0 in the kernel means no window.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kvsim.kernels import validation as check
from kvsim.kernels.decode import LOG2E, _token_slots
from kvsim.kernels.heuristics import KernelLaunch, prefill_tiles, run_planned


@triton.jit
def _prefill_kernel(
    q_ptr,  # [total_q_tokens, num_heads, HEAD_DIM]
    k_ptr,  # paged: [num_blocks, block_size, num_kv_heads, HEAD_DIM]; contiguous: [total_tokens, ...]
    v_ptr,  # same layout as k
    out_ptr,  # [total_q_tokens, num_heads, HEAD_DIM]
    block_table_ptr,  # [num_seqs, max_blocks] int32 (unused when not PAGED)
    cu_seqlens_q_ptr,  # [num_seqs + 1] int32: sequence i's queries are rows cu[i] .. cu[i+1]-1
    seq_lens_ptr,  # [num_seqs] int32 (unused when not PAGED: there seq_len == q_len)
    scale_log2,  # softmax scale x log2(e)
    window,  # sliding window in tokens (query at p sees keys (p - window, p]); 0: causal over everything
    stride_q_token,
    stride_q_head,
    stride_k_outer,
    stride_k_token,
    stride_k_head,
    stride_v_outer,
    stride_v_token,
    stride_v_head,
    stride_bt_seq,
    stride_o_token,
    stride_o_head,
    QUERY_GROUP_SIZE: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    PAGED: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    tile_m = tl.program_id(0)
    seq_idx = tl.program_id(1)
    head = tl.program_id(2)
    kv_head = head // QUERY_GROUP_SIZE

    q_start = tl.load(cu_seqlens_q_ptr + seq_idx)
    q_len = tl.load(cu_seqlens_q_ptr + seq_idx + 1) - q_start
    if PAGED:
        seq_len = tl.load(seq_lens_ptr + seq_idx)
        k_base = k_ptr + kv_head * stride_k_head
        v_base = v_ptr + kv_head * stride_v_head
    else:
        seq_len = q_len
        k_base = k_ptr + q_start.to(tl.int64) * stride_k_token + kv_head * stride_k_head
        v_base = v_ptr + q_start.to(tl.int64) * stride_v_token + kv_head * stride_v_head
    bt_row_ptr = block_table_ptr + seq_idx * stride_bt_seq

    offs_m = tile_m * BLOCK_M + tl.arange(0, BLOCK_M)  # query index within the sequence
    row_mask = offs_m < q_len
    q_pos = seq_len - q_len + offs_m  # [BLOCK_M] position of each query in the sequence
    offs_d = tl.arange(0, HEAD_DIM)
    q_rows = (q_start + offs_m).to(tl.int64)
    q = tl.load(
        q_ptr + q_rows[:, None] * stride_q_token + head * stride_q_head + offs_d[None, :],
        mask=row_mask[:, None],
        other=0.0,
    )  # [BLOCK_M, HEAD_DIM]

    # Keys [kv_start, kv_end) reach some query of the tile; keys [full_start, full_end) are visible to all of
    # them (at or before the first query, inside the last query's window). Without a window kv_start and
    # full_start are 0. Tile bounds are multiples of BLOCK_N, except kv_end.
    has_rows = tile_m * BLOCK_M < q_len
    first_pos = seq_len - q_len + tile_m * BLOCK_M
    kv_end = tl.where(has_rows, tl.minimum(first_pos + BLOCK_M, seq_len), 0)
    full_end = tl.minimum((first_pos + 1) // BLOCK_N * BLOCK_N, kv_end)
    windowed = window > 0
    kv_start = tl.where(windowed, tl.maximum(first_pos - window + 1, 0) // BLOCK_N * BLOCK_N, 0)
    last_window_start = tl.maximum(kv_end - window, 0)  # the tile's last query sits at kv_end - 1
    full_start = tl.where(windowed, tl.cdiv(last_window_start, BLOCK_N) * BLOCK_N, 0)
    full_start = tl.minimum(tl.maximum(full_start, kv_start), full_end)
    lowest_visible = q_pos - tl.where(windowed, window, seq_len + 1)  # keys <= this are out of the window

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # running max of scores (log2 units)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    all_tokens = tl.full([BLOCK_N], 1, dtype=tl.int1)
    for start_n in range(kv_start, full_start, BLOCK_N):  # the window's lower edge: masked per (query, key)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        # keys before the first query's window are seen by no query: not loaded (their blocks may be freed)
        token_mask = offs_n > first_pos - window
        outer, inner = _token_slots(offs_n, token_mask, bt_row_ptr, BLOCK_SIZE, PAGED)
        k = tl.load(
            k_base + outer[:, None] * stride_k_outer + inner[:, None] * stride_k_token + offs_d[None, :],
            mask=token_mask[:, None],
            other=0.0,
        )
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale_log2
        visible = (offs_n[None, :] <= q_pos[:, None]) & (offs_n[None, :] > lowest_visible[:, None])
        s = tl.where(visible, s, float("-inf"))
        # a row may see no key of this tile yet (its window starts later): keep its max at -inf without NaN
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        vt = tl.load(
            v_base + outer[:, None] * stride_v_outer + inner[:, None] * stride_v_token + offs_d[None, :],
            mask=token_mask[:, None],
            other=0.0,
        )
        acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt, input_precision=DOT_PRECISION)
        m_i = m_new
    for start_n in range(full_start, full_end, BLOCK_N):  # no mask: every key visible to every query
        offs_n = start_n + tl.arange(0, BLOCK_N)
        outer, inner = _token_slots(offs_n, all_tokens, bt_row_ptr, BLOCK_SIZE, PAGED)
        k = tl.load(
            k_base + outer[:, None] * stride_k_outer + inner[:, None] * stride_k_token + offs_d[None, :]
        )
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale_log2  # [BLOCK_M, BLOCK_N]
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        vt = tl.load(
            v_base + outer[:, None] * stride_v_outer + inner[:, None] * stride_v_token + offs_d[None, :]
        )
        acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt, input_precision=DOT_PRECISION)
        m_i = m_new
    for start_n in range(full_end, kv_end, BLOCK_N):  # the diagonal: causal mask per (query, key)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        token_mask = offs_n < kv_end
        outer, inner = _token_slots(offs_n, token_mask, bt_row_ptr, BLOCK_SIZE, PAGED)
        k = tl.load(
            k_base + outer[:, None] * stride_k_outer + inner[:, None] * stride_k_token + offs_d[None, :],
            mask=token_mask[:, None],
            other=0.0,
        )
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale_log2
        visible = token_mask[None, :] & (offs_n[None, :] <= q_pos[:, None])
        visible = visible & (offs_n[None, :] > lowest_visible[:, None])
        s = tl.where(visible, s, float("-inf"))
        # a row's own key is in this loop or before it, so m_i ends finite for every live row; guard the
        # rows that have seen no key yet (window edge) and the dead rows past q_len
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        vt = tl.load(
            v_base + outer[:, None] * stride_v_outer + inner[:, None] * stride_v_token + offs_d[None, :],
            mask=token_mask[:, None],
            other=0.0,
        )
        acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt, input_precision=DOT_PRECISION)
        m_i = m_new

    out = acc / tl.where(l_i > 0.0, l_i, 1.0)[:, None]
    o = out_ptr + q_rows[:, None] * stride_o_token + head * stride_o_head + offs_d[None, :]
    tl.store(o, out.to(out_ptr.dtype.element_ty), mask=row_mask[:, None])


def paged_prefill_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_table: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float | None = None,
    max_q_len: int | None = None,
    window: int | None = None,
) -> torch.Tensor:
    """Causal varlen attention of new tokens whose K/V are already in the paged cache.

    q [total_q_tokens, num_heads, head_dim]; k_cache, v_cache [num_blocks, block_size, num_kv_heads,
    head_dim]; block_table [num_seqs, max_blocks_per_seq] int32; cu_seqlens_q [num_seqs + 1] int32 (sequence
    i's queries are q rows cu_seqlens_q[i] .. cu_seqlens_q[i+1] - 1); seq_lens [num_seqs] int32 (all tokens
    in the cache, the new ones included, so seq_len >= q_len). Returns q's shape and dtype. `max_q_len`
    given means the caller vouches for all index values (no device-to-host sync, no value checks).
    `window` W: sliding-window attention, the query at position p sees keys (p - W, p] only; None: all.
    """
    check.check_float_tensor("q", q, 3, "[total_q_tokens, num_heads, head_dim]")
    cache_dims = "[num_blocks, block_size, num_kv_heads, head_dim]"
    check.check_float_tensor("k_cache", k_cache, 4, cache_dims)
    check.check_float_tensor("v_cache", v_cache, 4, cache_dims)
    if v_cache.shape != k_cache.shape:
        raise ValueError(f"v_cache has shape {tuple(v_cache.shape)} but k_cache has {tuple(k_cache.shape)}")
    num_blocks, block_size, num_kv_heads, _ = k_cache.shape
    check.check_heads(q.shape[1], num_kv_heads, q.shape[2], k_cache.shape[3], "k_cache")
    check.check_index_tensor("cu_seqlens_q", cu_seqlens_q, (-1,), "[num_seqs + 1]")
    num_seqs = cu_seqlens_q.shape[0] - 1
    if num_seqs < 0:
        raise ValueError("cu_seqlens_q must have num_seqs + 1 >= 1 entries, got an empty tensor")
    check.check_index_tensor("block_table", block_table, (num_seqs, -1), "[num_seqs, max_blocks_per_seq]")
    check.check_index_tensor("seq_lens", seq_lens, (num_seqs,), "[num_seqs]")
    check.check_same_dtype(q, k_cache=k_cache, v_cache=v_cache)
    check.check_same_device(
        q,
        k_cache=k_cache,
        v_cache=v_cache,
        block_table=block_table,
        cu_seqlens_q=cu_seqlens_q,
        seq_lens=seq_lens,
    )
    window = check.check_window(window)
    if max_q_len is None and num_seqs > 0:
        q_lens = check.check_cu_seqlens("cu_seqlens_q", cu_seqlens_q, q.shape[0])
        check.check_paged_values(seq_lens, block_table, block_size, num_blocks, min_seq_len=0)
        facts = torch.stack([(seq_lens < q_lens).sum(), q_lens.max()]).tolist()
        if facts[0]:
            raise ValueError(
                "seq_lens must be >= each sequence's query count (cu_seqlens_q[i+1] - cu_seqlens_q[i]): "
                "the new tokens' K/V must already be in the cache"
            )
        max_q_len = facts[1]
    return run_planned(
        plan_launches(
            q,
            (k_cache, v_cache),
            block_table,
            cu_seqlens_q,
            seq_lens,
            kv_strides=[(t.stride(0), t.stride(1), t.stride(2)) for t in (k_cache, v_cache)],
            block_size=block_size,
            paged=True,
            scale=check.resolve_scale(scale, q.shape[2]),
            max_q_len=max_q_len,
            window=window,
        )
    )


def contiguous_prefill_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    scale: float | None = None,
    max_seqlen: int | None = None,
    window: int | None = None,
) -> torch.Tensor:
    """Causal varlen attention, FlashAttention varlen style: q, k, v [total_tokens, heads, head_dim], sequence
    i is rows cu_seqlens[i] .. cu_seqlens[i+1] - 1 of all three. `max_seqlen` and `window` as above."""
    dims = "[total_tokens, num_heads, head_dim]"
    check.check_float_tensor("q", q, 3, dims)
    check.check_float_tensor("k", k, 3, "[total_tokens, num_kv_heads, head_dim]")
    check.check_float_tensor("v", v, 3, "[total_tokens, num_kv_heads, head_dim]")
    if v.shape != k.shape:
        raise ValueError(f"v has shape {tuple(v.shape)} but k has {tuple(k.shape)}")
    if k.shape[0] != q.shape[0]:
        raise ValueError(f"k has {k.shape[0]} tokens but q has {q.shape[0]}; they must match")
    check.check_heads(q.shape[1], k.shape[1], q.shape[2], k.shape[2], "k")
    check.check_index_tensor("cu_seqlens", cu_seqlens, (-1,), "[num_seqs + 1]")
    if cu_seqlens.shape[0] < 1:
        raise ValueError("cu_seqlens must have num_seqs + 1 >= 1 entries, got an empty tensor")
    check.check_same_dtype(q, k=k, v=v)
    check.check_same_device(q, k=k, v=v, cu_seqlens=cu_seqlens)
    window = check.check_window(window)
    if max_seqlen is None and cu_seqlens.shape[0] > 1:
        max_seqlen = int(check.check_cu_seqlens("cu_seqlens", cu_seqlens, q.shape[0]).max())
    return run_planned(
        plan_launches(
            q,
            (k, v),
            cu_seqlens,  # no block table or seq_lens: any int32 tensor serves as the unused pointer
            cu_seqlens,
            cu_seqlens,
            kv_strides=[(0, t.stride(0), t.stride(1)) for t in (k, v)],
            block_size=1,
            paged=False,
            scale=check.resolve_scale(scale, q.shape[2]),
            max_q_len=max_seqlen,
            window=window,
        )
    )


def plan_launches(
    q: torch.Tensor,
    kv: tuple[torch.Tensor, torch.Tensor],
    block_table: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    seq_lens: torch.Tensor,
    kv_strides: list[tuple[int, int, int]],
    block_size: int,
    paged: bool,
    scale: float,
    max_q_len: int | None,
    window: int | None = None,
) -> tuple[torch.Tensor, list[KernelLaunch]]:
    """The output tensor and the one kernel launch that fills it (none for an empty batch)."""
    total_q, num_heads, head_dim = q.shape
    num_seqs = cu_seqlens_q.shape[0] - 1
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    if num_seqs == 0 or total_q == 0 or not max_q_len:
        return out, []
    tiles = prefill_tiles(head_dim, q.dtype)
    (ko, kt, kh), (vo, vt, vh) = kv_strides
    grid = (triton.cdiv(max_q_len, tiles.block_m), num_seqs, num_heads)
    return out, [KernelLaunch(_prefill_kernel, grid, (
        q, kv[0], kv[1], out, block_table, cu_seqlens_q, seq_lens,
        scale * LOG2E, window or 0,
        q.stride(0), q.stride(1),
        ko, kt, kh,
        vo, vt, vh,
        block_table.stride(0),
        out.stride(0), out.stride(1),
    ), dict(
        QUERY_GROUP_SIZE=num_heads // kv[0].shape[-2],
        HEAD_DIM=head_dim,
        BLOCK_M=tiles.block_m,
        BLOCK_N=tiles.block_n,
        BLOCK_SIZE=block_size,
        PAGED=paged,
        DOT_PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        num_warps=tiles.num_warps,
        num_stages=tiles.num_stages,
    ))]  # fmt: skip
