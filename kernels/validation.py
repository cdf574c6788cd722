"""Argument checks shared by the kernel launchers.

Every failure is a ``ValueError`` whose message names the argument and says how to fix it. Shape, dtype and
device checks are free (host metadata only). Checks on tensor *values* (sequence lengths against the block
table, block ids against the cache) need one device-to-host copy; launchers skip them when the caller passes
``max_seq_len`` and so vouches for the values (the benchmark does, so that no sync is timed).
"""

from __future__ import annotations

import math
import os

import torch

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# The head dims the tests cover (powers of two: tl.arange needs them; DESIGN §8).
SUPPORTED_HEAD_DIMS = (64, 128, 256)


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def check_float_tensor(name: str, t: object, ndim: int, dims: str) -> torch.Tensor:
    """A floating tensor of `ndim` dims, last dim contiguous; `dims` spells the expected shape."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {dims}, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must have shape {dims} ({ndim} dims), got shape {tuple(t.shape)}")
    if t.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"{name} has dtype {t.dtype}; supported: float16, bfloat16, float32")
    if t.shape[-1] > 1 and t.stride(-1) != 1:
        raise ValueError(f"{name} must be contiguous in its last (head_dim) dimension; call .contiguous()")
    return t


def check_index_tensor(name: str, t: object, shape: tuple[int, ...], dims: str) -> torch.Tensor:
    """An int32 tensor of exactly `shape` (vLLM's block tables and lengths are int32)."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be an int32 torch.Tensor of shape {dims}, got {type(t).__name__}")
    if t.dtype != torch.int32:
        raise ValueError(f"{name} must have dtype torch.int32, got {t.dtype}; convert with .to(torch.int32)")
    if t.dim() != len(shape) or any(want >= 0 and got != want for got, want in zip(t.shape, shape)):
        raise ValueError(f"{name} must have shape {dims}, got shape {tuple(t.shape)}")
    return t


def check_same_device(q: torch.Tensor, **others: torch.Tensor) -> None:
    """All tensors on q's device, and that device able to run Triton (CUDA, or CPU in the interpreter)."""
    for name, t in others.items():
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}; move both to one device")
    if q.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"q is on {q.device}: the Triton kernels need CUDA tensors "
            "(or set TRITON_INTERPRET=1 before importing triton to run them on CPU in the interpreter)"
        )


def check_same_dtype(q: torch.Tensor, **others: torch.Tensor) -> None:
    for name, t in others.items():
        if t.dtype != q.dtype:
            raise ValueError(f"{name} has dtype {t.dtype} but q has {q.dtype}; use one dtype for q, k and v")


def check_heads(num_heads: int, num_kv_heads: int, head_dim: int, kv_head_dim: int, kv_name: str) -> None:
    """Grouped-query attention: each KV head serves num_heads // num_kv_heads query heads (MQA: all)."""
    if kv_head_dim != head_dim:
        raise ValueError(f"{kv_name} has head_dim {kv_head_dim} but q has {head_dim}; they must match")
    if head_dim not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"q has head_dim {head_dim}; supported head dims: {SUPPORTED_HEAD_DIMS}")
    if num_kv_heads < 1 or num_heads % num_kv_heads != 0:
        raise ValueError(
            f"q has {num_heads} heads but {kv_name} has {num_kv_heads} KV heads; "
            "num_heads must be a multiple of num_kv_heads (GQA/MQA)"
        )


def resolve_scale(scale: float | None, head_dim: int) -> float:
    """The softmax scale; None means 1/sqrt(head_dim) as in the Transformer paper."""
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise ValueError(
            f"scale must be a positive finite float (or None for 1/sqrt(head_dim)), got {scale!r}"
        )
    return float(scale)


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int (or None to choose automatically), got {value!r}")
    return value


def check_window(window: object) -> int | None:
    """A sliding window in tokens (each query sees itself and the window - 1 tokens before it), or None."""
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int (tokens a query attends to) or None, got {window!r}")
    return window


def check_paged_values(
    seq_lens: torch.Tensor, block_table: torch.Tensor, block_size: int, num_blocks: int, min_seq_len: int
) -> int:
    """Validate lengths against the block table and block ids against the cache; return max(seq_lens).

    One device-to-host copy. Only the block ids a sequence actually uses are checked (vLLM pads block
    tables with arbitrary values).
    """
    max_blocks = block_table.shape[1]
    used = (
        torch.arange(max_blocks, device=block_table.device)[None, :]
        < ((seq_lens.to(torch.int64) + block_size - 1) // block_size)[:, None]
    )
    bad_ids = used & ((block_table < 0) | (block_table >= num_blocks))
    facts = torch.stack([seq_lens.min().to(torch.int64), seq_lens.max().to(torch.int64), bad_ids.sum()])
    lo, hi, num_bad = facts.tolist()
    if lo < min_seq_len:
        raise ValueError(f"seq_lens must all be >= {min_seq_len}, got a minimum of {lo}")
    if hi > max_blocks * block_size:
        raise ValueError(
            f"seq_lens has a sequence of {hi} tokens but block_table holds at most {max_blocks} blocks "
            f"x block_size {block_size} = {max_blocks * block_size} tokens per sequence; widen block_table"
        )
    if num_bad:
        raise ValueError(
            f"block_table has {num_bad} block ids outside [0, {num_blocks}) among the blocks the "
            "sequences use; every used entry must index k_cache/v_cache dim 0"
        )
    return int(hi)


def check_cu_seqlens(name: str, cu_seqlens: torch.Tensor, total_tokens: int) -> torch.Tensor:
    """Cumulative offsets [num_seqs + 1]: start at 0, non-decreasing, end at the token count. Returns lengths."""
    lengths = cu_seqlens[1:] - cu_seqlens[:-1]
    facts = torch.stack(
        [cu_seqlens[0].to(torch.int64), cu_seqlens[-1].to(torch.int64), (lengths < 0).sum()]
    ).tolist()
    if facts[0] != 0 or facts[1] != total_tokens or facts[2]:
        raise ValueError(
            f"{name} must start at 0, never decrease, and end at the number of tokens ({total_tokens}); "
            f"got first {facts[0]}, last {facts[1]}"
        )
    return lengths
