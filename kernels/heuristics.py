"""Launch heuristics: tile sizes and the number of KV splits for decode.

None of these values were timed on a GPU yet (the machine that wrote them had none). What backs them:
the reasoning beside each, and static compiler output for sm_90 (`python -m kvsim.kernels.compile_check`:
registers, spills, shared memory, whether loads are software-pipelined). The benchmark sweeps block_size
and num_kv_splits at the headline shape so a GPU run shows whether the choices are good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

# Below this many tokens per split, the split's fixed costs (writing a [group, head_dim] fp32 partial and
# its log-sum-exp, then reading them back in the reduction) stop being small next to its KV reads: at
# head_dim 128 fp16, 256 tokens of K and V are 128 KiB against a 2 KiB partial for a group of 4 heads.
MIN_TOKENS_PER_SPLIT = 256
# Programs to aim for per SM: a memory-bound program keeps only a few tiles in flight, so several resident
# programs per SM are needed to cover HBM latency, and more waves shrink the tail of the last one.
TARGET_PROGRAMS_PER_SM = 4
# Cap on splits: the reduction loads all partials of a head at once ([next_pow2(splits), head_dim] fp32).
MAX_KV_SPLITS = 64


@dataclass(frozen=True)
class TileConfig:
    """Tile shape of one kernel launch. block_m is 0 for decode (one program per KV-head group)."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


@dataclass(frozen=True)
class KernelLaunch:
    """One kernel launch, planned but not run: what `kernel[grid](*args, **meta)` would do. Planning apart
    from running lets `compile_check` compile exactly what the launchers launch, without a GPU."""

    kernel: Any  # a triton.JITFunction
    grid: tuple[int, ...]
    args: tuple  # the runtime arguments, in the kernel's parameter order
    meta: dict  # constexprs by name, plus num_warps / num_stages

    def run(self) -> None:
        self.kernel[self.grid](*self.args, **self.meta)


def run_planned(planned: tuple[torch.Tensor, list[KernelLaunch]]) -> torch.Tensor:
    """Run the launches of a ``plan_launches`` result, in order, and return the output they fill."""
    out, launches = planned
    for launch in launches:
        launch.run()
    return out


def next_power_of_2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def decode_tiles(head_dim: int, dtype: torch.dtype) -> TileConfig:
    """KV tile of the decode kernel: 64 tokens x head_dim in fp16/bf16, fewer where registers run short.

    A [64, 128] fp16 K tile and its V tile are 32 KiB together; with 3 pipeline stages that is the bytes in
    flight that keep one SM's share of HBM busy. Register counts and spills behind these choices come from
    `python -m kvsim.kernels.compile_check` (sm_90): fp16 head_dim 128 compiles to 116-126 registers, no
    spills, loads pipelined; fp32 (whose `tl.dot` runs on FMA units, not tensor cores) spills at 32 tokens
    and not at 16.
    """
    if dtype == torch.float32:
        return TileConfig(block_m=0, block_n=16, num_warps=4, num_stages=3)
    if head_dim > 128:
        return TileConfig(block_m=0, block_n=32, num_warps=4, num_stages=2)
    return TileConfig(block_m=0, block_n=64, num_warps=4, num_stages=3)


def prefill_tiles(head_dim: int, dtype: torch.dtype) -> TileConfig:
    """Q x KV tiles of the prefill kernel, FlashAttention-2 style (the Triton fused-attention tutorial uses
    128 x 64 with 8 warps for fp16 head_dim 128 on Hopper). From compile_check on sm_90: 128 x 64 at head_dim
    <= 128 compiles to 175-184 registers without spills; head_dim 256 needs 64 x 32; fp32 (FMA dots) spills
    at every tile of 32 keys and needs 32 x 16 with 8 warps.
    """
    if dtype == torch.float32:
        return TileConfig(block_m=32, block_n=16, num_warps=8, num_stages=2)
    if head_dim > 128:
        return TileConfig(block_m=64, block_n=32, num_warps=8, num_stages=2)
    return TileConfig(block_m=128, block_n=64, num_warps=8, num_stages=3)


def num_sms(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device; 1 elsewhere (the interpreter runs programs serially)."""
    if device.type != "cuda":
        return 1
    return torch.cuda.get_device_properties(device).multi_processor_count


def choose_num_kv_splits(
    num_seqs: int, num_kv_heads: int, max_seq_len: int, block_n: int, sm_count: int
) -> int:
    """Split each sequence's KV so the grid has about TARGET_PROGRAMS_PER_SM programs per SM.

    The grid without splitting is num_seqs x num_kv_heads programs (one per KV-head group). A large batch
    fills the GPU alone (64 x 8 programs on 132 SMs needs at most 2 splits); one long sequence with 8 KV heads
    would leave 124 of 132 SMs idle, so it is split up to MAX_KV_SPLITS ways, never into splits shorter than
    MIN_TOKENS_PER_SPLIT tokens (or one tile).
    """
    groups = max(1, num_seqs * num_kv_heads)
    wanted = -(-TARGET_PROGRAMS_PER_SM * sm_count // groups)
    most_by_length = max(1, max_seq_len // max(MIN_TOKENS_PER_SPLIT, block_n))
    return max(1, min(wanted, most_by_length, MAX_KV_SPLITS))


def tokens_per_split(max_seq_len: int, num_kv_splits: int, block_n: int) -> int:
    """Tokens per split, rounded up to whole tiles so every tile but a sequence's last is full."""
    per_split = -(-max(1, max_seq_len) // num_kv_splits)
    return -(-per_split // block_n) * block_n


def plan_kv_splits(
    num_seqs: int,
    num_kv_heads: int,
    max_seq_len: int,
    head_dim: int,
    dtype: torch.dtype,
    device: torch.device,
    num_kv_splits: int | None = None,
) -> tuple[int, int]:
    """(num_kv_splits, tokens_per_split) a decode launch will use; None picks the count by heuristic."""
    block_n = decode_tiles(head_dim, dtype).block_n
    if num_kv_splits is None:
        num_kv_splits = choose_num_kv_splits(num_seqs, num_kv_heads, max_seq_len, block_n, num_sms(device))
    if isinstance(num_kv_splits, bool) or not isinstance(num_kv_splits, int) or num_kv_splits < 1:
        raise ValueError(
            f"num_kv_splits must be a positive int (or None to choose automatically), got {num_kv_splits!r}"
        )
    split_tokens = tokens_per_split(max_seq_len, num_kv_splits, block_n)
    # rounding splits up to whole tiles can leave the last ones empty: drop them
    return -(-max_seq_len // split_tokens), split_tokens
