"""vLLM's PagedAttention allocator (Kwon et al., SOSP'23): fixed-size blocks allocated on demand.

Each sequence has a ``block_table`` (logical block idx -> physical block id). Forks (parallel samples, beam
search) share blocks by ref count; the shared last, partial block is copied when a child appends to it
(copy-on-write). With ``enable_prefix_caching``, full prompt blocks are registered under a chained hash and
reused by later prompts; unreferenced cached blocks stay in memory (free + ``cached_bytes``) until evicted LRU.

Prefix hashes: see ``block_pool.prompt_block_hashes``. As in vLLM, a prompt never hits on its last token (it
must be computed to give the first output's logits), so at most ``(num_tokens - 1) // block_size`` blocks hit.

Accounting (DESIGN §3): ``token_states`` = tokens stored in blocks in use, each shared block once; only a
sequence's last block can be partly empty, and its empty slots are ``reserved`` up to the sequence's final
length and ``internal_frag`` beyond it; ``external_frag`` = 0. All counters are kept incrementally, so every
call is O(blocks touched) and ``breakdown`` is O(1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kvsim.errors import KvsimError
from kvsim.simulator.allocators.base import Admission, MemoryBreakdown
from kvsim.simulator.allocators.block_pool import BlockPool, prompt_block_hashes
from kvsim.simulator.allocators.paged_base import PagedBase
from kvsim.simulator.allocators.paged_checks import check_paged_invariants
from kvsim.simulator.allocators.paged_growth import PagedGrowthMixin
from kvsim.simulator.specs import ModelSpec

# Host <-> GPU copy bandwidth for swapping: PCIe 4.0 x16, 64 GB/s bidirectional = 32 GB/s per direction
# (NVIDIA A100 datasheet, "PCIe Gen4: 64GB/s"). Achieved copies are lower; calibration may replace it.
PCIE_BW_BYTES_PER_S = 32e9


EVICTION_POLICIES = ("oldest",)


@dataclass(frozen=True)
class PagedConfig:
    block_size: int = 16  # tokens per block (vLLM default)
    # None: the scheduler's default (``vllm``, v1: on; ``vllm-v0`` and the others: off); see resolve_prefix_caching
    enable_prefix_caching: bool | None = None
    pcie_bw_bytes_per_s: float = PCIE_BW_BYTES_PER_S
    # PagedEviction (paged_eviction.py): each sequence keeps at most this many blocks; 0 = no eviction.
    eviction_budget_blocks: int = 0
    eviction_protected_blocks: int = 1  # leading blocks never evicted (the attention sink)
    eviction_policy: str = "oldest"  # which full block goes: the oldest after the protected ones

    def __post_init__(self) -> None:
        if self.block_size <= 0:
            raise KvsimError(f"paged: block_size must be a positive number of tokens, got {self.block_size}")
        if self.pcie_bw_bytes_per_s <= 0:
            raise KvsimError(f"paged: pcie_bw_bytes_per_s must be positive, got {self.pcie_bw_bytes_per_s}")
        if self.eviction_budget_blocks < 0 or self.eviction_protected_blocks < 0:
            raise KvsimError(
                "paged: eviction_budget_blocks and eviction_protected_blocks must be >= 0 "
                f"(0 budget: no eviction), got {self.eviction_budget_blocks}, {self.eviction_protected_blocks}"
            )
        if self.eviction_budget_blocks:
            if self.eviction_budget_blocks <= self.eviction_protected_blocks:
                raise KvsimError(
                    f"paged: eviction_budget_blocks {self.eviction_budget_blocks} leaves no block to evict "
                    f"after {self.eviction_protected_blocks} protected; raise it above "
                    "eviction_protected_blocks"
                )
            if self.enable_prefix_caching:
                raise KvsimError(
                    "paged: eviction with enable_prefix_caching is not modelled (evicting a shared cached "
                    "prompt block); drop one of them"
                )
        if self.eviction_policy not in EVICTION_POLICIES:
            raise KvsimError(
                f"paged: unknown eviction_policy {self.eviction_policy!r}; choose one of "
                f"{', '.join(EVICTION_POLICIES)} (value norms, the paper's score, cannot be simulated)"
            )

    @property
    def evicts(self) -> bool:
        return self.eviction_budget_blocks > 0


@dataclass(slots=True)
class _Seq:
    block_table: list[int]  # logical block idx -> physical block id; empty while swapped out
    num_tokens: int
    final_num_tokens: int
    block_hashes: list[int] = field(default_factory=list)  # hashes of the full prompt blocks, in order
    num_swapped_blocks: int = 0  # > 0 while the sequence lives in CPU swap space


class PagedAllocator(PagedBase, PagedGrowthMixin):
    """Invariant (``check_invariants``): ref_cnt[b] equals the number of block tables holding b; every
    block is in use, clean-free or cached-free, never two; the five parts sum to capacity."""

    config_cls = PagedConfig

    def __init__(
        self,
        config: PagedConfig,
        *,
        model: ModelSpec,
        tp: int,
        capacity_bytes: int,
        swap_space_bytes: int = 0,
    ) -> None:
        super().__init__(
            config, model=model, tp=tp, capacity_bytes=capacity_bytes, swap_space_bytes=swap_space_bytes
        )
        self.pool = BlockPool(self.num_blocks, self.block_size)
        self._lookup = (None, 0, ())  # the last lookup_prefix: (block_hashes, num_tokens, hit block ids)
        self.seqs: dict[int, _Seq] = {}
        # Partly filled last blocks: block id -> seq_ids whose last block it is (several after a fork), and
        # the slots of it counted as reserved. Only these blocks have empty slots.
        self._partial_sharers: dict[int, list[int]] = {}
        self._partial_reserved: dict[int, int] = {}
        self._num_reserved_slots = 0
        # Decode slots a scheduler has counted but not yet passed to append_slots, each within its sequence's
        # growth_room: such a slot only turns a reserved slot into a token state, so breakdown() adds them
        # here instead of the scheduler making one call per sequence per step (DESIGN §7b).
        self.num_deferred_tokens = 0
        # Prefix-cache counters over admissions (vLLM v1's PrefixCacheStats counts tokens, v0's hit rate
        # blocks): tokens admitted and those found cached; full blocks of them and those found cached.
        self.num_prefix_query_tokens = self.num_prefix_hit_tokens = 0
        self.num_prefix_query_blocks = self.num_prefix_hit_blocks = 0

    # -- the KVAllocator Protocol ------------------------------------------------------------------------

    @property
    def caches_prefixes(self) -> bool:
        return bool(self.config.enable_prefix_caching)

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
        """The Protocol's ``allocate``, plus v1's admission (extensions, ``vllm`` scheduler): ``block_hashes``,
        the identities of every full block of the request (prompt and generated tokens; replaces
        ``prefix_block_hashes``); ``num_full_tokens``, its whole (re)prefill, which caps the prefix hit and must
        fit in whole (``scheduler_reserve_full_isl``), though only ``num_tokens`` slots (hit + first chunk) are
        allocated; ``num_watermark_blocks`` more blocks must stay free (vLLM ``allocate_slots``)."""
        assert seq_id not in self.seqs, f"seq {seq_id} allocated twice"
        assert num_tokens > 0
        pool, bs = self.pool, self.block_size
        if block_hashes is None:
            block_hashes = []
            if self.config.enable_prefix_caching and prefix_block_hashes:
                block_hashes = prompt_block_hashes(prefix_block_hashes, num_prompt_tokens or num_tokens, bs)
        elif not self.config.enable_prefix_caching:
            block_hashes = []
        hits = self._find_hits(block_hashes, num_full_tokens or num_tokens) if block_hashes else []
        self._lookup = (None, 0, ())
        num_revived = sum(1 for b in hits if pool.ref_cnt[b] == 0) if hits else 0
        num_free = pool.num_free_blocks - num_watermark_blocks
        if num_full_tokens is not None and -(-num_full_tokens // bs) - len(hits) + num_revived > num_free:
            return None
        num_new = -(-num_tokens // bs) - len(hits)
        if num_new + num_revived > num_free:
            return None
        for block_id in hits:
            pool.touch(block_id)
        if self.config.enable_prefix_caching:  # counted at admission, the whole (re)prefill as vLLM counts it
            num_query_tokens = num_full_tokens or num_tokens
            self.num_prefix_query_tokens += num_query_tokens
            self.num_prefix_hit_tokens += len(hits) * bs
            self.num_prefix_query_blocks += num_query_tokens // bs
            self.num_prefix_hit_blocks += len(hits)
        seq = _Seq(
            block_table=list(hits),
            num_tokens=len(hits) * bs,
            final_num_tokens=final_num_tokens,
            block_hashes=block_hashes,
        )
        self.seqs[seq_id] = seq
        self._grow(seq_id, seq, num_tokens - seq.num_tokens)
        return Admission(num_cached_tokens=len(hits) * bs)

    def lookup_prefix(self, block_hashes: Sequence[int], num_tokens: int) -> int:
        """Tokens of a request's first ``num_tokens`` found in the prefix cache, in full blocks, never the last
        token (vLLM ``get_computed_blocks``: a fully cached prompt recomputes its last block). Changes nothing."""
        if not self.config.enable_prefix_caching:
            return 0
        return len(self._find_hits(block_hashes, num_tokens)) * self.block_size

    def _find_hits(self, block_hashes: Sequence[int], num_tokens: int) -> list[int]:
        last_hashes, last_num_tokens, last_hits = self._lookup
        if block_hashes is last_hashes and num_tokens == last_num_tokens:
            # lookup_prefix just ran for this admission, and nothing has changed the pool since
            return last_hits
        hits, lookup = [], self.pool.hash_to_block.get
        for block_hash in block_hashes[: (num_tokens - 1) // self.block_size]:
            block_id = lookup(block_hash)
            if block_id is None:
                break
            hits.append(block_id)
        self._lookup = (block_hashes, num_tokens, hits)
        return hits

    def append_slots(self, seq_id: int, num_new_tokens: int) -> bool:
        seq = self.seqs[seq_id]
        assert not seq.num_swapped_blocks, f"seq {seq_id} is swapped out"
        pool, table, bs = self.pool, seq.block_table, self.block_size
        last = table[-1]
        num_filled_before = pool.num_filled[last]
        num_filled = num_filled_before + num_new_tokens
        # Fast paths for decode steps: (1) the tokens fit in the last block, which is partial and unshared
        # (so it has a _partial_reserved entry); (2) the last block is full and the tokens open one new
        # block. Anything else takes _grow.
        if num_filled_before < bs and num_filled <= bs and pool.ref_cnt[last] == 1:
            pool.num_filled[last] = num_filled
            pool.num_used_tokens += num_new_tokens
            seq.num_tokens += num_new_tokens
            if num_filled == bs:  # the block is full now: no empty slots, maybe a prefix-cache entry
                self._num_reserved_slots -= self._partial_reserved.pop(last)
                del self._partial_sharers[last]
                if len(table) <= len(seq.block_hashes):
                    pool.cache_block(last, seq.block_hashes[len(table) - 1])
            else:  # inline _set_partial_reserved: this line runs on most decode steps
                num_reserved = seq.final_num_tokens - seq.num_tokens
                if num_reserved > bs - num_filled:
                    num_reserved = bs - num_filled
                if num_reserved < 0:
                    num_reserved = 0
                self._num_reserved_slots += num_reserved - self._partial_reserved[last]
                self._partial_reserved[last] = num_reserved
            return True
        if 0 < num_new_tokens <= bs == num_filled_before:
            if not pool.free_block_ids and not pool.cached_free_blocks:
                return False
            block = pool.get_new_block()
            pool.num_filled[block] = num_new_tokens
            pool.num_used_tokens += num_new_tokens
            seq.num_tokens += num_new_tokens
            table.append(block)
            if num_new_tokens < bs:
                self._partial_sharers[block] = [seq_id]
                self._partial_reserved[block] = 0
                self._set_partial_reserved(block, seq, bs - num_new_tokens)
            elif len(table) <= len(seq.block_hashes):
                pool.cache_block(block, seq.block_hashes[len(table) - 1])
            return True
        if num_new_tokens > 0 and pool.ref_cnt[last] == 1 and len(table) > len(seq.block_hashes):
            return self._grow_unshared(seq_id, seq, num_new_tokens)
        if self._num_new_blocks(seq, num_new_tokens) > pool.num_free_blocks:
            return False
        if num_new_tokens:
            self._grow(seq_id, seq, num_new_tokens)
        return True

    def _set_partial_reserved(self, block_id: int, seq: _Seq, num_empty: int) -> None:
        """Reserved slots of an unshared partial last block: the empty ones its sequence will still fill."""
        num_reserved = seq.final_num_tokens - seq.num_tokens
        if num_reserved > num_empty:
            num_reserved = num_empty
        if num_reserved < 0:
            num_reserved = 0
        self._num_reserved_slots += num_reserved - self._partial_reserved[block_id]
        self._partial_reserved[block_id] = num_reserved

    def fork(self, parent_seq_id: int, child_seq_id: int, *, final_num_tokens: int | None = None) -> bool:
        parent = self.seqs[parent_seq_id]
        assert child_seq_id not in self.seqs and not parent.num_swapped_blocks
        for block_id in parent.block_table:
            self.pool.share(block_id)
        child = _Seq(
            block_table=list(parent.block_table),
            num_tokens=parent.num_tokens,
            final_num_tokens=final_num_tokens or parent.final_num_tokens,
            block_hashes=parent.block_hashes,
        )
        self.seqs[child_seq_id] = child
        self._attach_last(child_seq_id, child)
        return True

    def free(self, seq_id: int) -> None:
        seq = self.seqs.pop(seq_id)
        if seq.num_swapped_blocks:
            self.num_cpu_blocks_used -= seq.num_swapped_blocks
            return
        self._detach_last(seq_id, seq)
        # Last block first, so that a prompt's early (most shareable) blocks are the last to be evicted.
        self.pool.free_blocks(seq.block_table[::-1])

    def swap_out(self, seq_id: int) -> int | None:
        seq = self.seqs[seq_id]
        num_blocks = len(seq.block_table)
        if seq.num_swapped_blocks or num_blocks > self.num_cpu_blocks - self.num_cpu_blocks_used:
            return None
        self._detach_last(seq_id, seq)
        self.pool.free_blocks(seq.block_table[::-1])
        seq.block_table = []
        seq.num_swapped_blocks = num_blocks
        self.num_cpu_blocks_used += num_blocks
        return self._charge_transfer(num_blocks * self.block_bytes)

    def can_swap_in(self, seq_ids: Sequence[int], num_lookahead_slots: int) -> bool:
        """Whether ``seq_ids`` (swapped out) can all come back and then each gain ``num_lookahead_slots`` slots
        with the blocks free now (vLLM v0 ``can_swap_in``; an extension of the Protocol): the scheduler's
        probe then changes nothing when it would fail. A failed swap-in would have taken blocks from the
        prefix cache, evicting cached blocks that swapping out again does not bring back."""
        bs = self.block_size
        need = sum(-(-(self.seqs[s].num_tokens + num_lookahead_slots) // bs) for s in seq_ids)
        return need <= self.pool.num_free_blocks

    def swap_in(self, seq_id: int) -> int | None:
        seq = self.seqs[seq_id]
        num_blocks = seq.num_swapped_blocks
        assert num_blocks, f"seq {seq_id} is not swapped out"
        if num_blocks > self.pool.num_free_blocks:
            return None
        seq.num_swapped_blocks = 0
        self.num_cpu_blocks_used -= num_blocks
        num_tokens, seq.num_tokens = seq.num_tokens, 0
        self._grow(seq_id, seq, num_tokens)
        return self._charge_transfer(num_blocks * self.block_bytes)

    def breakdown(self) -> MemoryBreakdown:
        num_tokens = self.pool.num_used_tokens + self.num_deferred_tokens
        token_states = num_tokens * self.kv_bytes_per_token
        num_empty_slots = self.pool.num_used_blocks * self.block_size - num_tokens
        reserved = (self._num_reserved_slots - self.num_deferred_tokens) * self.kv_bytes_per_token
        internal_frag = num_empty_slots * self.kv_bytes_per_token - reserved
        return MemoryBreakdown(
            token_states=token_states,
            reserved=reserved,
            internal_frag=internal_frag,
            external_frag=0,
            free=self.capacity_bytes - token_states - reserved - internal_frag,
            cached_bytes=self.pool.num_cached_free_blocks * self.block_bytes,
        )

    def prefix_cache_counts(self) -> tuple[int, int, int, int, int] | None:
        """The prefix cache's counters so far, in ``recorder.PREFIX_CACHE_COUNTS`` order (tokens queried and
        hit, full blocks queried and hit, cached blocks evicted to serve allocations); None without prefix
        caching. Queried: the (re)prefill's tokens at each admission, as vLLM counts them."""
        if not self.config.enable_prefix_caching:
            return None
        return (
            self.num_prefix_query_tokens,
            self.num_prefix_hit_tokens,
            self.num_prefix_query_blocks,
            self.num_prefix_hit_blocks,
            self.pool.num_evictions,
        )

    def free_bytes(self) -> int:
        """``breakdown().free`` without building the breakdown (the watermark check asks on every admission):
        capacity minus the blocks in use, as the five parts reduce to (exact integers)."""
        return self.capacity_bytes - self.pool.num_used_blocks * self.block_bytes

    def check_invariants(self) -> None:
        """O(blocks + sequences), for tests: every claim of the class docstring and of DESIGN §3."""
        check_paged_invariants(self)

    # -- internals ----------------------------------------------------------------------------------------

    def _num_new_blocks(self, seq: _Seq, num_new_tokens: int) -> int:
        last = seq.block_table[-1]
        cow = (
            num_new_tokens > 0
            and self.pool.num_filled[last] < self.block_size
            and self.pool.ref_cnt[last] > 1
        )
        return -(-(seq.num_tokens + num_new_tokens) // self.block_size) - len(seq.block_table) + cow

    def _grow(self, seq_id: int, seq: _Seq, num_new_tokens: int) -> None:
        """Store ``num_new_tokens`` more tokens (capacity already checked): copy a shared partial last block,
        fill the last block, then new blocks; register newly full prompt blocks in the prefix cache."""
        pool, bs, table = self.pool, self.block_size, seq.block_table
        if table:
            self._detach_last(seq_id, seq)
            last = table[-1]
            if pool.num_filled[last] < bs and pool.ref_cnt[last] > 1:  # copy-on-write
                copy = pool.get_new_block()
                pool.set_filled(copy, pool.num_filled[last])
                pool.free_block(last)
                self._refresh_partial(last)
                table[-1] = copy
                self.num_cow_copies += 1
        remaining, first_new_full = num_new_tokens, len(table)
        if table and pool.num_filled[table[-1]] < bs:  # top up the partial last block
            num_fill = min(remaining, bs - pool.num_filled[table[-1]])
            pool.set_filled(table[-1], pool.num_filled[table[-1]] + num_fill)
            remaining -= num_fill
            first_new_full -= pool.num_filled[table[-1]] == bs
        if remaining:
            new_blocks = pool.get_new_blocks(-(-remaining // bs))
            pool.fill_new_blocks(new_blocks, remaining)
            table += new_blocks
        num_full = len(table) - (pool.num_filled[table[-1]] < bs)
        for idx in range(first_new_full, min(num_full, len(seq.block_hashes))):
            pool.cache_block(table[idx], seq.block_hashes[idx])
        seq.num_tokens += num_new_tokens
        self._attach_last(seq_id, seq)

    def _detach_last(self, seq_id: int, seq: _Seq) -> None:
        sharers = self._partial_sharers.get(seq.block_table[-1]) if seq.block_table else None
        if sharers is not None:
            sharers.remove(seq_id)
            self._refresh_partial(seq.block_table[-1])

    def _attach_last(self, seq_id: int, seq: _Seq) -> None:
        last = seq.block_table[-1]
        if self.pool.num_filled[last] < self.block_size:
            self._partial_sharers.setdefault(last, []).append(seq_id)
            self._refresh_partial(last)

    def _refresh_partial(self, block_id: int) -> None:
        """Recount a partial block's reserved slots: the empty ones that some sharer will still fill."""
        self._num_reserved_slots -= self._partial_reserved.pop(block_id, 0)
        sharers = self._partial_sharers.get(block_id)
        if not sharers:
            self._partial_sharers.pop(block_id, None)
            return
        will_fill = max(self.seqs[s].final_num_tokens - self.seqs[s].num_tokens for s in sharers)
        num_reserved = max(0, min(self.block_size - self.pool.num_filled[block_id], will_fill))
        self._partial_reserved[block_id] = num_reserved
        self._num_reserved_slots += num_reserved
