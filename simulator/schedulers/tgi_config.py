"""TGI's launcher options for ``simulator/schedulers/tgi.py``: names, defaults and start-up checks as TGI 2.x
documents them (``docs/source/reference/launcher.md``; checks of ``router/src/main.rs``), resolved against the KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvsim.errors import KvsimError
from kvsim.simulator.allocators.base import KVAllocator

# TGI 2.x launcher defaults (docs/source/reference/launcher.md).
MAX_CONCURRENT_REQUESTS = 128
WAITING_SERVED_RATIO = 0.3
MAX_WAITING_TOKENS = 20
PREFILL_HEADROOM_TOKENS = 50  # max_batch_prefill_tokens defaults to max_input_tokens + 50
MAX_NEW_TOKENS_POLICIES = ("oracle", "max_total_tokens")


@dataclass(frozen=True)
class TgiConfig:
    """TGI's router options, resolved (launcher names). ``max_batch_total_tokens`` defaults to the token slots
    of the allocator's blocks, as TGI's warmup sets it from the memory left after the weights."""

    max_batch_total_tokens: int
    max_batch_prefill_tokens: int
    max_input_tokens: int
    max_total_tokens: int
    max_concurrent_requests: int = MAX_CONCURRENT_REQUESTS
    waiting_served_ratio: float = WAITING_SERVED_RATIO
    max_waiting_tokens: int = MAX_WAITING_TOKENS
    max_batch_size: int | None = None
    max_new_tokens: str = "oracle"  # "oracle" | "max_total_tokens" | an integer, as a string

    def __post_init__(self) -> None:
        # The router's start-up checks (router/src/main.rs ``ArgumentValidation``), in its words.
        if self.max_input_tokens >= self.max_total_tokens:
            raise KvsimError(
                f"max_input_tokens ({self.max_input_tokens}) must be < max_total_tokens "
                f"({self.max_total_tokens}); lower max_input_tokens or raise max_total_tokens"
            )
        if self.max_batch_prefill_tokens < self.max_input_tokens:
            raise KvsimError(
                f"max_batch_prefill_tokens ({self.max_batch_prefill_tokens}) must be >= max_input_tokens "
                f"({self.max_input_tokens})"
            )
        if self.max_batch_prefill_tokens > self.max_batch_total_tokens:
            raise KvsimError(
                f"max_batch_prefill_tokens ({self.max_batch_prefill_tokens}) must be <= "
                f"max_batch_total_tokens ({self.max_batch_total_tokens})"
            )
        if self.max_total_tokens > self.max_batch_total_tokens:
            raise KvsimError(
                f"max_total_tokens ({self.max_total_tokens}) must be <= max_batch_total_tokens "
                f"({self.max_batch_total_tokens}); lower max_total_tokens or give the KV cache more memory"
            )
        parse_max_new_tokens(self.max_new_tokens)


# SimConfig's TGI fields and their defaults: set to anything else, they need ``scheduler = "tgi"``.
TGI_OPTION_DEFAULTS = {
    "max_concurrent_requests": MAX_CONCURRENT_REQUESTS,
    "max_batch_prefill_tokens": None,
    "max_batch_total_tokens": None,
    "waiting_served_ratio": WAITING_SERVED_RATIO,
    "max_waiting_tokens": MAX_WAITING_TOKENS,
    "max_input_tokens": None,
    "max_total_tokens": None,
    "max_batch_size": None,
    "max_new_tokens": "oracle",
}


def resolve_tgi_config(config, *, max_model_len: int, allocator: KVAllocator) -> TgiConfig:
    """TGI's options from a ``SimConfig`` with the launcher's defaults filled in: ``max_batch_total_tokens`` =
    the KV cache's token slots in whole blocks, ``max_total_tokens`` = min(that, max_model_len),
    ``max_input_tokens`` = that - 1, ``max_batch_prefill_tokens`` = that + 50 (at most the batch total)."""
    require_paged(allocator)
    block_tokens = allocator.block_size
    slots = allocator.capacity_bytes // (block_tokens * allocator.kv_bytes_per_token) * block_tokens
    max_batch_total = config.max_batch_total_tokens or slots
    max_total = config.max_total_tokens or min(max_model_len, max_batch_total)  # "min(max_allocatable, ...)"
    max_input = config.max_input_tokens or max_total - 1
    max_prefill = config.max_batch_prefill_tokens or min(max_input + PREFILL_HEADROOM_TOKENS, max_batch_total)
    return TgiConfig(
        max_batch_total_tokens=max_batch_total,
        max_batch_prefill_tokens=max_prefill,
        max_input_tokens=max_input,
        max_total_tokens=max_total,
        max_concurrent_requests=config.max_concurrent_requests,
        waiting_served_ratio=config.waiting_served_ratio,
        max_waiting_tokens=config.max_waiting_tokens,
        max_batch_size=config.max_batch_size,
        max_new_tokens=str(config.max_new_tokens),
    )


def require_paged(allocator: KVAllocator) -> None:
    if allocator.attention_kernel != "paged" or not allocator.name.startswith("paged"):
        raise KvsimError(
            f"scheduler tgi pages its KV cache (PagedAttention): use --allocator paged, not {allocator.name!r}"
        )


def parse_max_new_tokens(value: str | int) -> int | None:
    """The fixed ``max_new_tokens`` of a policy string, or None for ``oracle`` / ``max_total_tokens``."""
    text = str(value)
    if text in MAX_NEW_TOKENS_POLICIES:
        return None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise KvsimError(f"max_new_tokens must be oracle, max_total_tokens or a positive integer, got {value!r}")
