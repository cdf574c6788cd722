"""KV allocators behind the ``KVAllocator`` Protocol, one file each, registered by name (DESIGN §3).

``make_allocator("paged:block_size=32", model=..., tp=..., capacity_bytes=...)`` parses a spec
(``name[:policy][:key=value,...]``, see ``spec.py``) into the allocator's frozen config and builds it.
"""

from __future__ import annotations

from kvsim.errors import KvsimError
from kvsim.simulator.allocators.base import Admission, KVAllocator, MemoryBreakdown
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
}


def make_allocator(
    spec: str,
    *,
    model: ModelSpec,
    tp: int,
    capacity_bytes: int,
    swap_space_bytes: int = 0,
    map_latency_s: float | None = None,
) -> KVAllocator:
    """Build the allocator named by ``spec`` for one GPU's ``capacity_bytes`` of KV memory.

    ``map_latency_s`` (a calibrated page-map cost) overrides the vattention default unless the spec sets it.
    """
    name, policy, options = split_spec(spec, list(ALLOCATORS))
    cls = ALLOCATORS[name]
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
    return cls(config, model=model, tp=tp, capacity_bytes=capacity_bytes, swap_space_bytes=swap_space_bytes)


__all__ = [
    "ALLOCATORS",
    "Admission",
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
