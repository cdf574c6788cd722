"""Power-of-two contiguous growth: the global KV cache of IBM's Foundation Model Stack (FMS) with FlexAttention.

Joshi et al., "Paged Attention Meets FlexAttention: Unlocking Long-Context Efficiency in Deployed Inference",
arXiv:2506.07311 (2025), keep a global KV cache in FMS whose memory grows in power-of-two allocations (abstract:
extra memory "observable only at sequence lengths exceeding 2048 tokens due to its power-of-two cache
allocations"). This allocator models that growth policy per request, as kvsim's issue 8 specifies it:

- At admission a sequence gets ONE contiguous region of ``min_region_tokens × growth_factor**m`` token slots,
  the smallest that holds its prompt (the prompt is known at admission; the true output length is not used).
- When an append needs more, the region grows by ``growth_factor`` as many times as needed: a new region is
  taken from the buddy heap while the old one still holds the KV, the old region's slots are copied over, and
  the old region is freed. Decode grows one token at a time, so the old region is full when it moves.
- Regions are capped at ``max_model_len``. A growth with no free block of the new size fails the append
  (the scheduler then preempts); a request whose last growth cannot happen even on an empty heap (the old
  and new regions must coexist for the copy; with parallel sequences, beside the others' final regions) is
  rejected at arrival with the reason.

Copy cost: a device-to-device copy reads each byte once and writes it once, so it moves 2 × its bytes over
HBM: ``copy_s = bytes / copy_bw_bytes_per_s`` with ``copy_bw_bytes_per_s`` defaulting to
``hbm_bw_bytes_per_s × HBM_BW_EFFICIENCY / 2`` (the roofline's streaming efficiency), or a measured copy rate
(bytes copied per second) given as the option. Under tensor parallelism each GPU copies its own shard of the
KV in parallel: bytes and bandwidth are per GPU. The time is charged through ``take_overhead_s``, so it lands
on the step that grows. A fork (parallel samples) copies the parent's stored tokens at the same rate.

Deferred slots (DESIGN §7b): ``growth_room`` is what a sequence can still fill inside its region and short of
its final length; a scheduler may take those slots without ``append_slots`` (no copy), counting them in
``num_deferred_tokens``, which the reserved allocator's breakdown adds.

Everything else (regions from ``buddy.py``, the five-part accounting, swap) is the reserved allocator's
(``reserved.py``): ``internal_frag`` is the region beyond the request's true final length (the doubling's
waste), ``external_frag`` the free buddy space a blocked head-of-queue allocation cannot use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from kvsim.errors import KvsimError
from kvsim.simulator.allocators.base import append_then_room, over_context
from kvsim.simulator.allocators.buddy import BuddyAllocator
from kvsim.simulator.allocators.paged import PCIE_BW_BYTES_PER_S
from kvsim.simulator.allocators.reserved import ReservedAllocator, _Seq
from kvsim.simulator.allocators.spec import spec_string
from kvsim.simulator.cost.roofline import HBM_BW_EFFICIENCY
from kvsim.simulator.specs import ModelSpec

NAME = "contiguous-growth"


@dataclass(frozen=True)
class ContiguousGrowthConfig:
    min_region_tokens: int = 16  # the smallest region, in token slots; regions are this × growth_factor**m
    growth_factor: int = 2  # each growth multiplies the region by this (2: power-of-two regions)
    # Bytes of KV copied per second during a growth (a measured copy rate). None: the GPU's HBM bandwidth ×
    # HBM_BW_EFFICIENCY ÷ 2, because a copy reads and writes every byte.
    copy_bw_bytes_per_s: float | None = None
    pcie_bw_bytes_per_s: float = PCIE_BW_BYTES_PER_S  # swap transfers

    def __post_init__(self) -> None:
        if self.min_region_tokens < 1:
            raise KvsimError(f"{NAME}: min_region_tokens must be >= 1, got {self.min_region_tokens}")
        if self.growth_factor < 2:
            raise KvsimError(
                f"{NAME}: growth_factor must be an integer >= 2 (2 doubles the region), got {self.growth_factor}"
            )
        if self.copy_bw_bytes_per_s is not None and self.copy_bw_bytes_per_s <= 0:
            raise KvsimError(
                f"{NAME}: copy_bw_bytes_per_s must be positive, got {self.copy_bw_bytes_per_s}; "
                f"omit it to derive it from the GPU's HBM bandwidth"
            )
        if self.pcie_bw_bytes_per_s <= 0:
            raise KvsimError(f"{NAME}: pcie_bw_bytes_per_s must be positive, got {self.pcie_bw_bytes_per_s}")


class ContiguousGrowthAllocator(ReservedAllocator):
    """Invariant (beyond the reserved allocator's): every resident region is a rung of the ladder
    ``min(min_region_tokens × growth_factor**m, max_model_len)`` and holds its sequence's tokens."""

    keeps_cohort = False  # regions grow (and may fail to) at block crossings: no counter-only decode steps

    config_cls = ContiguousGrowthConfig

    def __init__(
        self,
        config: ContiguousGrowthConfig,
        *,
        model: ModelSpec,
        tp: int,
        capacity_bytes: int,
        swap_space_bytes: int = 0,
        hbm_bw_bytes_per_s: float | None = None,
    ) -> None:
        if capacity_bytes // model.kv_bytes_per_token(tp) == 0:
            raise KvsimError(
                f"{NAME}: KV capacity {capacity_bytes} bytes holds no token slot of "
                f"{model.kv_bytes_per_token(tp)} bytes; give the model more memory"
            )
        if config.copy_bw_bytes_per_s is None and hbm_bw_bytes_per_s is None:
            raise KvsimError(
                f"{NAME}: the copy needs a bandwidth: set copy_bw_bytes_per_s in the spec, or build it for a "
                f"GPU (make_allocator(..., hbm_bw_bytes_per_s=...))"
            )
        super().__init__(
            config, model=model, tp=tp, capacity_bytes=capacity_bytes, swap_space_bytes=swap_space_bytes
        )
        self.name = spec_string(NAME, config)  # the options as written: a derived bandwidth is not named
        self.copy_bw_bytes_per_s = config.copy_bw_bytes_per_s or (hbm_bw_bytes_per_s * HBM_BW_EFFICIENCY / 2)
        # The config as run, the derived bandwidth filled in (config.json's allocator_config shows it).
        self.config = replace(config, copy_bw_bytes_per_s=self.copy_bw_bytes_per_s)
        self.num_growth_copies = self.num_fork_copies = self.copy_bytes = 0
        self.copy_s = 0.0
        self._fit_when_empty: dict[tuple[int, int], bool] = {}  # (previous, final region) -> both fit, empty

    def region_slots(self, num_tokens: int) -> int:
        """The smallest rung of the ladder that holds ``num_tokens`` (capped at ``max_model_len``)."""
        num_slots = self.config.min_region_tokens
        while num_slots < num_tokens:
            num_slots *= self.config.growth_factor
        return max(min(num_slots, self.max_model_len), num_tokens)

    def stats(self) -> dict[str, int | float]:
        """Counters for ``summary.json``'s ``allocator_stats`` (an optional extension of the Protocol)."""
        return {
            "num_growth_copies": self.num_growth_copies,
            "num_fork_copies": self.num_fork_copies,
            "copy_bytes": self.copy_bytes,
            "copy_s": self.copy_s,
        }

    # -- the KVAllocator Protocol ------------------------------------------------------------------------

    def rejection_reason(
        self, num_prompt_tokens: int, num_output_tokens: int, num_seqs: int = 1
    ) -> str | None:
        reason = over_context(num_prompt_tokens, num_output_tokens, self.max_model_len)
        if reason is not None:
            return reason
        total = num_prompt_tokens + num_output_tokens
        final = self.region_slots(total)
        previous = self.region_slots(num_prompt_tokens)
        while previous < final and self.region_slots(previous + 1) < final:
            previous = self.region_slots(previous + 1)
        fits = self._fit_when_empty.get((previous, final))
        if fits is None:  # the buddy's own placement on an empty heap (one per region pair: arrivals repeat them)
            empty = BuddyAllocator(self.buddy.num_slots)
            fits = self._fit_when_empty[previous, final] = empty.alloc(previous) is not None and (
                previous == final or empty.alloc(final) is not None
            )
        if fits:
            return self._samples_reason(num_seqs, num_prompt_tokens, total) if num_seqs > 1 else None
        if previous == final:
            return (
                f"{self.name} needs a contiguous region of {final} slots, but the largest buddy block of "
                f"this replica ({self.buddy.num_slots} slots) is {self.buddy.largest_root_block()} slots"
            )
        return (
            f"{self.name} grows a request of {total} tokens from a region of {previous} slots to one of "
            f"{final}, which must coexist for the copy, but this replica's buddy heap of "
            f"{self.buddy.num_slots} slots cannot hold both even when empty; use paged or give the model "
            f"more memory"
        )

    def _admitted_tokens(self, num_tokens: int, final_num_tokens: int, num_prompt_tokens: int | None) -> int:
        """A region for the whole prompt (or for prompt + generated tokens when a preempted sequence comes
        back), even when chunked prefill allocates only its first chunk now; it grows from there."""
        return max(num_tokens, num_prompt_tokens or 0)

    def append_slots(self, seq_id: int, num_new_tokens: int) -> bool:
        seq = self.seqs[seq_id]
        assert seq.offset is not None, f"seq {seq_id} is swapped out"
        num_tokens = seq.num_tokens + num_new_tokens
        if num_tokens > seq.num_region_slots and (
            num_tokens > self.max_model_len or not self._grow(seq, self.region_slots(num_tokens))
        ):
            return False
        return super().append_slots(seq_id, num_new_tokens)

    def growth_room(self, seq_id: int) -> int:
        """Slots ``seq_id`` can still gain with no effect but reserved -> token states: inside its region and
        its final length (no copy). A scheduler may take them without ``append_slots``, counting them in
        ``num_deferred_tokens``."""
        seq = self.seqs[seq_id]
        fill_to = (
            seq.final_num_tokens if seq.final_num_tokens < seq.num_region_slots else seq.num_region_slots
        )
        room = fill_to - seq.num_tokens
        return room if room > 0 and seq.offset is not None else 0

    append_decode_slots = append_then_room  # base.py

    def max_overhead_free_growth(self, seq_ids: Sequence[int], limit: int) -> int:
        """How far (0..limit) every listed sequence can grow inside its region: no copy, so no step is
        charged (SchedulerBase.decode_window keeps growth copies out of fast-forward windows).

        0 while the blocked head of the queue would now fit: unlike paged growth, a growth frees its old region,
        which can coalesce into a block the head fits, and stepping admits the head at the very next step."""
        blocked = self._blocked_num_slots
        if blocked is not None and self.buddy.largest_free_block() >= blocked:
            return 0
        return self._least_room(seq_ids, limit)

    def max_uniform_growth(self, seq_ids: Sequence[int], limit: int) -> int:
        """Exact: up to the least room no region moves; beyond it, each probe replays the growths, in order,
        on a scratch copy of the buddy heap (a window asks for at most one step past the least room)."""
        seqs = [self.seqs[s] for s in seq_ids]
        if not seqs:
            return limit
        lo = self._least_room(seq_ids, limit)
        hi = min([limit] + [self.max_model_len - s.num_tokens for s in seqs])
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._growths_fit(seqs, mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def fork(self, parent_seq_id: int, child_seq_id: int, *, final_num_tokens: int | None = None) -> bool:
        """A copy of the parent's stored tokens into a region of the child's own."""
        parent = self.seqs[parent_seq_id]
        assert child_seq_id not in self.seqs and parent.offset is not None
        final = final_num_tokens or parent.final_num_tokens
        num_region_slots = self.region_slots(parent.num_tokens)
        offset = self.buddy.alloc(num_region_slots)
        if offset is None:
            return False
        self._add(child_seq_id, _Seq(offset, num_region_slots, parent.num_tokens, final))
        self.num_fork_copies += 1
        self._charge_copy(parent.num_tokens)
        return True

    # -- internals ----------------------------------------------------------------------------------------

    def _samples_reason(self, num_seqs: int, num_prompt_tokens: int, total: int) -> str | None:
        """Parallel sequences grow in step from the prompt's rung (a fork copies the prompt into a region of
        its own), each to hold its ``total - 1`` stored tokens (the last token's KV is never written): when the
        last one grows into its final region, the others hold theirs and its previous region holds the KV for
        the copy. Why those regions cannot be together even on an empty heap, or None if they can."""
        final = self.region_slots(total - 1)
        previous = self.region_slots(num_prompt_tokens)
        while previous < final and self.region_slots(previous + 1) < final:
            previous = self.region_slots(previous + 1)
        if previous == final:  # no growth: the forks' regions are final from the start
            if self._regions_fit_when_empty((final,) * num_seqs):
                return None
            return (
                f"{self.name} needs a contiguous region of {final} slots for each of {num_seqs} parallel "
                f"sequences, but this replica's buddy heap of {self.buddy.num_slots} slots cannot hold them "
                f"together even when empty; use paged or give the model more memory"
            )
        if self._regions_fit_when_empty((final,) * num_seqs + (previous,)):
            return None
        return (
            f"{self.name} grows each of {num_seqs} parallel sequences to {total - 1} stored tokens in a region "
            f"of {final} slots, the last from one of {previous}, which must coexist with the others' for the "
            f"copy, but this replica's buddy heap of {self.buddy.num_slots} slots cannot hold them together "
            f"even when empty; use paged or give the model more memory"
        )

    def _check_region(self, seq: _Seq, internal: int) -> None:
        rung = self.config.min_region_tokens
        while rung < seq.num_region_slots and rung < self.max_model_len:
            rung *= self.config.growth_factor
        assert seq.num_region_slots == min(rung, self.max_model_len), "a region is off the growth ladder"

    def _least_room(self, seq_ids: Sequence[int], limit: int) -> int:
        """The fewest free slots (0..limit) left in any listed sequence's region."""
        room = limit
        for seq_id in seq_ids:
            seq = self.seqs[seq_id]
            if seq.num_region_slots - seq.num_tokens < room:
                room = seq.num_region_slots - seq.num_tokens
        return max(room, 0)

    def _grow(self, seq: _Seq, num_region_slots: int) -> bool:
        """Move ``seq`` into a new region of ``num_region_slots``, copying the old region; False (changing
        nothing) when the buddy heap has no free block for it."""
        offset = self.buddy.alloc(num_region_slots)  # taken while the old region still holds the KV
        if offset is None:
            return False
        self._count(seq, -1)
        self.buddy.free(seq.offset)
        self.num_growth_copies += 1
        self._charge_copy(seq.num_region_slots)
        seq.offset, seq.num_region_slots = offset, num_region_slots
        self._count(seq, +1)
        return True

    def _charge_copy(self, num_slots: int) -> None:
        num_bytes = num_slots * self.kv_bytes_per_token
        copy_s = num_bytes / self.copy_bw_bytes_per_s
        self.copy_bytes += num_bytes
        self.copy_s += copy_s
        self._pending_overhead_s += copy_s

    def _growths_fit(self, seqs: list[_Seq], num_new_tokens: int) -> bool:
        """Whether ``append_slots(s, num_new_tokens)`` would succeed for every sequence, in order."""
        trial = self.buddy.copy()
        for seq in seqs:
            num_tokens = seq.num_tokens + num_new_tokens
            if num_tokens > seq.num_region_slots:
                if trial.alloc(self.region_slots(num_tokens)) is None:
                    return False
                trial.free(seq.offset)
        return True
