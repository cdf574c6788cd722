"""The paged allocator by block counts: ``PagedAllocator``'s accounting without block ids (DESIGN §7b).

Without prefix caching and forks no block is ever shared, so which physical block a sequence holds cannot
change any result: a sequence of ``t`` tokens holds ``ceil(t / block_size)`` blocks, its last block has
``(-t) % block_size`` empty slots, ``min(that, final - t)`` of them reserved and the rest internal
fragmentation. This allocator keeps exactly those numbers, so its breakdowns, admissions and failures are
those of ``PagedAllocator`` (the tests run both side by side); ``run.py`` picks it when the allocator is
``paged`` without prefix caching and no request has parallel samples or beams.

The decode cohort. A scheduler may hand its decoding sequences to the allocator's cohort (``cohort_join``):
they all gain one slot per decode step, so the cohort stores each by ``base = num_tokens - tick`` and
advances ``tick`` (``cohort_grow(k)``) in O(block_size), whatever its size. Its sums are running counters:
tokens ``Σ base + n·tick``; blocks grow by the members whose ``base ≡ -t (mod block_size)`` at each step
``t -> t + 1`` (``opens_at[t % block_size]``); reserved slots are ``(-s) % block_size`` for a member not yet in its
final block and ``final - s`` for one in it (the switch, one per member, is kept in a heap by tick).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from kvsim.errors import KvsimError
from kvsim.simulator.allocators.base import Admission, MemoryBreakdown, largest_fitting
from kvsim.simulator.allocators.paged import PagedConfig
from kvsim.simulator.allocators.paged_base import PagedBase
from kvsim.simulator.specs import ModelSpec


@dataclass(slots=True)
class _CountedSeq:
    num_tokens: int  # stale while the sequence is in the cohort (its tokens are base + tick there)
    final_num_tokens: int
    num_swapped_blocks: int = 0  # > 0 while the sequence lives in CPU swap space


@dataclass(slots=True)
class _Member:
    base: int  # num_tokens - tick
    final_num_tokens: int
    # Its reserved slots: BEFORE_FINAL_BLOCK, the empty slots of its last block; IN_FINAL_BLOCK, final - tokens;
    # PAST_FINAL (grown to its final length or beyond, which a scheduler never lets happen), none.
    phase: int


BEFORE_FINAL_BLOCK, IN_FINAL_BLOCK, PAST_FINAL = 0, 1, 2


NO_CACHE_HIT = Admission(num_cached_tokens=0)  # frozen: one instance serves every admission


def cyclic_sum(values: list[int], start: int, num: int) -> int:
    """``sum(values[(start + i) % len(values)] for i in range(num))`` for ``start < len(values) >= num``."""
    end = start + num
    if end <= len(values):
        return sum(values[start:end])
    return sum(values[start:]) + sum(values[: end - len(values)])


def cyclic_run(values: list[int], start: int, num: int) -> list[int]:
    """``[values[(start + i) % len(values)] for i in range(num)]``, for ``start < len(values)``."""
    end = start + num
    if end <= len(values):
        return values[start:end]
    return (values * (end // len(values) + 1))[start:end]


def reserved_slots(num_tokens: int, final_num_tokens: int, block_size: int) -> int:
    """Empty slots of the last block that the sequence will still fill."""
    num_reserved = min((-num_tokens) % block_size, final_num_tokens - num_tokens)
    return num_reserved if num_reserved > 0 else 0


class CountedPagedAllocator(PagedBase):
    """Invariant (``check_invariants``): free blocks = capacity's blocks minus Σ ceil(tokens / block_size)
    over the sequences on the GPU; every counter equals a recount; the five parts sum to capacity."""

    keeps_cohort = True  # schedulers/cohort.py: decode steps may go through cohort_grow
    config_cls = PagedConfig
    _num_cached = 0  # free blocks a prefix cache holds (CountedOwnBlocksCache); breakdown_parts reads it

    def __init__(
        self,
        config: PagedConfig,
        *,
        model: ModelSpec,
        tp: int,
        capacity_bytes: int,
        swap_space_bytes: int = 0,
    ) -> None:
        if config.enable_prefix_caching:
            raise KvsimError("paged by block counts cannot cache prefixes; use PagedAllocator")
        super().__init__(
            config, model=model, tp=tp, capacity_bytes=capacity_bytes, swap_space_bytes=swap_space_bytes
        )
        bs = self.block_size
        self.num_free_blocks = self.num_blocks
        self.seqs: dict[int, _CountedSeq] = {}
        self._num_tokens = 0  # tokens of the sequences on the GPU outside the cohort
        self._num_reserved = 0  # their reserved slots
        # The cohort (module docstring).
        self.tick = 0
        # A scheduler may promise that every member leaves before it holds its final length (a request ends
        # at final - 1 slots: its last token's KV is never stored); then PAST_FINAL needs no heap entry.
        self.members_leave_before_final = False
        self.members: dict[int, _Member] = {}
        # [v]: members that open a block when the tick grows from v (mod bs) by one, -base % bs == v
        self.opens_at = [0] * bs
        self._not_final_opens_at = [0] * bs  # of them, those not in their final block yet
        self._num_not_final = 0  # Σ _not_final_opens_at
        self._not_final_empty = 0  # their empty (all reserved) last-block slots, Σ (-(base + tick)) % bs
        self._sum_base = 0
        self.num_cohort_blocks = 0
        self._num_final = 0  # members IN_FINAL_BLOCK, and Σ (final - base) over them
        self._sum_final_gap = 0
        self._phase_at: list[tuple[int, int, int]] = []  # heap of (tick, seq_id, the phase it enters then)

    # -- the KVAllocator Protocol ------------------------------------------------------------------------

    def allocate(
        self,
        seq_id: int,
        num_tokens: int,
        *,
        final_num_tokens: int,
        prefix_block_hashes: Sequence[int] | None = None,
        num_prompt_tokens: int | None = None,
        block_hashes: Sequence[int] | None = None,
        num_full_tokens: int | None = None,
        num_watermark_blocks: int = 0,
    ) -> Admission | None:
        """``PagedAllocator.allocate``, v1's admission included (without prefix caching ``block_hashes`` find
        nothing)."""
        if not self._admit(seq_id, num_tokens, final_num_tokens, num_full_tokens, num_watermark_blocks):
            return None
        return NO_CACHE_HIT

    def _admit(
        self,
        seq_id: int,
        num_tokens: int,
        final_num_tokens: int,
        num_full_tokens: int | None,
        num_watermark_blocks: int,
    ) -> bool:
        """``allocate`` by position (its subclasses' admission calls it once per request); False if not now."""
        assert seq_id not in self.seqs, f"seq {seq_id} allocated twice"
        assert num_tokens > 0
        num_new = -(-num_tokens // self.block_size)
        num_free = self.num_free_blocks - num_watermark_blocks
        if num_new > num_free or (
            num_full_tokens is not None and -(-num_full_tokens // self.block_size) > num_free
        ):
            return False
        self.num_free_blocks -= num_new
        self.seqs[seq_id] = _CountedSeq(num_tokens, final_num_tokens)
        self._num_tokens += num_tokens
        self._num_reserved += reserved_slots(num_tokens, final_num_tokens, self.block_size)
        return True

    def append_slots(self, seq_id: int, num_new_tokens: int) -> bool:
        if seq_id in self.members:
            self.cohort_leave(seq_id)
        seq = self.seqs[seq_id]
        assert not seq.num_swapped_blocks, f"seq {seq_id} is swapped out"
        bs, before = self.block_size, seq.num_tokens
        after = before + num_new_tokens
        num_new_blocks = -(-after // bs) - -(-before // bs)
        if num_new_blocks > self.num_free_blocks:
            return False
        self.num_free_blocks -= num_new_blocks
        seq.num_tokens = after
        self._num_tokens += num_new_tokens
        final = seq.final_num_tokens
        self._num_reserved += reserved_slots(after, final, bs) - reserved_slots(before, final, bs)
        return True

    def max_uniform_growth(self, seq_ids: Sequence[int], limit: int) -> int:
        """Binary search on k; each probe counts the new blocks of every listed sequence (fallback only:
        the cohort answers its own windows in O(block_size))."""
        bs = self.block_size
        tokens = [self._tokens(seq_id) for seq_id in seq_ids]

        def fits(k: int) -> bool:
            return sum(-(-(t + k) // bs) - -(-t // bs) for t in tokens) <= self.num_free_blocks

        return largest_fitting(limit, fits)

    def fork(self, parent_seq_id: int, child_seq_id: int, *, final_num_tokens: int | None = None) -> bool:
        raise AssertionError("the counted paged allocator shares no blocks; forks need PagedAllocator")

    def free(self, seq_id: int) -> int:
        """Free ``seq_id``; the tokens it held on the GPU (0 from swap space: CountedOwnBlocksCache reads them)."""
        if (
            seq_id in self.members
        ):  # straight from the cohort's sums (no detour through the per-sequence ones)
            tokens = self._remove_member(seq_id)
            del self.seqs[seq_id]
            self.num_free_blocks += -(-tokens // self.block_size)
            return tokens
        seq = self.seqs.pop(seq_id)
        if seq.num_swapped_blocks:
            self.num_cpu_blocks_used -= seq.num_swapped_blocks
            return 0
        self._release(seq)
        return seq.num_tokens

    def swap_out(self, seq_id: int) -> int | None:
        if seq_id in self.members:
            self.cohort_leave(seq_id)
        seq = self.seqs[seq_id]
        num_blocks = -(-seq.num_tokens // self.block_size)
        if seq.num_swapped_blocks or num_blocks > self.num_cpu_blocks - self.num_cpu_blocks_used:
            return None
        self._release(seq)
        seq.num_swapped_blocks = num_blocks
        self.num_cpu_blocks_used += num_blocks
        return self._charge_transfer(num_blocks * self.block_bytes)

    def swap_in(self, seq_id: int) -> int | None:
        seq = self.seqs[seq_id]
        num_blocks = seq.num_swapped_blocks
        assert num_blocks, f"seq {seq_id} is not swapped out"
        if num_blocks > self.num_free_blocks:
            return None
        seq.num_swapped_blocks = 0
        self.num_cpu_blocks_used -= num_blocks
        self.num_free_blocks -= num_blocks
        self._num_tokens += seq.num_tokens
        self._num_reserved += reserved_slots(seq.num_tokens, seq.final_num_tokens, self.block_size)
        return self._charge_transfer(num_blocks * self.block_bytes)

    def breakdown(self) -> MemoryBreakdown:
        return MemoryBreakdown(*self.breakdown_parts())

    def breakdown_parts(self) -> tuple[int, int, int, int, int, int]:
        """``breakdown()``'s fields as a tuple, in field order (the engine's timeline row)."""
        tick = self.tick
        num_tokens = self._num_tokens + self._sum_base + len(self.members) * tick
        kvb = self.kv_bytes_per_token
        token_states = num_tokens * kvb
        num_empty_slots = (self.num_blocks - self.num_free_blocks) * self.block_size - num_tokens
        if self._phase_at and self._phase_at[0][0] <= tick:
            self._catch_up()  # members entering their final block by now
        # reserved: outside the cohort, plus the cohort's (module docstring): final - tokens for members in
        # their final block, the empty slots of the last block for the others
        num_reserved = (
            self._num_reserved + self._sum_final_gap - self._num_final * tick + self._not_final_empty
        )
        reserved = num_reserved * kvb
        internal_frag = num_empty_slots * kvb - reserved
        free = self.capacity_bytes - token_states - reserved - internal_frag
        # cached free blocks: a prefix cache's (CountedOwnBlocksCache: those of its runs that allocations have
        # not taken yet, without settling them); none here
        num_cached = self._num_cached
        if num_cached > self.num_free_blocks:
            num_cached = self.num_free_blocks
        return (token_states, reserved, internal_frag, 0, free, num_cached * self.block_bytes)

    def free_bytes(self) -> int:
        """``breakdown().free`` without building the breakdown."""
        return self.capacity_bytes - (self.num_blocks - self.num_free_blocks) * self.block_bytes

    def check_invariants(self) -> None:
        """O(sequences), for tests: every counter equals a recount and the five parts sum to capacity."""
        bs = self.block_size
        num_blocks = num_tokens = num_reserved = num_swapped = 0
        for seq_id, seq in self.seqs.items():
            if seq.num_swapped_blocks:
                assert seq_id not in self.members
                assert seq.num_swapped_blocks == -(-seq.num_tokens // bs)
                num_swapped += seq.num_swapped_blocks
                continue
            tokens = self._tokens(seq_id)
            num_blocks += -(-tokens // bs)
            num_tokens += tokens
            num_reserved += reserved_slots(tokens, seq.final_num_tokens, bs)
        assert num_blocks == self.num_blocks - self.num_free_blocks, "free-block count drifted"
        assert num_swapped == self.num_cpu_blocks_used <= self.num_cpu_blocks
        parts = self.breakdown()
        assert parts.token_states == num_tokens * self.kv_bytes_per_token, "token counter drifted"
        assert parts.reserved == num_reserved * self.kv_bytes_per_token, "reserved counter drifted"
        assert min(parts.as_dict().values()) >= 0 and parts.capacity_bytes == self.capacity_bytes, parts
        assert self.free_bytes() == parts.free
        members = self.members.values()
        if self.members_leave_before_final:
            assert all(m.base + self.tick < m.final_num_tokens for m in members), "a member reached its final"
        assert self.num_cohort_blocks == sum(-(-(m.base + self.tick) // bs) for m in members)
        assert self.opens_at == [sum(1 for m in members if -m.base % bs == v) for v in range(bs)]
        not_final = [m for m in members if m.phase == BEFORE_FINAL_BLOCK]
        assert self._not_final_opens_at == [sum(1 for m in not_final if -m.base % bs == v) for v in range(bs)]
        assert self._num_not_final == len(not_final)
        assert self._not_final_empty == sum(-(m.base + self.tick) % bs for m in not_final)

    # -- the decode cohort (module docstring) --------------------------------------------------------------

    def cohort_join(self, seq_id: int) -> None:
        """``seq_id`` (on the GPU) gains one slot at every ``cohort_grow`` step from now on."""
        seq = self.seqs[seq_id]
        assert seq_id not in self.members and not seq.num_swapped_blocks
        bs, tokens, final = self.block_size, seq.num_tokens, seq.final_num_tokens
        self._num_tokens -= tokens
        self._num_reserved -= reserved_slots(tokens, final, bs)
        base = tokens - self.tick
        member = self.members[seq_id] = _Member(base, final, BEFORE_FINAL_BLOCK)
        opens = -base % bs
        self.opens_at[opens] += 1
        self._sum_base += base
        self.num_cohort_blocks += -(-tokens // bs)
        self._not_final_opens_at[opens] += 1
        self._num_not_final += 1
        self._not_final_empty += -tokens % bs
        self._next_phase(seq_id, member)

    def cohort_leave(self, seq_id: int) -> int:
        """Take ``seq_id`` out of the cohort; its token count now."""
        tokens = self._remove_member(seq_id)
        seq = self.seqs[seq_id]
        seq.num_tokens = tokens
        self._num_tokens += tokens
        self._num_reserved += reserved_slots(tokens, seq.final_num_tokens, self.block_size)
        return tokens

    def _remove_member(self, seq_id: int) -> int:
        """Take ``seq_id`` out of the cohort's sums; its token count now (its blocks stay taken)."""
        if self._phase_at and self._phase_at[0][0] <= self.tick:
            self._catch_up()
        member = self.members.pop(seq_id)
        bs, base = self.block_size, member.base
        tokens = base + self.tick
        opens = -base % bs
        self.opens_at[opens] -= 1
        self._sum_base -= base
        self.num_cohort_blocks -= -(-tokens // bs)
        if member.phase == BEFORE_FINAL_BLOCK:
            self._not_final_opens_at[opens] -= 1  # its heap entry goes stale: _catch_up skips it
            self._num_not_final -= 1
            self._not_final_empty -= -tokens % bs
        elif member.phase == IN_FINAL_BLOCK:
            self._num_final -= 1
            self._sum_final_gap -= member.final_num_tokens - base
        return tokens

    def cohort_num_tokens(self) -> int:
        return self._sum_base + len(self.members) * self.tick

    def cohort_max_growth(self, limit: int) -> int:
        """The largest k <= limit such that the blocks ``cohort_grow(k)`` opens are free."""
        num_members, num_free = len(self.members), self.num_free_blocks
        if limit <= 0 or not num_members:
            return max(0, limit)
        bs = self.block_size
        if num_members * -(-limit // bs) <= num_free:  # a member opens at most one block per bs steps
            return limit
        opens, tick = self.opens_at, self.tick
        num_cycles = min(limit // bs, num_free // num_members)
        left = num_free - num_cycles * num_members
        k = num_cycles * bs
        while k < limit:
            need = opens[(tick + k) % bs]
            if need > left:
                break
            left -= need
            k += 1
        return k

    def cohort_grow(self, num_steps: int) -> bool:
        """Every member gains ``num_steps`` slots; False (nothing changes) if the blocks are not free.

        The not-final members' empty slots move with the same residues: at step t -> t + 1 each loses one,
        except those with ``base ≡ -t`` (a full last block), which open a block of ``bs - 1`` empty slots;
        over ``bs`` steps that nets to zero, so only the last ``num_steps % bs`` steps are counted."""
        bs, tick = self.block_size, self.tick
        if num_steps == 1:  # the commonest call: one step, one residue
            start = tick % bs
            need, opened, rest = self.opens_at[start], self._not_final_opens_at[start], 1
        else:
            need, rest = 0, num_steps
            if num_steps >= bs:
                num_cycles, rest = divmod(num_steps, bs)
                need = num_cycles * len(self.members)
            opened = 0  # not-final members opening a block
            if rest:
                start = tick % bs
                end = start + rest
                if end <= bs:  # cyclic_sum's commoner case, inline
                    need += sum(self.opens_at[start:end])
                    opened = sum(self._not_final_opens_at[start:end])
                else:
                    need += cyclic_sum(self.opens_at, start, rest)
                    opened = cyclic_sum(self._not_final_opens_at, start, rest)
        if need > self.num_free_blocks:
            return False
        self.num_free_blocks -= need
        self.num_cohort_blocks += need
        self.tick = tick + num_steps
        self._not_final_empty += bs * opened - rest * self._num_not_final
        return True

    def _next_phase(self, seq_id: int, member: _Member) -> None:
        """Move ``member`` through the phases its tokens have reached; schedule the next one."""
        bs, final, tokens = self.block_size, member.final_num_tokens, member.base + self.tick
        if member.phase == BEFORE_FINAL_BLOCK:
            last_block_start = (-(-final // bs) - 1) * bs  # tokens before the final block
            if tokens <= last_block_start:
                heapq.heappush(self._phase_at, (last_block_start + 1 - member.base, seq_id, IN_FINAL_BLOCK))
                return
            member.phase = IN_FINAL_BLOCK
            self._not_final_opens_at[-member.base % bs] -= 1
            self._num_not_final -= 1
            self._not_final_empty -= -tokens % bs
            self._num_final += 1
            self._sum_final_gap += final - member.base
        if member.phase == IN_FINAL_BLOCK:
            if tokens < final:
                if not self.members_leave_before_final:
                    heapq.heappush(self._phase_at, (final - member.base, seq_id, PAST_FINAL))
                return
            member.phase = PAST_FINAL
            self._num_final -= 1
            self._sum_final_gap -= final - member.base

    def _catch_up(self) -> None:
        """Apply the phase changes due by now (a stale entry: its member left, maybe joined again since)."""
        heap, tick, members = self._phase_at, self.tick, self.members
        while heap and heap[0][0] <= tick:
            _, seq_id, phase = heapq.heappop(heap)
            member = members.get(seq_id)
            if member is not None and member.phase == phase - 1:
                self._next_phase(seq_id, member)

    # -- internals ----------------------------------------------------------------------------------------

    def _tokens(self, seq_id: int) -> int:
        member = self.members.get(seq_id)
        return self.seqs[seq_id].num_tokens if member is None else member.base + self.tick

    def _release(self, seq: _CountedSeq) -> None:
        self.num_free_blocks += -(-seq.num_tokens // self.block_size)
        self._num_tokens -= seq.num_tokens
        self._num_reserved -= reserved_slots(seq.num_tokens, seq.final_num_tokens, self.block_size)
