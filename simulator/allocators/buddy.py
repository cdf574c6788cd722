"""A binary buddy allocator over token slots, handing out exact-size contiguous extents.

Free memory is kept as power-of-two blocks, each aligned to its size, in one free list per order. A request
for ``n`` slots takes the smallest free block of order ``k = ceil(log2 n)`` or more, splits it down to order
``k`` (each split frees the upper half, the "buddy"), keeps the first ``n`` slots and gives the tail back as
aligned power-of-two pieces (as Linux's ``alloc_pages_exact`` does). So an extent costs exactly its length,
yet needs a free *block* of ``2**k`` slots: contiguity, not rounding, is what the buddy system costs here,
and it shows as external fragmentation. Freeing splits an extent into its aligned pieces and merges each
with its buddy while the buddy is free, so memory coalesces fully once everything is freed.

An arena that is not a power of two is covered by its binary decomposition, largest block first (15 slots:
8 at 0, 4 at 8, 2 at 12, 1 at 14). Each such root block is aligned to its size and its buddy lies in a
smaller root, so merges never cross roots.

Cost: O(log n) per allocation, O(log² n) per free (at most log n pieces, each merging at most log n times).
Free lists are insertion-ordered dicts, popped last-in first-out: deterministic.
"""

from __future__ import annotations


def aligned_pieces(offset: int, length: int) -> list[tuple[int, int]]:
    """Split ``[offset, offset + length)`` into maximal aligned power-of-two blocks: [(offset, order)]."""
    pieces, end = [], offset + length
    while offset < end:
        order = (end - offset).bit_length() - 1  # largest power of two that fits
        if offset:
            order = min(order, (offset & -offset).bit_length() - 1)  # and that offset is aligned to
        pieces.append((offset, order))
        offset += 1 << order
    return pieces


def fit_when_empty(num_slots: int, extents: tuple[int, ...]) -> bool:
    """Whether an empty arena of ``num_slots`` slots holds all ``extents`` at once, allocated largest first:
    every extent needs a free aligned block of a power-of-two size, and for such sizes (each divides the
    larger ones) largest first packs whenever any order does."""
    arena = BuddyAllocator(num_slots)
    return all(arena.alloc(n) is not None for n in sorted(extents, reverse=True))


class BuddyAllocator:
    """Invariant: free blocks are aligned to their size, disjoint from each other and from allocated
    extents, together cover the arena, and no free block's buddy is free at the same order (coalesced)."""

    def __init__(self, num_slots: int) -> None:
        assert num_slots > 0
        self.num_slots = num_slots
        self.max_order = num_slots.bit_length() - 1
        self.free_lists: list[dict[int, None]] = [{} for _ in range(self.max_order + 1)]  # order -> offsets
        self.allocated: dict[int, int] = {}  # offset -> length of each extent handed out
        self.num_free_slots = 0
        for offset, order in aligned_pieces(0, num_slots):
            self._push(offset, order)

    def largest_free_block(self) -> int:
        """Slots of the largest free block: the longest extent that can be allocated now."""
        for order in range(self.max_order, -1, -1):
            if self.free_lists[order]:
                return 1 << order
        return 0

    def largest_root_block(self) -> int:
        """The longest extent an empty arena could ever give."""
        return 1 << self.max_order

    def alloc(self, num_slots: int) -> int | None:
        """Offset of a new extent of exactly ``num_slots`` slots, or None (changing nothing) if no free block
        is large enough."""
        assert num_slots > 0
        order = (num_slots - 1).bit_length()
        free_lists = self.free_lists
        for source in range(order, self.max_order + 1):  # the smallest order with a free block
            if free_lists[source]:
                break
        else:
            return None
        offset, _ = free_lists[source].popitem()
        self.num_free_slots -= 1 << source
        while source > order:  # split, freeing the upper halves
            source -= 1
            self._push(offset + (1 << source), source)
        for piece_offset, piece_order in aligned_pieces(offset + num_slots, (1 << order) - num_slots):
            self._release(piece_offset, piece_order)
        self.allocated[offset] = num_slots
        return offset

    def copy(self) -> BuddyAllocator:
        """An independent allocator in the same state (free lists in the same order): a scratch heap on which
        a caller may try a sequence of allocations without touching this one. O(blocks)."""
        clone = object.__new__(BuddyAllocator)
        clone.num_slots, clone.max_order, clone.num_free_slots = (
            self.num_slots,
            self.max_order,
            self.num_free_slots,
        )
        clone.free_lists = [dict(blocks) for blocks in self.free_lists]
        clone.allocated = dict(self.allocated)
        return clone

    def free(self, offset: int) -> None:
        length = self.allocated.pop(offset)
        for piece_offset, piece_order in aligned_pieces(offset, length):
            self._release(piece_offset, piece_order)

    def _push(self, offset: int, order: int) -> None:
        self.free_lists[order][offset] = None
        self.num_free_slots += 1 << order

    def _release(self, offset: int, order: int) -> None:
        """Free one aligned block, merging with its buddy as long as the buddy is free at the same order."""
        while order < self.max_order:
            buddy = offset ^ (1 << order)
            if buddy not in self.free_lists[order]:
                break
            del self.free_lists[order][buddy]
            self.num_free_slots -= 1 << order
            offset, order = min(offset, buddy), order + 1
        self._push(offset, order)

    def check_invariants(self) -> None:
        """O(blocks), for tests."""
        spans = [(off, 1 << order) for order, blocks in enumerate(self.free_lists) for off in blocks]
        for off, order in ((off, o) for o, blocks in enumerate(self.free_lists) for off in blocks):
            assert off % (1 << order) == 0, f"free block at {off} not aligned to 2**{order}"
            assert off ^ (1 << order) not in self.free_lists[order], f"free buddies at {off} not merged"
        assert sum(size for _, size in spans) == self.num_free_slots, "num_free_slots drifted"
        spans += list(self.allocated.items())
        spans.sort()
        position = 0
        for off, size in spans:
            assert off == position, f"slots {min(off, position)}..{max(off, position)} overlap or are lost"
            position += size
        assert position == self.num_slots
