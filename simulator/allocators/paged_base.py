"""What the two paged allocators share (``PagedAllocator`` by block ids, ``CountedPagedAllocator`` by counts):
the replica's geometry in blocks, the rejection of requests that can never fit, and swap transfer time."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from kvsim.errors import KvsimError
from kvsim.simulator.allocators.base import over_context
from kvsim.simulator.allocators.spec import spec_string
from kvsim.simulator.specs import ModelSpec

if TYPE_CHECKING:
    from kvsim.simulator.allocators.paged import PagedConfig


class PagedBase:
    """Sets ``block_size``, ``kv_bytes_per_token``, ``block_bytes``, ``num_blocks`` (GPU) and
    ``num_cpu_blocks`` (swap space), the spec ``name``, and the pending swap transfer time."""

    attention_kernel = "paged"
    admits_like_v1 = True  # ``allocate`` takes v1's admission arguments (the ``vllm`` scheduler's)

    def __init__(
        self,
        config: PagedConfig,
        *,
        model: ModelSpec,
        tp: int,
        capacity_bytes: int,
        swap_space_bytes: int = 0,
    ) -> None:
        self.config = config
        self.block_size = config.block_size
        self.capacity_bytes = capacity_bytes
        self.kv_bytes_per_token = model.kv_bytes_per_token(tp)
        self.max_model_len = model.max_model_len
        self.block_bytes = self.block_size * self.kv_bytes_per_token
        self.num_blocks = capacity_bytes // self.block_bytes
        if self.num_blocks == 0:
            raise KvsimError(
                f"paged: KV capacity {capacity_bytes} bytes holds no block of {self.block_bytes} "
                f"bytes; lower block_size or give the model more memory"
            )
        self.num_cpu_blocks = swap_space_bytes // self.block_bytes
        self.num_cpu_blocks_used = 0
        self.name = spec_string("paged", config, always=("block_size",))
        self._pending_overhead_s = 0.0
        self.num_cow_copies = 0

    def resolve_for_scheduler(self, scheduler: str) -> None:
        """Settle what the spec left to the scheduler: prefix caching, unless the spec says, is on under
        ``vllm`` (v1's default, ``CacheConfig.enable_prefix_caching``) and off under the others (v0.6.3's
        default) or with an eviction budget; under ``vllm`` the prefix cache also keeps blocks whose content
        another block already caches (v1 does not de-duplicate). The label keeps the spec as written."""
        v1 = scheduler == "vllm"
        if self.config.enable_prefix_caching is None:
            on = v1 and not self.config.evicts
            self.config = dataclasses.replace(self.config, enable_prefix_caching=on)
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.allow_duplicates = v1

    def rejection_reason(
        self, num_prompt_tokens: int, num_output_tokens: int, num_seqs: int = 1
    ) -> str | None:
        """Over the context, or a final length needing more blocks than the replica has. Parallel sequences
        store the prompt's full blocks once (shared copy-on-write by the forks) and the rest once each, up to
        their last stored token (the last output token's KV is never written)."""
        total = num_prompt_tokens + num_output_tokens
        if num_seqs == 1 and total <= self.max_model_len and total <= self.num_blocks * self.block_size:
            return None  # neither (nearly every arrival)
        reason = over_context(num_prompt_tokens, num_output_tokens, self.max_model_len)
        if reason is not None:
            return reason
        need = -(-total // self.block_size)
        if need > self.num_blocks:
            return f"needs {need} blocks of {self.block_size} tokens but the replica holds only {self.num_blocks}"
        if num_seqs > 1:
            shared = num_prompt_tokens // self.block_size  # a partial last prompt block is copied on write
            need = shared + num_seqs * (-(-(total - 1) // self.block_size) - shared)
            if need > self.num_blocks:
                return (
                    f"its {num_seqs} parallel sequences need {need} blocks of {self.block_size} tokens (the "
                    f"prompt's {shared} full blocks shared) but the replica holds only {self.num_blocks}"
                )
        return None

    def take_overhead_s(self, previous_step_s: float = 0.0) -> float:
        """Swap transfer time (bytes ÷ ``pcie_bw_bytes_per_s``) since the last call; never hidden."""
        overhead_s, self._pending_overhead_s = self._pending_overhead_s, 0.0
        return overhead_s

    def clear_blocked(self) -> None:
        """Nothing to clear: paged memory has no external fragmentation."""

    def _charge_transfer(self, num_bytes: int) -> int:
        self._pending_overhead_s += num_bytes / self.config.pcie_bw_bytes_per_s
        return num_bytes
