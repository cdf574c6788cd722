"""Sweeps of the step's other kernels: elementwise ops, the KV-cache write and sampling (calibrate/step_ops.py).

Each point times one op alone (``Timer``, L2 flushed) at one size and adds a row whose ``bytes`` feature is what
the profile term is linear in, counted by ``kvsim.simulator.cost.work`` as the cost model counts it:

- ``rmsnorm``, ``rotary``, ``activation``, ``residual_add``, ``embedding``: the output tensor of ``t`` tokens;
- ``kv_write_paged`` / ``kv_write_contiguous``: the K and V of ``t`` new tokens, written as a decode step
  writes them (``t`` sequences, one token each, scattered) and as a prefill does (one sequence of ``t`` tokens);
- ``sampling`` (greedy) / ``sampling_top_p``: the float32 logits of ``n`` sequences over the vocabulary.

Points are ordered like ``Sweeper``'s (coarse to fine), so a short budget measures a coarser grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kvsim.calibrate import step_ops
from kvsim.calibrate.sweeps import Sweeper
from kvsim.simulator.cost.work import (
    elementwise_bytes_per_token,
    kv_write_bytes_per_token,
    sampling_bytes_per_seq,
)
from kvsim.simulator.specs import ModelSpec

ELEMENTWISE_OPS = ("rmsnorm", "rotary", "activation", "residual_add", "embedding")
CONTIGUOUS_DECODE_LEN = 256  # positions per sequence of the contiguous cache a decode-pattern write lands in


@dataclass(frozen=True)
class StepOpsGrid:
    """Sizes to measure: ``tokens`` for the elementwise ops and the KV write (the decode pattern up to
    ``max_decode_seqs`` sequences), ``sampling_seqs`` for sampling."""

    tokens: tuple[int, ...]
    max_decode_seqs: int
    sampling_seqs: tuple[int, ...]
    block_size: int = 16


class StepOpsSweeper:
    """The three sweeps of one model's per-shard shapes at TP ``tp``; times and records through ``sweeper``
    (its device, dtype, timer, measurements and random generator)."""

    def __init__(self, sweeper: Sweeper, model: ModelSpec, tp: int, grid: StepOpsGrid) -> None:
        self.s, self.model, self.tp, self.grid = sweeper, model, tp, grid
        self.heads, self.kv_heads = model.num_heads // tp, max(1, model.num_kv_heads // tp)
        self._tensors: dict[tuple, Any] = {}

    # ---- points -------------------------------------------------------------------------------------------
    def elementwise_points(self) -> list[tuple[str, int]]:
        return [(op, t) for t in self.grid.tokens for op in ELEMENTWISE_OPS]

    def kv_write_points(self) -> list[tuple[str, str, int]]:
        points = []
        for t in self.grid.tokens:
            for kernel in ("paged", "contiguous"):
                points.append((kernel, "prefill", t))
                if t <= self.grid.max_decode_seqs:
                    points.append((kernel, "decode", t))
        return points

    def sampling_points(self) -> list[tuple[str, int]]:
        return [(mode, n) for n in self.grid.sampling_seqs for mode in ("greedy", "top_p")]

    # ---- measurements -------------------------------------------------------------------------------------
    def measure_elementwise(self, point: tuple[str, int]) -> None:
        op, t = point
        torch, m = self.s.torch, self.model
        randn = self._randn
        hidden, head_dim = m.hidden_size, m.head_dim
        if op == "rmsnorm":
            x, w = randn(t, hidden), randn(hidden)
            fn, width = (lambda: step_ops.rms_norm(x, w)), hidden
        elif op == "rotary":
            q, k = randn(t, self.heads, head_dim), randn(t, self.kv_heads, head_dim)
            cache = self._cached(
                ("rope",), lambda: step_ops.rotary_cache(m.max_model_len, head_dim, self.s.device)
            )
            positions = torch.from_numpy(self.s.rng.integers(0, m.max_model_len, t)).to(self.s.device)
            fn, width = (
                (lambda: step_ops.rotary(q, k, cache, positions)),
                (self.heads + self.kv_heads) * head_dim,
            )
        elif op == "activation":
            inter = m.intermediate_size // self.tp
            gate_up = randn(t, 2 * inter)
            fn, width = (lambda: step_ops.silu_mul(gate_up)), inter
        elif op == "residual_add":
            x, r = randn(t, hidden), randn(t, hidden)
            fn, width = (lambda: step_ops.residual_add(x, r)), hidden
        else:
            table = self._cached(("embedding",), lambda: randn(m.vocab_size, hidden))
            ids = torch.from_numpy(self.s.rng.integers(0, m.vocab_size, t)).to(self.s.device)
            fn, width = (lambda: step_ops.embedding(ids, table)), hidden
        # the bytes of the tensor timed (in the sweep's dtype); the cost model counts the same tensor
        assert elementwise_bytes_per_token(m, self.tp, op) == width * m.dtype_bytes, op
        nbytes = t * width * self.s.dtype_bytes
        self._add(op, {"bytes": nbytes}, fn, t=t, batch=t, n=width)

    def measure_kv_write(self, point: tuple[str, str, int]) -> None:
        kernel, pattern, t = point
        torch, rng, device = self.s.torch, self.s.rng, self.s.device
        kv_heads, head_dim, bs = self.kv_heads, self.model.head_dim, self.grid.block_size
        k, v = self._randn(t, kv_heads, head_dim), self._randn(t, kv_heads, head_dim)
        num_seqs = t if pattern == "decode" else 1
        if kernel == "paged":
            num_blocks = 2 * max(self.grid.max_decode_seqs, -(-max(self.grid.tokens) // bs))
            k_cache, v_cache = (
                self._cached(("paged", name), lambda: self._randn(num_blocks, bs, kv_heads, head_dim))
                for name in "kv"
            )
            if pattern == "decode":  # one token of each sequence, at some offset of its own last block
                blocks = rng.permutation(num_blocks)[:t]
                slots = blocks * bs + rng.integers(0, bs, t)
            else:  # a prompt's tokens, in order, through its shuffled blocks
                blocks = rng.permutation(num_blocks)[: -(-t // bs)]
                slots = (blocks[:, None] * bs + np.arange(bs)).reshape(-1)[:t]
            slots = torch.from_numpy(slots).to(device)
            fn = lambda: step_ops.kv_write_paged(k_cache, v_cache, slots, k, v)  # noqa: E731
        else:
            shape = (t, CONTIGUOUS_DECODE_LEN) if pattern == "decode" else (1, t)
            k_cache, v_cache = (self._randn(*shape, kv_heads, head_dim) for _ in "kv")
            if pattern == "decode":
                seq_index = torch.arange(t, device=device)
                positions = torch.from_numpy(rng.integers(0, CONTIGUOUS_DECODE_LEN, t)).to(device)
            else:
                seq_index = torch.zeros(t, dtype=torch.int64, device=device)
                positions = torch.arange(t, device=device)
            fn = lambda: step_ops.kv_write_contiguous(k_cache, v_cache, seq_index, positions, k, v)  # noqa: E731
        nbytes = (
            t * kv_write_bytes_per_token(self.model, self.tp) // self.model.dtype_bytes * self.s.dtype_bytes
        )
        self._add(
            f"kv_write_{kernel}",
            {"bytes": nbytes, "num_seqs": num_seqs},
            fn,
            t=t,
            batch=num_seqs,
            kernel=pattern,
        )

    def measure_sampling(self, point: tuple[str, int]) -> None:
        mode, n = point
        torch, vocab = self.s.torch, self.model.vocab_size
        logits = self._randn(n, vocab)
        if mode == "greedy":
            fn = lambda: step_ops.sample_greedy(logits)  # noqa: E731
        else:
            temperature = torch.full((n, 1), 0.8, device=self.s.device)
            top_p = torch.full((n, 1), 0.9, device=self.s.device)
            fn = lambda: step_ops.sample_top_p(logits, temperature, top_p)  # noqa: E731
        term = "sampling" if mode == "greedy" else "sampling_top_p"
        nbytes = n * sampling_bytes_per_seq(self.model)
        self._add(term, {"bytes": nbytes, "num_seqs": n}, fn, batch=n, n=vocab, kernel=mode)

    # ---- helpers ------------------------------------------------------------------------------------------
    def _add(self, term: str, features: dict[str, float], fn, **shape: Any) -> None:
        timing = self.s.timer.time(fn, flush_l2=True)
        self.s.out.add(term, features, timing, impl="torch", dtype=self.s.grid.dtype, **shape)

    def _randn(self, *shape: int) -> Any:
        return self.s.torch.randn(*shape, dtype=self.s.dtype, device=self.s.device)

    def _cached(self, key: tuple, make) -> Any:
        if key not in self._tensors:
            self._tensors[key] = make()
        return self._tensors[key]
