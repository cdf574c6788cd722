"""Profiling sweeps: the attention kernels and the model's GEMMs over the shapes serving produces.

Each sweep is a list of points measured coarse-to-fine (the largest and a spread of shapes first), stopping at
its share of the time budget, so a short budget gives a coarser grid rather than an overrun. Every point adds a
row whose features are counted by ``kvsim.simulator.cost.work``, the same functions the cost model predicts with.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kvsim.calibrate.measurements import Measurements
from kvsim.calibrate.progress import Progress
from kvsim.calibrate.timing import Timer
from kvsim.errors import KvsimError
from kvsim.simulator.cost.work import (
    GemmShape,
    gemm_bytes,
    gemm_flops,
    prefill_attn_bytes,
    prefill_attn_flops,
)

KERNEL_NAMES = (
    "paged_decode_attention",
    "contiguous_decode_attention",
    "paged_prefill_attention",
    "contiguous_prefill_attention",
)


@dataclass(frozen=True)
class SweepGrid:
    """The shapes to measure. ``attn_shapes``: (num_heads, num_kv_heads, head_dim) per TP shard."""

    dtype: str
    attn_shapes: tuple[tuple[int, int, int], ...]
    decode_batches: tuple[int, ...]
    decode_contexts: tuple[int, ...]
    block_sizes: tuple[int, ...]
    prefill_q_lens: tuple[int, ...]
    prefill_prefixes: tuple[int, ...]
    prefill_num_seqs: tuple[int, ...]
    gemm_shapes: tuple[GemmShape, ...]
    gemm_tokens: tuple[int, ...]
    pool_tokens: int  # KV tokens of the preallocated cache (per K and V): caps batch × context
    prefill_block_size: int = 16  # vLLM's default block size


def coarse_to_fine(n: int) -> list[int]:
    """An order over range(n): the last (largest) point, then every 2^k-th point for falling k."""
    order, seen = [], set()
    stride = 1 << max(0, n.bit_length())
    for i in [n - 1] if n else []:
        order.append(i)
        seen.add(i)
    while stride >= 1:
        for i in range(0, n, stride):
            if i not in seen:
                order.append(i)
                seen.add(i)
        stride //= 2
    return order


def resolve_kernels(impl: str) -> dict[str, Callable[..., Any]]:
    """``triton``: the kvsim.kernels Triton kernels; ``reference``: their torch references (CPU smoke)."""
    import importlib

    module_name = "kvsim.kernels" if impl == "triton" else "kvsim.kernels.reference"
    try:
        module = importlib.import_module(module_name)
        return {name: getattr(module, name) for name in KERNEL_NAMES}
    except (ImportError, AttributeError) as exc:
        raise KvsimError(
            f"the {impl} attention kernels are not available ({exc}); "
            "use --impl reference on CPU, or install kvsim with its kernels"
        ) from None


class Sweeper:
    """Runs the sweeps of one calibration on one device, adding rows to ``measurements``."""

    def __init__(
        self,
        grid: SweepGrid,
        device: str,
        impl: str,
        timer: Timer,
        measurements: Measurements,
        show_progress: bool = True,
        seed: int = 0,
    ) -> None:
        import torch

        self.torch, self.grid, self.device, self.impl = torch, grid, device, impl
        self.dtype = getattr(torch, grid.dtype)
        self.dtype_bytes = torch.empty((), dtype=self.dtype).element_size()
        self.kernels = resolve_kernels(impl)
        self.timer, self.out, self.show_progress = timer, measurements, show_progress
        self.rng = np.random.default_rng(seed)
        self._pools: dict[tuple[int, int], tuple[Any, Any]] = {}
        self.stop_requested = False  # set on SIGTERM: finish the point at hand, then fit what was measured

    def run(self, name: str, points: list[Any], measure: Callable[[Any], None], deadline: float) -> int:
        """Measure ``points`` coarse-to-fine until ``deadline`` (time.perf_counter); returns points measured."""
        done = 0
        with Progress(len(points), name, self.show_progress) as bar:
            for i in coarse_to_fine(len(points)):
                if time.perf_counter() >= deadline or self.stop_requested:
                    why = "stop requested" if self.stop_requested else "budget reached"
                    bar.close(f"{why} after {done} of {len(points)} points")
                    break
                measure(points[i])
                done += 1
                bar.update()
        return done

    # ---- decode attention ---------------------------------------------------------------------------------
    def decode_points(self) -> list[tuple]:
        g = self.grid
        points = []
        for shape in g.attn_shapes:
            for batch in g.decode_batches:
                for context in g.decode_contexts:
                    if batch * context * 2 > g.pool_tokens:  # room for skewed batches too
                        continue
                    for skew in ("uniform", "lognormal"):
                        points.append((shape, batch, context, skew, "contiguous", 0))
                        points += [(shape, batch, context, skew, "paged", bs) for bs in g.block_sizes]
        return points

    def measure_decode(self, point: tuple) -> None:
        (num_heads, num_kv_heads, head_dim), batch, context, skew, kernel, block_size = point
        torch = self.torch
        seq_lens = self._seq_lens(batch, context, skew)
        lens = torch.tensor(seq_lens, dtype=torch.int32, device=self.device)
        q = torch.randn(batch, num_heads, head_dim, dtype=self.dtype, device=self.device)
        k_pool, v_pool = self._pool(num_kv_heads, head_dim)
        max_len = int(max(seq_lens))
        if kernel == "paged":
            blocks_per_seq = [-(-n // block_size) for n in seq_lens]
            num_pool_blocks = self.grid.pool_tokens // block_size
            table = self._block_table(blocks_per_seq, num_pool_blocks)
            k_cache = k_pool.view(num_pool_blocks, block_size, num_kv_heads, head_dim)
            v_cache = v_pool.view(num_pool_blocks, block_size, num_kv_heads, head_dim)
            fn = self.kernels["paged_decode_attention"]
            args, num_blocks = (q, k_cache, v_cache, table, lens), sum(blocks_per_seq)
        else:
            k = k_pool[: batch * max_len].view(batch, max_len, num_kv_heads, head_dim)
            v = v_pool[: batch * max_len].view(batch, max_len, num_kv_heads, head_dim)
            fn = self.kernels["contiguous_decode_attention"]
            args, num_blocks = (q, k, v, lens), 0
        kwargs = length_hint(fn, "max_seq_len", max_len)
        timing = self.timer.time(lambda: fn(*args, **kwargs), flush_l2=True)
        kv_bytes = sum(seq_lens) * 2 * num_kv_heads * head_dim * self.dtype_bytes
        self.out.add(
            f"attn_decode_{kernel}",
            {"kv_bytes": kv_bytes, "num_seqs": batch, "num_blocks": num_blocks},
            timing,
            impl=self.impl,
            dtype=self.grid.dtype,
            num_heads=num_heads,
            num_kv_heads=num_kv_heads,
            head_dim=head_dim,
            block_size=block_size or "",
            batch=batch,
            context=context,
            skew=skew,
        )

    # ---- prefill attention --------------------------------------------------------------------------------
    def prefill_points(self) -> list[tuple]:
        g = self.grid
        points = []
        for shape in g.attn_shapes:
            for num_seqs in g.prefill_num_seqs:
                for q_len in g.prefill_q_lens:
                    for prefix in g.prefill_prefixes:
                        if num_seqs * (q_len + prefix) > g.pool_tokens // 2:
                            continue
                        if prefix == 0:
                            points.append((shape, num_seqs, q_len, 0, "contiguous"))
                        points.append((shape, num_seqs, q_len, prefix, "paged"))
        return points

    def measure_prefill(self, point: tuple) -> None:
        (num_heads, num_kv_heads, head_dim), num_seqs, q_len, prefix, kernel = point
        torch, kv_len = self.torch, q_len + prefix
        q = torch.randn(num_seqs * q_len, num_heads, head_dim, dtype=self.dtype, device=self.device)
        cu_q = torch.arange(0, num_seqs + 1, dtype=torch.int32, device=self.device) * q_len
        if kernel == "paged":
            block_size = self.grid.prefill_block_size
            num_pool_blocks = self.grid.pool_tokens // block_size
            k_pool, v_pool = self._pool(num_kv_heads, head_dim)
            table = self._block_table([-(-kv_len // block_size)] * num_seqs, num_pool_blocks)
            k_cache = k_pool.view(num_pool_blocks, block_size, num_kv_heads, head_dim)
            v_cache = v_pool.view(num_pool_blocks, block_size, num_kv_heads, head_dim)
            lens = torch.full((num_seqs,), kv_len, dtype=torch.int32, device=self.device)
            fn, args = self.kernels["paged_prefill_attention"], (q, k_cache, v_cache, table, cu_q, lens)
            hint = "max_q_len"
        else:
            k = torch.randn(num_seqs * q_len, num_kv_heads, head_dim, dtype=self.dtype, device=self.device)
            fn, args = self.kernels["contiguous_prefill_attention"], (q, k, torch.randn_like(k), cu_q)
            hint = "max_seqlen"
        kwargs = length_hint(fn, hint, q_len)
        timing = self.timer.time(lambda: fn(*args, **kwargs), flush_l2=True)
        flops = num_seqs * prefill_attn_flops(q_len, kv_len, num_heads, head_dim)
        nbytes = num_seqs * prefill_attn_bytes(
            q_len, kv_len, num_heads, num_kv_heads, head_dim, self.dtype_bytes
        )
        self.out.add(
            f"attn_prefill_{kernel}",
            {"flops": flops, "bytes": nbytes, "num_seqs": num_seqs},
            timing,
            impl=self.impl,
            dtype=self.grid.dtype,
            num_heads=num_heads,
            num_kv_heads=num_kv_heads,
            head_dim=head_dim,
            batch=num_seqs,
            q_len=q_len,
            kv_len=kv_len,
            block_size=self.grid.prefill_block_size if kernel == "paged" else "",
        )

    # ---- GEMMs --------------------------------------------------------------------------------------------
    def gemm_points(self) -> list[tuple[GemmShape, int]]:
        return [(shape, t) for t in self.grid.gemm_tokens for shape in self.grid.gemm_shapes]

    def measure_gemm(self, point: tuple[GemmShape, int]) -> None:
        shape, t = point
        torch = self.torch
        weight = torch.randn(
            shape.n, shape.k, dtype=self.dtype, device=self.device
        )  # nn.Linear layout [n, k]
        x = torch.randn(t, shape.k, dtype=self.dtype, device=self.device)
        timing = self.timer.time(lambda: torch.nn.functional.linear(x, weight), flush_l2=True)
        features = {"flops": gemm_flops(t, shape), "bytes": gemm_bytes(t, shape, self.dtype_bytes)}
        self.out.add(
            f"gemm.{shape.op}",
            features,
            timing,
            impl="torch",
            dtype=self.grid.dtype,
            t=t,
            k=shape.k,
            n=shape.n,
        )

    # ---- helpers ------------------------------------------------------------------------------------------
    def _seq_lens(self, batch: int, context: int, skew: str) -> list[int]:
        if skew == "uniform":
            return [context] * batch
        # lognormal with mean `context` (σ = 1): a few long sequences among many short, as in real traces
        lens = np.rint(context * np.exp(self.rng.normal(-0.5, 1.0, batch)))
        return np.clip(lens, 1, 2 * context).astype(int).tolist()

    def _block_table(self, blocks_per_seq: list[int], num_pool_blocks: int):
        return self.torch.from_numpy(shuffled_block_table(blocks_per_seq, num_pool_blocks, self.rng)).to(
            self.device
        )

    def _pool(self, num_kv_heads: int, head_dim: int):
        """K and V buffers [pool_tokens, num_kv_heads, head_dim], one pair per head shape, kept for reuse."""
        key = (num_kv_heads, head_dim)
        if key not in self._pools:
            self._pools.clear()  # one shape at a time keeps memory bounded
            shape = (self.grid.pool_tokens, num_kv_heads, head_dim)
            self._pools[key] = tuple(
                self.torch.randn(shape, dtype=self.dtype, device=self.device) for _ in "kv"
            )
        return self._pools[key]


def shuffled_block_table(
    blocks_per_seq: list[int], num_pool_blocks: int, rng: np.random.Generator
) -> np.ndarray:
    """A block table [num_seqs, max blocks] int32 of shuffled, non-contiguous physical blocks out of a pool of
    ``num_pool_blocks``, as a long-running paged cache holds them."""
    ids = rng.permutation(num_pool_blocks)[: sum(blocks_per_seq)]
    table = np.zeros((len(blocks_per_seq), max(blocks_per_seq)), dtype=np.int32)
    start = 0
    for row, count in enumerate(blocks_per_seq):
        table[row, :count] = ids[start : start + count]
        start += count
    return table


def length_hint(fn: Callable[..., Any], name: str, value: int) -> dict[str, int]:
    """``{name: value}`` where ``fn`` takes that keyword: a length the caller vouches for, which spares the
    kernel a device-to-host copy of the lengths (that would be timed); else no keyword."""
    try:
        accepts = name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        accepts = False
    return {name: value} if accepts else {}
