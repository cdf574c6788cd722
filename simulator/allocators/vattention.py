"""vAttention (Prabhu et al., ASPLOS'25): contiguous virtual KV per request, physical pages mapped on demand.

Each request owns a virtual buffer of ``max_model_len`` tokens for each layer's K and each layer's V
(2 × num_layers buffers). Physical memory is mapped in pages of ``page_size`` bytes; one page holds
``page_size / (num_kv_heads_per_gpu × head_dim × dtype_bytes)`` tokens of one layer's K (or V), a fraction
when it does not divide: the buffer is contiguous, so a token may straddle two pages and no page bytes are
lost. Growth past the mapped tokens maps one page in every buffer at once, a *page group* of
``2 × num_layers`` pages; ``g`` groups hold ``g × page_size // token_bytes_per_layer`` tokens. Mapping costs
``map_latency_s`` per page.

``mapping``: ``overlapped`` (the default, as vAttention's §6.2 does it) maps in the background during the
previous step, so only the excess over that step shows; ``synchronous`` adds the mapping time to the step that
needs it. On an H200 and an H100 the driver's map and unmap calls ran beside queued GPU work without
waiting for it or slowing it (``calibrate/vmm_overlap.py``; docs/validation.md). ``take_overhead_s`` reports
both modes through one call: it returns swap time plus mapping time, and in overlapped mode the mapping part
is reduced by ``previous_step_s`` (the engine passes the previous step's duration; called without it, the full,
synchronous cost comes back). Unmapping is not charged: vAttention unmaps off the critical path.

Deferred slots (DESIGN §7b): ``growth_room`` is what a sequence can still fill inside the page groups it maps and
short of its final length; a scheduler may take those slots without ``append_slots`` (they only turn reserved
slots into token states, and map nothing), counting them in ``num_deferred_tokens``, which ``breakdown`` adds.

``reuse_pages`` (deferred reclamation): a finished request's buffer keeps its pages mapped and is handed to
the next request, which grows into them without mapping. Mapped pages a live request does not need yet (and
all pages of idle buffers) belong to no request: they count as free and as ``cached_bytes``, and are taken
back (oldest buffer first) when another request needs memory, paying the map cost in the new buffer.

Accounting (DESIGN §3): ``token_states`` = tokens stored; ``reserved`` = slots of the request's needed page
groups it will still fill (up to its final length); ``internal_frag`` = the rest of those groups (unfillable
slots, plus the bytes of each page that hold no whole token); ``external_frag`` = 0 (pages are fungible).
A request needs the fewest groups that hold its tokens, so its internal_frag < 2 × num_layers × page_size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from kvsim.errors import KvsimError
from kvsim.simulator.allocators.base import Admission, MemoryBreakdown, append_then_room, over_context
from kvsim.simulator.allocators.paged import PCIE_BW_BYTES_PER_S
from kvsim.simulator.allocators.spec import format_size, spec_string
from kvsim.simulator.specs import ModelSpec

PAGE_SIZES = (64 * 2**10, 128 * 2**10, 256 * 2**10, 2 * 2**20)  # 2 MiB: CUDA's VMM granularity
MAPPINGS = ("synchronous", "overlapped")
# Per page (cuMemMap + cuMemSetAccess of an already created handle). A placeholder of the order of tens of µs
# that the vAttention paper reports for the CUDA VMM calls; this value was not checked against the paper's
# table. Calibration (DESIGN §8, scripts/gpu_session.sh) measures it per page size and replaces it.
MAP_LATENCY_S = 40e-6


@dataclass(frozen=True)
class VAttentionConfig:
    SIZE_FIELDS = ("page_size",)

    page_size: int = 2 * 2**20
    mapping: str = "overlapped"  # vAttention §6.2; measured by calibrate/vmm_overlap.py (H200, H100)
    reuse_pages: bool = True
    map_latency_s: float = MAP_LATENCY_S
    pcie_bw_bytes_per_s: float = PCIE_BW_BYTES_PER_S  # swap transfers

    def __post_init__(self) -> None:
        if self.page_size not in PAGE_SIZES:
            valid = ", ".join(format_size(p) for p in PAGE_SIZES)
            raise KvsimError(
                f"vattention: page_size {format_size(self.page_size)} is not supported; valid: {valid}"
            )
        if self.mapping not in MAPPINGS:
            raise KvsimError(f"vattention: unknown mapping {self.mapping!r}; valid: {', '.join(MAPPINGS)}")
        if self.map_latency_s < 0 or self.pcie_bw_bytes_per_s <= 0:
            raise KvsimError("vattention: map_latency_s must be >= 0 and pcie_bw_bytes_per_s > 0")


@dataclass(slots=True)
class _Seq:
    buffer_id: int | None  # None while swapped out
    num_tokens: int
    final_num_tokens: int
    num_slots: int = 0  # tokens the page groups it needs hold: it grows without mapping up to this


class VAttentionAllocator:
    """Invariant: physical page groups are free, or mapped in exactly one buffer; a live buffer maps at least
    the groups its request needs; mapped groups beyond that, and idle buffers' groups, are the cached ones."""

    attention_kernel = "contiguous"
    block_size = 0
    config_cls = VAttentionConfig

    def __init__(
        self,
        config: VAttentionConfig,
        *,
        model: ModelSpec,
        tp: int,
        capacity_bytes: int,
        swap_space_bytes: int = 0,
    ) -> None:
        self.config = config
        self.mapping = config.mapping
        self.capacity_bytes = capacity_bytes
        self.kv_bytes_per_token = model.kv_bytes_per_token(tp)
        self.max_model_len = model.max_model_len
        self.num_pages_per_group = 2 * model.num_layers
        self.token_bytes_per_layer = self.kv_bytes_per_token // self.num_pages_per_group  # one layer's K
        self.tokens_per_page = config.page_size / self.token_bytes_per_layer  # may be fractional
        self.group_bytes = self.num_pages_per_group * config.page_size
        self.num_groups = capacity_bytes // self.group_bytes
        if self.num_groups == 0:
            raise KvsimError(
                f"vattention: KV capacity {capacity_bytes} bytes holds no page group ({self.num_pages_per_group} "
                f"pages of {format_size(config.page_size)}); pick a smaller page_size or give the model more memory"
            )
        self.name = spec_string("vattention", config, always=("page_size",))
        self.swap_space_bytes, self.swap_used_bytes = swap_space_bytes, 0
        self.seqs: dict[int, _Seq] = {}
        self.buffer_mapped: dict[int, int] = {}  # buffer id -> page groups mapped in it (live or idle)
        self.buffer_needed: dict[int, int] = {}  # live buffer id -> groups its request needs
        self.idle_buffers: dict[int, None] = {}  # buffers of finished requests that keep pages; LIFO reuse
        # buffer id -> mapped groups not needed; oldest first. An OrderedDict: the oldest of a plain dict whose
        # oldest entries keep being deleted is found past their dead slots (vattention:page_size=64KiB on
        # azure-conv: 7.3 to 7.6 s with a dict, 5.7 to 6.3 s with this, beside the other changes of 2026-11-26).
        self._cached_groups: OrderedDict[int, int] = OrderedDict()
        self._next_buffer_id = 0
        self.num_free_groups = self.num_groups
        self.num_cached_groups = 0
        self._num_token_slots = self._num_reserved_slots = self._num_needed_groups = 0
        self._pending_map_s = self._pending_swap_s = 0.0
        self.num_pages_mapped = 0
        # Slots a scheduler took without append_slots: within a sequence's needed page groups and its final
        # length (``growth_room``), so they only turn reserved slots into token states (DESIGN §7b).
        self.num_deferred_tokens = 0
        self.map_charged_s = 0.0  # the mapping time that showed on steps (all of it when synchronous)

    def stats(self) -> dict[str, int | float]:
        """Counters for ``summary.json``'s ``allocator_stats`` (an optional extension of the Protocol): pages
        mapped, their mapping time, and how much of it the steps were charged (overlapped mapping hides the
        rest behind the steps before)."""
        return {
            "num_pages_mapped": self.num_pages_mapped,
            "map_s": self.num_pages_mapped * self.config.map_latency_s,
            "map_charged_s": self.map_charged_s,
        }

    def groups_for(self, num_tokens: int) -> int:
        """Page groups that hold ``num_tokens`` tokens."""
        return -(-num_tokens * self.token_bytes_per_layer // self.config.page_size)

    def tokens_in(self, num_groups: int) -> int:
        """Tokens that ``num_groups`` page groups hold."""
        return num_groups * self.config.page_size // self.token_bytes_per_layer

    # -- the KVAllocator Protocol ------------------------------------------------------------------------

    def rejection_reason(
        self, num_prompt_tokens: int, num_output_tokens: int, num_seqs: int = 1
    ) -> str | None:
        reason = over_context(num_prompt_tokens, num_output_tokens, self.max_model_len)
        if reason is not None:
            return reason
        total = num_prompt_tokens + num_output_tokens
        if self.groups_for(total) > self.num_groups:
            return (
                f"needs {self.groups_for(total)} page groups of {self.tokens_per_page:g} tokens but the "
                f"replica holds only {self.num_groups}"
            )
        # Each fork maps a buffer of its own (no sharing) for its stored tokens: all but the last token's.
        if num_seqs > 1 and num_seqs * self.groups_for(total - 1) > self.num_groups:
            return (
                f"its {num_seqs} parallel sequences need {num_seqs * self.groups_for(total - 1)} page groups "
                f"of {self.tokens_per_page:g} tokens, one buffer each, but the replica holds only "
                f"{self.num_groups}"
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
        if not self._place(seq_id, _Seq(None, num_tokens, final_num_tokens)):
            return None
        return Admission()

    def append_slots(self, seq_id: int, num_new_tokens: int) -> bool:
        seq = self.seqs[seq_id]
        assert seq.buffer_id is not None, f"seq {seq_id} is swapped out"
        num_tokens = seq.num_tokens + num_new_tokens
        if num_tokens <= seq.num_slots:  # fast path (most decode steps): no new page group
            # Reserved slots run up to min(num_slots, final): they shrink by as many as get filled.
            fill_to = seq.final_num_tokens if seq.final_num_tokens < seq.num_slots else seq.num_slots
            if seq.num_tokens < fill_to:
                self._num_reserved_slots -= (num_tokens if num_tokens < fill_to else fill_to) - seq.num_tokens
            self._num_token_slots += num_new_tokens
            seq.num_tokens = num_tokens
            return True
        if num_tokens > self.max_model_len:
            return False
        # Into new page groups: _count(seq, -1), the new length, _count(seq, +1), written out (the decode
        # crossing of every group boundary comes here).
        buffer_id, final = seq.buffer_id, seq.final_num_tokens
        new_groups = self.groups_for(num_tokens)
        if new_groups - self.buffer_needed[buffer_id] > self.num_free_groups + self.num_cached_groups:
            return False
        old_slots, old_tokens = seq.num_slots, seq.num_tokens
        old_hold = final if final < old_slots else old_slots
        slots = seq.num_slots = self.tokens_in(new_groups)
        new_hold = final if final < slots else slots
        self._num_reserved_slots += (
            (new_hold if new_hold > num_tokens else num_tokens)
            - num_tokens
            - ((old_hold if old_hold > old_tokens else old_tokens) - old_tokens)
        )
        self._num_token_slots += num_new_tokens
        seq.num_tokens = num_tokens
        self._set_needed(buffer_id, new_groups)
        return True

    def growth_room(self, seq_id: int) -> int:
        """Slots ``seq_id`` can still gain with no effect but reserved -> token states: within the page groups
        it needs (no page is mapped) and its final length. A scheduler may take them without calling
        ``append_slots``, counting them in ``num_deferred_tokens``."""
        seq = self.seqs[seq_id]
        fill_to = seq.final_num_tokens if seq.final_num_tokens < seq.num_slots else seq.num_slots
        room = fill_to - seq.num_tokens
        return room if room > 0 and seq.buffer_id is not None else 0

    append_decode_slots = append_then_room  # base.py

    def max_uniform_growth(self, seq_ids: Sequence[int], limit: int) -> int:
        """Binary search on k; each probe sums the page groups every listed sequence would add."""
        seqs = [self.seqs[s] for s in seq_ids]
        assert all(s.buffer_id is not None for s in seqs), "max_uniform_growth of a swapped-out sequence"
        limit = min([limit] + [self.max_model_len - s.num_tokens for s in seqs])
        available = self.num_free_groups + self.num_cached_groups
        base = sum(self.groups_for(s.num_tokens) for s in seqs)
        lo, hi = 0, max(0, limit)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if sum(self.groups_for(s.num_tokens + mid) for s in seqs) - base <= available:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def max_overhead_free_growth(self, seq_ids: Sequence[int], limit: int) -> int:
        """How far (0..limit) every listed sequence can grow within the page groups it already needs: no page
        is mapped, so no step is charged, and no group changes hands (a fast-forward window may then append
        the growth later in one call; SchedulerBase.decode_window)."""
        room = limit
        for seq_id in seq_ids:
            seq = self.seqs[seq_id]
            if seq.num_slots - seq.num_tokens < room:
                room = seq.num_slots - seq.num_tokens
        return room if room > 0 else 0

    def fork(self, parent_seq_id: int, child_seq_id: int, *, final_num_tokens: int | None = None) -> bool:
        """A copy into a buffer of its own: mapped pages cannot be shared between virtual buffers here."""
        parent = self.seqs[parent_seq_id]
        assert child_seq_id not in self.seqs and parent.buffer_id is not None
        child = _Seq(None, parent.num_tokens, final_num_tokens or parent.final_num_tokens)
        return self._place(child_seq_id, child)

    def free(self, seq_id: int) -> None:
        seq = self.seqs.pop(seq_id)
        if seq.buffer_id is None:
            self.swap_used_bytes -= seq.num_tokens * self.kv_bytes_per_token
        else:
            self._release(seq)

    def swap_out(self, seq_id: int) -> int | None:
        seq = self.seqs[seq_id]
        num_bytes = seq.num_tokens * self.kv_bytes_per_token
        if seq.buffer_id is None or num_bytes > self.swap_space_bytes - self.swap_used_bytes:
            return None
        self._release(seq)
        self.swap_used_bytes += num_bytes
        self._pending_swap_s += num_bytes / self.config.pcie_bw_bytes_per_s
        return num_bytes

    def can_swap_in(self, seq_ids: Sequence[int], num_lookahead_slots: int) -> bool:
        """Whether ``seq_ids`` (swapped out) can all come back and then each gain ``num_lookahead_slots`` slots
        with the page groups free or cached now (vLLM v0 ``can_swap_in``; an extension of the Protocol): the
        scheduler's probe then runs only when it succeeds. A failed probe would map pages (``num_pages_mapped``,
        ``map_charged_s``) and take groups from other buffers' caches, which swapping out again does not undo;
        and stepping probes at every step where a fast-forward window probes once."""
        seqs = self.seqs
        need = sum(self.groups_for(seqs[s].num_tokens + num_lookahead_slots) for s in seq_ids)
        return need <= self.num_free_groups + self.num_cached_groups

    def swap_in(self, seq_id: int) -> int | None:
        seq = self.seqs[seq_id]
        assert seq.buffer_id is None, f"seq {seq_id} is not swapped out"
        if not self._place(seq_id, seq):
            return None
        num_bytes = seq.num_tokens * self.kv_bytes_per_token
        self.swap_used_bytes -= num_bytes
        self._pending_swap_s += num_bytes / self.config.pcie_bw_bytes_per_s
        return num_bytes

    def take_overhead_s(self, previous_step_s: float = 0.0) -> float:
        """Swap time plus mapping time since the last call; overlapped mapping hides behind
        ``previous_step_s``."""
        map_s = self._pending_map_s
        if self.mapping == "overlapped":
            map_s = max(0.0, map_s - previous_step_s)
        if map_s:
            self.map_charged_s += map_s
        overhead_s = self._pending_swap_s + map_s
        self._pending_map_s = self._pending_swap_s = 0.0
        return overhead_s

    def breakdown(self) -> MemoryBreakdown:
        kvb = self.kv_bytes_per_token
        deferred = self.num_deferred_tokens
        token_states = (self._num_token_slots + deferred) * kvb
        reserved = (self._num_reserved_slots - deferred) * kvb
        internal_frag = self._num_needed_groups * self.group_bytes - token_states - reserved
        return MemoryBreakdown(
            token_states=token_states,
            reserved=reserved,
            internal_frag=internal_frag,
            external_frag=0,
            free=self.capacity_bytes - token_states - reserved - internal_frag,
            cached_bytes=self.num_cached_groups * self.group_bytes,
        )

    def clear_blocked(self) -> None:
        """Nothing to clear: page groups are fungible, so there is no external fragmentation."""

    def check_invariants(self) -> None:
        """O(sequences + buffers), for tests."""
        live = [s for s in self.seqs.values() if s.buffer_id is not None]
        assert sorted(s.buffer_id for s in live) == sorted(self.buffer_needed), "live buffers != live seqs"
        assert not self.idle_buffers.keys() & self.buffer_needed.keys(), "a buffer is both idle and live"
        assert self.buffer_mapped.keys() == self.idle_buffers.keys() | self.buffer_needed.keys()
        cached = {}
        for seq in live:
            needed, mapped = self.buffer_needed[seq.buffer_id], self.buffer_mapped[seq.buffer_id]
            assert needed == self.groups_for(seq.num_tokens) <= mapped, "a buffer maps less than it needs"
            if mapped > needed:
                cached[seq.buffer_id] = mapped - needed
        for buffer_id in self.idle_buffers:
            assert self.buffer_mapped[buffer_id] > 0 and self.config.reuse_pages
            cached[buffer_id] = self.buffer_mapped[buffer_id]
        assert cached == self._cached_groups and sum(cached.values()) == self.num_cached_groups
        assert self.num_free_groups + sum(self.buffer_mapped.values()) == self.num_groups, (
            "a page group leaked"
        )
        assert self.num_free_groups >= 0
        assert sum(self.groups_for(s.num_tokens) for s in live) == self._num_needed_groups
        parts = self.breakdown()
        assert min(parts.as_dict().values()) >= 0 and parts.capacity_bytes == self.capacity_bytes, parts
        assert parts.cached_bytes <= parts.free
        kvb, num_reserved = self.kv_bytes_per_token, 0
        assert sum(s.num_tokens for s in live) == self._num_token_slots, "token counter drifted"
        for seq in live:  # vAttention's bound: internal fragmentation per request < one page group
            assert seq.num_slots == self.tokens_in(self.groups_for(seq.num_tokens))
            will_hold = max(min(seq.num_slots, seq.final_num_tokens), seq.num_tokens)
            num_reserved += will_hold - seq.num_tokens
            assert self.groups_for(seq.num_tokens) * self.group_bytes - will_hold * kvb < self.group_bytes
        assert num_reserved == self._num_reserved_slots, "reserved counter drifted"
        swapped = sum(s.num_tokens for s in self.seqs.values() if s.buffer_id is None) * kvb
        assert swapped == self.swap_used_bytes <= self.swap_space_bytes

    # -- internals ----------------------------------------------------------------------------------------

    def _place(self, seq_id: int, seq: _Seq) -> bool:
        """Give ``seq`` a buffer (an idle one, most recently idled first, when reusing pages) mapping the
        groups it needs; False, changing nothing, if memory is short."""
        needed = self.groups_for(seq.num_tokens)
        if seq.num_tokens > self.max_model_len or needed > self.num_free_groups + self.num_cached_groups:
            return False
        if self.idle_buffers:
            buffer_id, _ = self.idle_buffers.popitem()
        else:
            buffer_id, self._next_buffer_id = self._next_buffer_id, self._next_buffer_id + 1
            self.buffer_mapped[buffer_id] = 0
        seq.buffer_id = buffer_id
        self.seqs[seq_id] = seq
        self.buffer_needed[buffer_id] = 0
        self._count(seq, +1)
        self._set_needed(buffer_id, needed)
        return True

    def _release(self, seq: _Seq) -> None:
        buffer_id, seq.buffer_id = seq.buffer_id, None
        self._count(seq, -1)
        self._set_needed(buffer_id, 0)
        del self.buffer_needed[buffer_id]
        if self.config.reuse_pages and self.buffer_mapped[buffer_id]:
            self.idle_buffers[buffer_id] = None
        else:  # unmap everything now
            mapped = self.buffer_mapped.pop(buffer_id)
            self._uncache(buffer_id, mapped)
            self.num_free_groups += mapped

    def _set_needed(self, buffer_id: int, needed: int) -> None:
        """Make ``buffer_id`` map at least ``needed`` groups: use its own cached groups first, then free
        groups, then groups taken back from other buffers' caches (oldest first), charging the map cost."""
        old_needed = self.buffer_needed[buffer_id]
        self.buffer_needed[buffer_id] = needed
        self._num_needed_groups += needed - old_needed
        mapped = self.buffer_mapped[buffer_id]
        own_cached = mapped - old_needed if mapped > old_needed else 0
        self._uncache(buffer_id, own_cached)
        num_to_map = needed - mapped
        while num_to_map > 0:
            if self.num_free_groups:
                num_taken = min(num_to_map, self.num_free_groups)
                self.num_free_groups -= num_taken
            else:
                # The oldest cache (dict order). Never this buffer's: its own cached groups were all taken
                # above (a buffer caches exactly its mapped groups beyond those needed).
                victim = next(iter(self._cached_groups))
                assert victim != buffer_id, "a buffer's own cached groups are taken first"
                num_taken = min(num_to_map, self._cached_groups[victim])
                self._uncache(victim, num_taken)
                self.buffer_mapped[victim] -= num_taken  # unmapped there, mapped here below
                if not self.buffer_mapped[victim] and victim in self.idle_buffers:
                    del self.idle_buffers[victim]
                    del self.buffer_mapped[victim]
            self.buffer_mapped[buffer_id] += num_taken
            num_to_map -= num_taken
            self.num_pages_mapped += num_taken * self.num_pages_per_group
            self._pending_map_s += num_taken * self.num_pages_per_group * self.config.map_latency_s
        excess = self.buffer_mapped[buffer_id] - needed
        if excess > 0:
            self._cache(buffer_id, excess)

    def _cache(self, buffer_id: int, num_groups: int) -> None:
        self._cached_groups[buffer_id] = self._cached_groups.get(buffer_id, 0) + num_groups
        self.num_cached_groups += num_groups

    def _uncache(self, buffer_id: int, num_groups: int) -> None:
        if num_groups:
            left = self._cached_groups[buffer_id] - num_groups
            if left:
                self._cached_groups[buffer_id] = left  # keeps its place in the oldest-first order
            else:
                del self._cached_groups[buffer_id]
            self.num_cached_groups -= num_groups

    def _count(self, seq: _Seq, sign: int) -> None:
        seq.num_slots = slots = self.tokens_in(self.groups_for(seq.num_tokens))
        will_hold = max(min(slots, seq.final_num_tokens), seq.num_tokens)
        self._num_token_slots += sign * seq.num_tokens
        self._num_reserved_slots += sign * (will_hold - seq.num_tokens)
