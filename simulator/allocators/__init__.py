"""KV allocators behind the ``KVAllocator`` Protocol, one file each, registered by name (DESIGN §3).

``make_allocator("paged:block_size=32", model=..., tp=..., capacity_bytes=...)`` parses a spec
(``name[:policy][:key=value,...]``, see ``spec.py``) into the allocator's frozen config and builds it.
"""

from __future__ import annotations

import inspect

from kvsim.errors import KvsimError
from kvsim.simulator.allocators.base import Admission, KVAllocator, MemoryBreakdown
from kvsim.simulator.allocators.contiguous_growth import (
    ContiguousGrowthAllocator,
    ContiguousGrowthConfig,
)
from kvsim.simulator.allocators.paged import PagedAllocator, PagedConfig
from kvsim.simulator.allocators.paged_eviction import EvictingPagedAllocator
from kvsim.simulator.allocators.reserved import ReservedAllocator, ReservedConfig
from kvsim.simulator.allocators.spec import config_from_options, split_spec
from kvsim.simulator.allocators.vattention import VAttentionAllocator, VAttentionConfig
from kvsim.simulator.specs import ModelSpec

ALLOCATORS: dict[str, type] = {
    "paged": PagedAllocator,
    "reserved": ReservedAllocator,
    "vattention": VAttentionAllocator,
    "contiguous-growth": ContiguousGrowthAllocator,
}


def make_allocator(
    spec: str,
    *,
    model: ModelSpec,
    tp: int,
    capacity_bytes: int,
    swap_space_bytes: int = 0,
    map_latency_s: float | None = None,
    hbm_bw_bytes_per_s: float | None = None,
) -> KVAllocator:
    """Build the allocator named by ``spec`` for one GPU's ``capacity_bytes`` of KV memory.

    ``map_latency_s`` (a calibrated page-map cost) overrides the vattention default unless the spec sets it.
    ``hbm_bw_bytes_per_s`` (the GPU's) reaches allocators whose constructor takes it (contiguous-growth
    derives its copy bandwidth from it unless the spec sets ``copy_bw_bytes_per_s``).
    """
    name, policy, options = split_spec(spec, list(ALLOCATORS))
    cls = ALLOCATORS[name]
    if model.has_window:  # issue 22: vLLM v1's hybrid KV-cache manager is not modelled yet
        raise KvsimError(
            f"allocator {name!r}: {model.name} has sliding-window layers (window {model.sliding_window}), whose "
            "KV stops growing past the window; kvsim's allocators do not model that yet"
        )
    extra = {}
    if policy is not None:
        if "policy" not in {f for f in cls.config_cls.__dataclass_fields__}:
            raise KvsimError(
                f"allocator {name!r} takes no policy, got {policy!r} in {spec!r}; "
                f"write options as {name}:key=value"
            )
        extra["policy"] = policy
    if map_latency_s is not None and "map_latency_s" in cls.config_cls.__dataclass_fields__:
        extra["map_latency_s"] = map_latency_s
    config = config_from_options(cls.config_cls, name, options, **extra)
    if getattr(config, "evicts", False):  # paged with an eviction budget
        cls = EvictingPagedAllocator
    gpu_kwargs = {}
    if hbm_bw_bytes_per_s is not None and "hbm_bw_bytes_per_s" in inspect.signature(cls).parameters:
        gpu_kwargs["hbm_bw_bytes_per_s"] = hbm_bw_bytes_per_s
    return cls(
        config,
        model=model,
        tp=tp,
        capacity_bytes=capacity_bytes,
        swap_space_bytes=swap_space_bytes,
        **gpu_kwargs,
    )


__all__ = [
    "ALLOCATORS",
    "Admission",
    "ContiguousGrowthAllocator",
    "ContiguousGrowthConfig",
    "EvictingPagedAllocator",
    "KVAllocator",
    "MemoryBreakdown",
    "PagedAllocator",
    "PagedConfig",
    "ReservedAllocator",
    "ReservedConfig",
    "VAttentionAllocator",
    "VAttentionConfig",
    "make_allocator",
]
