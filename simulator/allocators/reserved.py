"""Contiguous per-request reservation, as Orca and FasterTransformer keep KV (the vLLM paper's baselines).

At admission each request gets one contiguous region of token slots from a buddy allocator (``buddy.py``),
sized by ``policy`` (Kwon et al., SOSP'23, §6.2):
- ``max``: the model's ``max_model_len``, whatever the request needs (Orca (Max));
- ``pow2``: the true final length rounded up to a power of two, capped at ``max_model_len`` (Orca (Pow2):
  over-reserves by at most 2×);
- ``oracle``: exactly the true final length (Orca (Oracle)).
The region never grows or moves; a sequence that would outgrow it fails ``append_slots``.

Accounting (DESIGN §3), in slots × ``kv_bytes_per_token``: ``token_states`` = tokens stored; ``reserved`` =
slots up to the true final length not yet filled; ``internal_frag`` = region slots beyond the final length
(the policy's over-reservation; the buddy allocator hands out exact extents, so it adds none);
``external_frag`` = while an allocation is blocked, free slots minus the largest free block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kvsim.errors import KvsimError
from kvsim.simulator.allocators.base import Admission, MemoryBreakdown, over_context
from kvsim.simulator.allocators.buddy import BuddyAllocator, fit_when_empty
from kvsim.simulator.allocators.paged import PCIE_BW_BYTES_PER_S
from kvsim.simulator.allocators.reserved_cohort import ReservedCohortMixin
from kvsim.simulator.allocators.spec import spec_string
from kvsim.simulator.specs import ModelSpec

POLICIES = ("max", "pow2", "oracle")


@dataclass(frozen=True)
class ReservedConfig:
    policy: str = "max"
    # True: a region takes the whole power-of-two buddy block (a plain buddy allocator; the rounding is
    # internal fragmentation, and oracle then reserves as much as pow2). False: exact extents (default).
    round_to_buddy: bool = False
    pcie_bw_bytes_per_s: float = PCIE_BW_BYTES_PER_S  # swap transfers

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise KvsimError(f"reserved: unknown policy {self.policy!r}; valid: {', '.join(POLICIES)}")
        if self.pcie_bw_bytes_per_s <= 0:
            raise KvsimError(
                f"reserved: pcie_bw_bytes_per_s must be positive, got {self.pcie_bw_bytes_per_s}"
            )


@dataclass(slots=True)
class _Seq:
    offset: int | None  # first slot of the region; None while swapped out
    num_region_slots: int
    num_tokens: int
    final_num_tokens: int

    def parts(self) -> tuple[int, int]:
        """(reserved, internal_frag) slots of this sequence's region."""
        will_hold = max(min(self.num_region_slots, self.final_num_tokens), self.num_tokens)
        return will_hold - self.num_tokens, self.num_region_slots - will_hold


