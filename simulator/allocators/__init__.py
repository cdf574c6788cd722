"""KV allocators behind the ``KVAllocator`` Protocol, one file each, registered by name."""

from kvsim.simulator.allocators.base import Admission, KVAllocator, MemoryBreakdown

__all__ = ["Admission", "KVAllocator", "MemoryBreakdown"]
