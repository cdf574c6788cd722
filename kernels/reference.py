"""Torch references for the four kernels: slow, obvious, computed in float32, one sequence at a time.

Each takes the same arguments as its kernel and returns the same shape and dtype. Paged references gather a
sequence's blocks into a contiguous [seq_len, num_kv_heads, head_dim] tensor and share `attend` with the
contiguous ones, so a paged kernel is checked against the same math as its contiguous twin.
"""

from __future__ import annotations

import itertools
import math

import torch


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_positions: torch.Tensor | None,
    scale: float | None,
    window: int | None = None,
) -> torch.Tensor:
    """Softmax attention of q [num_q, num_heads, D] over k, v [seq_len, num_kv_heads, D], in float32.

    q_positions [num_q]: each query's position in the sequence; keys after it are masked (causal). None:
    every query sees every key (decode: the query is the last position). `window` W: a query at position p
    sees keys (p - W, p] only. Returns [num_q, num_heads, D] float32.
    """
    num_heads, head_dim = q.shape[1], q.shape[2]
    group = num_heads // k.shape[1]
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    k = k.float().repeat_interleave(
        group, dim=1
    )  # [seq_len, num_heads, D]: query head h reads KV head h // group
    v = v.float().repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q.float(), k) * scale  # [num_heads, num_q, seq_len]
    key_positions = torch.arange(k.shape[0], device=q.device)
    if q_positions is None:
        q_positions = torch.full((q.shape[0],), k.shape[0] - 1, device=q.device)
    hidden = key_positions[None, :] > q_positions[:, None]  # [num_q, seq_len]
    if window is not None:
        hidden |= key_positions[None, :] <= q_positions[:, None] - window
    scores = scores.masked_fill(hidden[None], float("-inf"))
    return torch.einsum("hqk,khd->qhd", torch.softmax(scores, dim=-1), v)


def gather_paged(cache: torch.Tensor, block_table_row: torch.Tensor, seq_len: int) -> torch.Tensor:
    """One sequence's tokens [seq_len, num_kv_heads, D] out of a paged cache [num_blocks, block_size, ...]."""
    block_size = cache.shape[1]
    num_used = -(-seq_len // block_size)
    blocks = cache[block_table_row[:num_used].long()]  # [num_used, block_size, num_kv_heads, D]
    return blocks.reshape(-1, *cache.shape[2:])[:seq_len]


def paged_decode_attention(q, k_cache, v_cache, block_table, seq_lens, scale=None, window=None, **_ignored):
    out = torch.empty_like(q)
    for i, seq_len in enumerate(seq_lens.tolist()):
        k = gather_paged(k_cache, block_table[i], seq_len)
        v = gather_paged(v_cache, block_table[i], seq_len)
        out[i] = attend(q[i : i + 1], k, v, None, scale, window)[0].to(q.dtype)
    return out


def contiguous_decode_attention(q, k, v, seq_lens, scale=None, window=None, **_ignored):
    out = torch.empty_like(q)
    for i, seq_len in enumerate(seq_lens.tolist()):
        out[i] = attend(q[i : i + 1], k[i, :seq_len], v[i, :seq_len], None, scale, window)[0].to(q.dtype)
    return out


def paged_prefill_attention(
    q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens, scale=None, window=None
):
    """Each sequence's queries are its last q_len positions: seq_len - q_len .. seq_len - 1."""
    out = torch.empty_like(q)
    bounds = cu_seqlens_q.tolist()
    for i, seq_len in enumerate(seq_lens.tolist()):
        start, end = bounds[i], bounds[i + 1]
        if end == start:
            continue
        k = gather_paged(k_cache, block_table[i], seq_len)
        v = gather_paged(v_cache, block_table[i], seq_len)
        positions = torch.arange(seq_len - (end - start), seq_len, device=q.device)
        out[start:end] = attend(q[start:end], k, v, positions, scale, window).to(q.dtype)
    return out


def contiguous_prefill_attention(q, k, v, cu_seqlens, scale=None, window=None):
    out = torch.empty_like(q)
    bounds = cu_seqlens.tolist()
    for start, end in itertools.pairwise(bounds):
        if end == start:
            continue
        positions = torch.arange(end - start, device=q.device)
        out[start:end] = attend(q[start:end], k[start:end], v[start:end], positions, scale, window).to(
            q.dtype
        )
    return out
