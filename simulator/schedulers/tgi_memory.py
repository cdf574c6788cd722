"""TGI's view of the paged KV memory: blocks are held from admission for prompt + ``max_new_tokens``.

TGI's router takes ``ceil((input_length + max_new_tokens - 1) / block_size)`` blocks per request when it admits
it (``backends/v3/src/queue.rs``, ``block_allocator.allocate``) and frees them when it ends. kvsim's paged
allocator hands blocks out as tokens are written, which gives the same timing (no step can fail for memory:
the scheduler's reservation covers every slot) but would report the blocks TGI holds for tokens not yet
written as ``free``. This view reports them as TGI holds them (DESIGN §3): the slots the request will fill up
to its true final length are ``reserved``, the rest of its reservation (``max_new_tokens`` beyond the true
output, block rounding) is ``internal_frag``. Everything else is the paged allocator's, untouched.
"""

from __future__ import annotations

from kvsim.simulator.allocators.base import KVAllocator, MemoryBreakdown
from kvsim.simulator.recorder import parts_of


class TgiMemoryView:
    """Forwards every attribute (reads and writes) to the paged allocator except ``breakdown``.

    ``holdings`` is the scheduler: ``num_reserved_blocks`` (blocks TGI holds for running requests) and
    ``num_final_slots`` (Σ over their sequences of the KV slots each will have filled when it ends).
    Invariant: reserved blocks × block size ≥ the paged allocator's slots in use, so the parts stay >= 0."""

    def __init__(self, inner: KVAllocator, holdings) -> None:
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "holdings", holdings)
        for name in dir(inner):  # bind methods once: no __getattr__ detour on hot paths
            own = name in ("breakdown", "breakdown_parts", "free_bytes")
            if not name.startswith("_") and not own and callable(getattr(type(inner), name, None)):
                object.__setattr__(self, name, getattr(inner, name))

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(
            self.inner, name, value
        )  # counters the scheduler keeps on the allocator (num_deferred_tokens)

    def free_bytes(self) -> int:
        return self.breakdown().free

    def breakdown_parts(self) -> tuple[int, ...]:
        """``breakdown()`` as a tuple (the engine's timeline row): this view's, not the inner allocator's."""
        return parts_of(self.breakdown())

    def breakdown(self) -> MemoryBreakdown:
        mem = self.inner.breakdown()
        kv_bytes = self.inner.kv_bytes_per_token
        used = mem.token_states + mem.reserved + mem.internal_frag
        held = max(self.holdings.num_reserved_blocks * self.inner.block_size * kv_bytes - used, 0)
        # Slots still to be filled that the paged allocator has not counted yet (exact for one sequence per
        # request; shared prompt blocks of parallel samples make it an upper bound, hence the clamp).
        to_fill = self.holdings.num_final_slots * kv_bytes - mem.token_states - mem.reserved
        to_fill = min(max(to_fill, 0), held)
        free = mem.free - held
        return MemoryBreakdown(
            token_states=mem.token_states,
            reserved=mem.reserved + to_fill,
            internal_frag=mem.internal_frag + held - to_fill,
            external_frag=mem.external_frag,
            free=free,
            cached_bytes=min(mem.cached_bytes, free),
        )
