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
from kvsim.simulator.allocators.paged_hybrid import HybridPagedAllocator
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
    refusal = _refusal(name, model)
    if refusal is not None:
        raise KvsimError(f"allocator {name!r} with {model.name}: {refusal}")
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
    if cls is PagedAllocator and model.has_window:  # vLLM v1's hybrid KV-cache manager
        cls = HybridPagedAllocator
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


def _refusal(name: str, model: ModelSpec) -> str | None:
    """Why allocator ``name`` cannot serve ``model`` (issue 22), or None. ``paged`` serves every model: windowed
    ones through vLLM v1's hybrid KV-cache manager (paged_hybrid.py)."""
    if model.has_window and name in ("reserved", "contiguous-growth"):
        return (
            f"its regions hold every layer's KV for a request's whole length, and {model.num_sliding_layers} of "
            f"{model.num_layers} layers keep only a {model.sliding_window}-token window: the systems it models "
            "(Orca, FasterTransformer; a growing contiguous region) have no per-layer window; use paged"
        )
    if model.has_window and name == "vattention":
        return (
            f"vAttention maps each layer's K and V over one virtual region of the whole context; unmapping the "
            f"pages that fall out of a {model.sliding_window}-token window is not in the system it models; use "
            "paged"
        )
    if model.is_mla and name == "vattention":
        return (
            "latent attention caches one latent per token and layer, not K and V: vAttention's 2 x num_layers "
            "buffers (and its page arithmetic) do not describe it; use paged, reserved or contiguous-growth"
        )
    return None


__all__ = [
    "ALLOCATORS",
    "Admission",
    "ContiguousGrowthAllocator",
    "ContiguousGrowthConfig",
    "EvictingPagedAllocator",
    "HybridPagedAllocator",
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