class ReservedAllocator(ReservedCohortMixin):
    """Invariant: each resident sequence owns one buddy extent of ``num_region_slots`` slots holding its
    ``num_tokens`` tokens; the running totals equal the sums over sequences; the five parts sum to capacity."""

    attention_kernel = "contiguous"
    block_size = 0
    config_cls = ReservedConfig

    def __init__(
        self,
        config: ReservedConfig,
        *,
        model: ModelSpec,
        tp: int,
        capacity_bytes: int,
        swap_space_bytes: int = 0,
    ) -> None:
        self.config = config
        self.capacity_bytes = capacity_bytes
        self.kv_bytes_per_token = model.kv_bytes_per_token(tp)
        self.max_model_len = model.max_model_len
        num_slots = capacity_bytes // self.kv_bytes_per_token
        if num_slots == 0:
            raise KvsimError(
                f"reserved: KV capacity {capacity_bytes} bytes holds no token slot of "
                f"{self.kv_bytes_per_token} bytes; give the model more memory"
            )
        self.buddy = BuddyAllocator(num_slots)
        self.swap_space_bytes = swap_space_bytes
        self.swap_used_bytes = 0
        self.name = spec_string("reserved", config)
        self.seqs: dict[int, _Seq] = {}
        self._num_token_slots = self._num_reserved_slots = self._num_internal_slots = 0
        # Slots a scheduler took without append_slots (an allocator with ``growth_room``: contiguous-growth): they
        # turn reserved slots into token states (DESIGN §7b).
        self.num_deferred_tokens = 0
        self._blocked_num_slots: int | None = None  # region size of the blocked head-of-queue allocation
        self._fits_when_empty: dict[tuple[int, ...], bool] = {}  # region sizes -> all fit an empty heap
        self._pending_overhead_s = 0.0
        self._init_cohort()

    def region_slots(self, final_num_tokens: int) -> int:
        """Slots the policy reserves for a request of this final length (with ``round_to_buddy``, rounded up
        to the buddy block that holds them)."""
        if self.config.policy == "max":
            num_slots = self.max_model_len
        elif self.config.policy == "pow2":
            num_slots = max(
                final_num_tokens, min(1 << (final_num_tokens - 1).bit_length(), self.max_model_len)
            )
        else:
            num_slots = final_num_tokens
        return 1 << (num_slots - 1).bit_length() if self.config.round_to_buddy else num_slots

    # -- the KVAllocator Protocol ------------------------------------------------------------------------

    def rejection_reason(
        self, num_prompt_tokens: int, num_output_tokens: int, num_seqs: int = 1
    ) -> str | None:
        reason = over_context(num_prompt_tokens, num_output_tokens, self.max_model_len)
        if reason is not None:
            return reason
        total = num_prompt_tokens + num_output_tokens
        num_slots = self.region_slots(total)
        largest = self.buddy.largest_root_block()
        if (1 << (num_slots - 1).bit_length()) > largest:
            reason = (
                f"{self.name} needs a contiguous region of {num_slots} slots, but the largest buddy "
                f"block of this replica ({self.buddy.num_slots} slots) is {largest} slots"
            )
            if self.config.policy == "max":
                reason += (
                    "; every request is rejected under policy max: use reserved:pow2, "
                    "reserved:oracle or paged, or give the model more memory"
                )
            return reason
        # Each parallel sequence gets a region of its own (``fork`` copies: contiguous regions share nothing).
        if num_seqs > 1 and not self._regions_fit_when_empty((num_slots,) * num_seqs):
            return (
                f"{self.name} needs a contiguous region of {num_slots} slots for each of {num_seqs} "
                f"parallel sequences, but this replica's buddy heap of {self.buddy.num_slots} slots cannot "
                f"hold them together even when empty; use paged or give the model more memory"
            )
        return None

    def allocate(
        self,
        seq_id: int,
        num_tokens: int,
        *,
        final_num_tokens: int,
        prefix_block_hashes: Sequence[int] | None = None,
        num_prompt_tokens: int | None = None,
    ) -> Admission | None:
        assert seq_id not in self.seqs, f"seq {seq_id} allocated twice"
        num_region_slots = self.region_slots(
            self._admitted_tokens(num_tokens, final_num_tokens, num_prompt_tokens)
        )
        offset = self.buddy.alloc(num_region_slots)
        if offset is None:
            self._blocked_num_slots = num_region_slots
            return None
        self._blocked_num_slots = None
        self._add(seq_id, _Seq(offset, num_region_slots, num_tokens, final_num_tokens))
        return Admission()

    def _admitted_tokens(self, num_tokens: int, final_num_tokens: int, num_prompt_tokens: int | None) -> int:
        """Tokens the region made at admission must hold: the whole final length (reserved up front)."""
        return max(final_num_tokens, num_tokens)

    def append_slots(self, seq_id: int, num_new_tokens: int) -> bool:
        seq = self._resident(seq_id)
        assert seq.offset is not None, f"seq {seq_id} is swapped out"
        num_tokens = seq.num_tokens + num_new_tokens
        if num_tokens > seq.num_region_slots:
            return False
        # Slots up to min(region, final) are reserved until filled; slots filled beyond the final length
        # (never expected) come out of internal_frag.
        fill_to = (
            seq.final_num_tokens if seq.final_num_tokens < seq.num_region_slots else seq.num_region_slots
        )
        if num_tokens <= fill_to:
            self._num_reserved_slots -= num_new_tokens
            self._num_token_slots += num_new_tokens
            seq.num_tokens = num_tokens
            return True
        self._count(seq, -1)
        seq.num_tokens = num_tokens
        self._count(seq, +1)
        return True

    def max_uniform_growth(self, seq_ids: Sequence[int], limit: int) -> int:
        """Closed form: a region never grows, so the sequence with the least room bounds k."""
        room = (self.seqs[s].num_region_slots - self._tokens(s) for s in seq_ids)
        return max(0, min(limit, *room)) if seq_ids else limit

    def fork(self, parent_seq_id: int, child_seq_id: int, *, final_num_tokens: int | None = None) -> bool:
        """A copy: contiguous regions cannot share memory."""
        parent = self._resident(parent_seq_id)
        assert child_seq_id not in self.seqs and parent.offset is not None
        final = final_num_tokens or parent.final_num_tokens
        num_region_slots = self.region_slots(max(final, parent.num_tokens))
        offset = self.buddy.alloc(num_region_slots)
        if offset is None:
            return False
        self._add(child_seq_id, _Seq(offset, num_region_slots, parent.num_tokens, final))
        return True

    def free(self, seq_id: int) -> None:
        self._resident(seq_id)
        seq = self.seqs.pop(seq_id)
        if seq.offset is None:
            self.swap_used_bytes -= seq.num_tokens * self.kv_bytes_per_token
            return
        self._count(seq, -1)
        self.buddy.free(seq.offset)

    def swap_out(self, seq_id: int) -> int | None:
        """Copies the stored tokens to CPU memory and frees the region."""
        seq = self._resident(seq_id)
        num_bytes = seq.num_tokens * self.kv_bytes_per_token
        if seq.offset is None or num_bytes > self.swap_space_bytes - self.swap_used_bytes:
            return None
        self._count(seq, -1)
        self.buddy.free(seq.offset)
        seq.offset = None
        self.swap_used_bytes += num_bytes
        self._pending_overhead_s += num_bytes / self.config.pcie_bw_bytes_per_s
        return num_bytes

    def swap_in(self, seq_id: int) -> int | None:
        seq = self.seqs[seq_id]
        assert seq.offset is None, f"seq {seq_id} is not swapped out"
        offset = self.buddy.alloc(seq.num_region_slots)
        if offset is None:
            return None
        seq.offset = offset
        self._count(seq, +1)
        num_bytes = seq.num_tokens * self.kv_bytes_per_token
        self.swap_used_bytes -= num_bytes
        self._pending_overhead_s += num_bytes / self.config.pcie_bw_bytes_per_s
        return num_bytes

    def take_overhead_s(self, previous_step_s: float = 0.0) -> float:
        """Swap transfer time since the last call; never hidden."""
        overhead_s, self._pending_overhead_s = self._pending_overhead_s, 0.0
        return overhead_s

    def breakdown(self) -> MemoryBreakdown:
        return MemoryBreakdown(*self.breakdown_parts())

    def breakdown_parts(self) -> tuple[int, int, int, int, int, int]:
        """``breakdown()``'s fields as a tuple, in field order (the engine's timeline row)."""
        kvb = self.kv_bytes_per_token
        token_slots, reserved_slots, internal_slots = self._cohort_slots()
        deferred = self.num_deferred_tokens
        token_states = (self._num_token_slots + token_slots + deferred) * kvb
        reserved = (self._num_reserved_slots + reserved_slots - deferred) * kvb
        internal_frag, external_frag = (
            (self._num_internal_slots + internal_slots) * kvb,
            self._external_bytes(),
        )
        free = self.capacity_bytes - token_states - reserved - internal_frag - external_frag
        return (token_states, reserved, internal_frag, external_frag, free, 0)

    def free_bytes(self) -> int:
        """``breakdown().free`` without building the breakdown (the watermark check asks on every admission):
        the same integers, summed over all resident slots at once."""
        slots = self._num_token_slots + self._num_reserved_slots + self._num_internal_slots
        slots += sum(self._cohort_slots())
        return self.capacity_bytes - slots * self.kv_bytes_per_token - self._external_bytes()

    def _external_bytes(self) -> int:
        """While the head of the queue is blocked: free slots minus the largest free block."""
        if self._blocked_num_slots is None:
            return 0
        return (self.buddy.num_free_slots - self.buddy.largest_free_block()) * self.kv_bytes_per_token

    def clear_blocked(self) -> None:
        self._blocked_num_slots = None

    def check_invariants(self) -> None:
        """O(sequences + buddy blocks), for tests."""
        self.buddy.check_invariants()
        resident = {s.offset: s.num_region_slots for s in self.seqs.values() if s.offset is not None}
        assert resident == self.buddy.allocated, "regions differ from the buddy allocator's extents"
        totals = [0, 0, 0]
        for seq_id, seq in self.seqs.items():
            if seq_id in self.members:  # counted in the cohort's sums, from its token count now
                seq = _Seq(seq.offset, seq.num_region_slots, self._tokens(seq_id), seq.final_num_tokens)
            assert seq.num_tokens <= seq.num_region_slots
            if seq.offset is None:
                continue
            reserved, internal = seq.parts()
            for i, value in enumerate((seq.num_tokens, reserved, internal)):
                totals[i] += value
            self._check_region(seq, internal)
        cohort = self._cohort_slots()
        assert totals == [
            self._num_token_slots + cohort[0],
            self._num_reserved_slots + cohort[1],
            self._num_internal_slots + cohort[2],
        ], "slot totals drifted"
        parts = self.breakdown()
        assert min(parts.as_dict().values()) >= 0 and parts.capacity_bytes == self.capacity_bytes, parts
        assert self.free_bytes() == parts.free, "free_bytes() differs from breakdown().free"
        swapped = sum(s.num_tokens for s in self.seqs.values() if s.offset is None) * self.kv_bytes_per_token
        assert swapped == self.swap_used_bytes <= self.swap_space_bytes

    # -- internals ----------------------------------------------------------------------------------------

    def _check_region(self, seq: _Seq, internal: int) -> None:
        """The sizing policy's own bound on one resident region (``internal``: its internal_frag slots)."""
        if self.config.policy == "oracle":  # no over-reservation beyond buddy rounding
            final = max(seq.final_num_tokens, seq.num_tokens)
            rounding = (1 << (final - 1).bit_length()) - final if self.config.round_to_buddy else 0
            assert internal == rounding, "oracle over-reserves"

    def _regions_fit_when_empty(self, extents: tuple[int, ...]) -> bool:
        """``fit_when_empty`` on this replica's heap, once per set of region sizes (arrivals repeat them)."""
        fits = self._fits_when_empty.get(extents)
        if fits is None:
            fits = self._fits_when_empty[extents] = fit_when_empty(self.buddy.num_slots, extents)
        return fits

    def _tokens(self, seq_id: int) -> int:
        base = self.members.get(seq_id)
        return self.seqs[seq_id].num_tokens if base is None else base + self.tick

    def _add(self, seq_id: int, seq: _Seq) -> None:
        self.seqs[seq_id] = seq
        self._count(seq, +1)

    def _count(self, seq: _Seq, sign: int) -> None:
        reserved, internal = seq.parts()
        self._num_token_slots += sign * seq.num_tokens
        self._num_reserved_slots += sign * reserved
        self._num_internal_slots += sign * internal
