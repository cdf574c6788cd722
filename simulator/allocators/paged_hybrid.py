"""vLLM v1's hybrid KV-cache manager (0.34 ``kv_cache_coordinator.py``, ``single_type_kv_cache_manager.py``):
the paged allocator for models with sliding-window layers (DESIGN §3).

The model's layers form KV-cache groups (``kv_groups.py``): full-attention groups and sliding-window groups,
every group's block holding ``block_size`` tokens of ``layers_per_group`` layers, all blocks from one pool. A
request has one block table per group:
- a full-attention group holds ``cdiv(tokens, block_size)`` blocks, as the plain paged allocator;
- a sliding-window group frees, before each allocation, the blocks wholly before token ``computed − window + 1``
  (``SlidingWindowManager.remove_skipped_blocks``: ``get_num_skipped_tokens``), so a request holds at most the
  window plus the partial blocks at its two ends, plus the chunk being computed. Blocks freed by the window
  are free memory, not fragmentation.
Prefix caching: every full block is cached per group (``(group, block hash)``, as vLLM's
``BlockHashWithGroupId``); a hit of ``k`` blocks needs every full-attention group to hold blocks ``0..k-1``
and every window group the ``cdiv(window − 1, block_size)`` blocks before ``k`` (``find_longest_cache_hit``);
the window group takes only those (the skipped ones are vLLM's null blocks).

Accounting (DESIGN §3): ``token_states`` = tokens stored in blocks in use, each at the bytes of its group's
real layers; ``reserved`` = empty slots of the last blocks that the request will fill, in every group;
``internal_frag`` = the rest of the blocks in use (slots past the final length, and the padding layers of a
group with fewer layers than ``layers_per_group``); ``external_frag`` = 0.

Only under ``--scheduler vllm`` (vLLM v0.6.3 had no hybrid manager); no swap (v1 preempts by recompute) and no
parallel sampling (refused). Fast-forward runs one step at a time for these models (run.py), which is exact.
At admission with ``scheduler_reserve_full_isl`` a window group needs, as vLLM 0.34's
``max_admission_blocks_per_request``, ``min(all its blocks, cdiv(min(window − 1 + tokens in flight,
max_model_len), block_size) + 1) − hit blocks``, tokens in flight being the ``vllm`` scheduler's
``max_num_batched_tokens`` (one batch in flight, as the synchronous scheduler; vLLM's async scheduling counts two).
Without a scheduler that sets it, the first chunk's window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat

from kvsim.errors import KvsimError
from kvsim.simulator.allocators.base import Admission, MemoryBreakdown, largest_fitting, over_context
from kvsim.simulator.allocators.block_pool import BlockPool
from kvsim.simulator.allocators.paged import PagedConfig
from kvsim.simulator.allocators.spec import spec_string
from kvsim.simulator.kv_groups import kv_cache_layout
from kvsim.simulator.specs import ModelSpec


@dataclass(slots=True)
class _Seq:
    tables: list[list[int]]  # per group: the blocks held, from logical block index first[g] on
    first: list[int]  # per group: logical index of tables[g][0] (window groups: blocks before were freed)
    num_tokens: int
    final_num_tokens: int
    block_hashes: Sequence[int] = field(default_factory=list)


class HybridPagedAllocator:
    """Invariant (``check_invariants``): ref counts equal the block tables' holdings; each group's table covers
    its logical blocks [first, cdiv(tokens, block_size)); a window group's first block is never wholly before
    the window of the last allocation; the five parts sum to capacity."""

    attention_kernel = "paged"
    admits_like_v1 = True
    config_cls = PagedConfig
    fast_forward = False  # the replica steps one decode step at a time (run.py): exact, without a fast path

    def __init__(
        self,
        config: PagedConfig,
        *,
        model: ModelSpec,
        tp: int,
        capacity_bytes: int,
        swap_space_bytes: int = 0,
    ) -> None:
        if config.evicts:
            raise KvsimError("paged: eviction_budget_blocks with sliding-window layers is not modelled")
        self.config = config
        self.block_size = bs = config.block_size
        self.layout = kv_cache_layout(model, tp, bs)
        self.capacity_bytes = capacity_bytes
        self.kv_bytes_per_token = model.kv_bytes_per_token(tp)
        self.max_model_len = model.max_model_len
        # tokens that may be scheduled before a window block can be freed: the vllm scheduler sets its token
        # budget here (vLLM's max_num_batched_tokens x batches in flight); None: a prompt's first chunk
        self.max_tokens_in_flight: int | None = None
        self.block_bytes = self.layout.block_bytes
        self.num_blocks = capacity_bytes // self.block_bytes
        if self.num_blocks == 0:
            raise KvsimError(
                f"paged: KV capacity {capacity_bytes} bytes holds no block of {self.block_bytes} bytes "
                f"({self.layout.layers_per_group} layers x {bs} tokens); give the model more memory"
            )
        self.name = spec_string("paged", config, always=("block_size",))
        groups = self.layout.groups
        self.num_groups = len(groups)
        # window in tokens per group (0: full attention), and the blocks a window hit must find before it
        self.windows = [g.sliding_window if g.is_window else 0 for g in groups]
        self._full_groups = [g for g, w in enumerate(self.windows) if not w]
        self._window_groups = [g for g, w in enumerate(self.windows) if w]
        # blocks a window hit must find just before its end (vLLM: cdiv(window - 1, block_size)); one window
        self._window_hit_run = max(1, -(-(model.sliding_window - 1) // bs))
        kv_layer = self.layout.kv_bytes_per_token_layer
        self.slot_bytes = [g.num_layers * kv_layer for g in groups]  # one token of one block, real layers
        self.token_bytes = model.num_layers * kv_layer  # one token in every group
        self.pool = BlockPool(self.num_blocks, bs)
        self.block_group = [0] * self.num_blocks  # the group a block in use or cached belongs to
        self.used_tokens = [0] * self.num_groups  # tokens in the blocks in use, per group
        self.seqs: dict[int, _Seq] = {}
        self._reserved = 0  # reserved token slots summed over sequences (each: its last blocks' own)
        self.num_deferred_tokens = 0  # never deferred (no growth_room): kept for the schedulers' bookkeeping
        self.num_cow_copies = 0
        self.num_prefix_query_tokens = self.num_prefix_hit_tokens = 0
        self.num_prefix_query_blocks = self.num_prefix_hit_blocks = 0

    # -- set-up ------------------------------------------------------------------------------------------

    def resolve_for_scheduler(self, scheduler: str) -> None:
        if scheduler != "vllm":
            raise KvsimError(
                f"--scheduler {scheduler}: a model with sliding-window layers needs vLLM v1's hybrid KV-cache "
                "manager (--scheduler vllm); vLLM v0.6.3 and TGI's allocators have none"
            )
        if self.config.enable_prefix_caching is None:
            from dataclasses import replace

            self.config = replace(self.config, enable_prefix_caching=True)
        self.pool.allow_duplicates = True

    @property
    def caches_prefixes(self) -> bool:
        return bool(self.config.enable_prefix_caching)

    def rejection_reason(
        self, num_prompt_tokens: int, num_output_tokens: int, num_seqs: int = 1
    ) -> str | None:
        """``num_seqs`` is not looked at: parallel sequences are refused at their fork (``fork``)."""
        total = num_prompt_tokens + num_output_tokens
        reason = over_context(num_prompt_tokens, num_output_tokens, self.max_model_len)
        if reason is not None:
            return reason
        bs, n = self.block_size, -(-total // self.block_size)
        need = sum(min(n, -(-(w - 1) // bs) + 2) if w else n for w in self.windows)
        if need > self.num_blocks:
            return f"needs {need} blocks of {bs} tokens (all KV-cache groups) but the replica holds {self.num_blocks}"
        return None

    # -- admission ---------------------------------------------------------------------------------------

    def lookup_prefix(self, block_hashes: Sequence[int], num_tokens: int) -> int:
        if not self.config.enable_prefix_caching:
            return 0
        return self._num_hit_blocks(block_hashes, num_tokens) * self.block_size

    def _num_hit_blocks(self, block_hashes: Sequence[int], num_tokens: int) -> int:
        """The most leading blocks found in every group (never the last token: it must be computed): the
        full-attention groups' common prefix, then the rightmost end within it of ``hit_run`` blocks cached in
        every window group (or the run from block 0, shorter than that)."""
        cached = self.pool.hash_to_block
        k = min((num_tokens - 1) // self.block_size, len(block_hashes))
        for g in self._full_groups:
            for i in range(k):
                if (g, block_hashes[i]) not in cached:
                    k = i
                    break
        if not self._window_groups or k == 0:
            return k
        hashes = block_hashes[:k]
        present = None  # per block: 1 if every window group caches it
        for g in self._window_groups:
            flags = bytes(map(cached.__contains__, zip(repeat(g), hashes)))
            present = flags if present is None else bytes(map(min, present, flags))
        need = self._window_hit_run
        end = present.rfind(b"\x01" * need)
        if end >= 0:
            return end + need
        leading = present.find(b"\x00")
        return k if leading < 0 else leading

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
        assert seq_id not in self.seqs and num_tokens > 0
        bs, pool = self.block_size, self.pool
        if not self.config.enable_prefix_caching or block_hashes is None:
            block_hashes = []
        k = self._num_hit_blocks(block_hashes, num_full_tokens or num_tokens) if block_hashes else 0
        hits = [self._hit_blocks(g, block_hashes, k) for g in range(self.num_groups)]
        num_revived = sum(1 for blocks in hits for b in blocks if pool.ref_cnt[b] == 0)
        num_free = pool.num_free_blocks - num_watermark_blocks
        if num_full_tokens is not None:
            full_blocks = -(-num_full_tokens // bs)
            full_need = full_blocks - k
            in_flight = self.max_tokens_in_flight
            if in_flight is None:  # a window group: the blocks of the first chunk's window
                window_need = [-(-(w - 1 + num_tokens - k * bs) // bs) + 1 for w in self.windows]
            else:  # vLLM 0.34: min(all blocks, cdiv(min(w - 1 + in flight, max_model_len)) + 1) - hits
                window_need = [
                    max(min(full_blocks, -(-min(w - 1 + in_flight, self.max_model_len) // bs) + 1) - k, 0)
                    for w in self.windows
                ]
            need = sum(
                min(full_need, window_need[g]) if w else full_need for g, w in enumerate(self.windows)
            )
            if need + num_revived > num_free:
                return None
        num_new = (-(-num_tokens // bs) - k) * self.num_groups
        if num_new + num_revived > num_free:
            return None
        seq = _Seq(tables=[], first=[], num_tokens=k * bs, final_num_tokens=final_num_tokens)
        seq.block_hashes = block_hashes
        for g, blocks in enumerate(hits):
            for b in blocks:
                if pool.ref_cnt[b] == 0:
                    self.used_tokens[g] += bs
                pool.touch(b)
            seq.tables.append(list(blocks))
            seq.first.append(k - len(blocks))
        if self.config.enable_prefix_caching:
            num_query_tokens = num_full_tokens or num_tokens
            self.num_prefix_query_tokens += num_query_tokens
            self.num_prefix_hit_tokens += k * bs
            self.num_prefix_query_blocks += num_query_tokens // bs
            self.num_prefix_hit_blocks += k
        self.seqs[seq_id] = seq
        self._grow(seq, num_tokens - seq.num_tokens)
        return Admission(num_cached_tokens=k * bs)

    def _hit_blocks(self, g: int, block_hashes: Sequence[int], k: int) -> list[int]:
        """The cached blocks group ``g`` takes for a hit of ``k`` blocks: all of them, or those in the window."""
        start = 0
        if self.windows[g]:
            start = max(0, k * self.block_size - self.windows[g] + 1) // self.block_size
        return [self.pool.hash_to_block[(g, block_hashes[i])] for i in range(start, k)]

    # -- growth ------------------------------------------------------------------------------------------

    def append_slots(self, seq_id: int, num_new_tokens: int) -> bool:
        seq = self.seqs[seq_id]
        self._drop_out_of_window(seq)
        if self._num_new_blocks(seq, num_new_tokens) > self.pool.num_free_blocks:
            return False
        if num_new_tokens:
            self._grow(seq, num_new_tokens)
        return True

    def max_uniform_growth(self, seq_ids: Sequence[int], limit: int, upto: int | None = None) -> int:
        """The largest k <= limit such that every listed sequence grows by k, window blocks dropped first, with
        the blocks free now (one step at a time is what the schedulers ask of this allocator)."""
        free = self.pool.num_free_blocks
        seqs = [self.seqs[s] for s in seq_ids]

        def fits(k: int) -> bool:
            need = 0
            for seq in seqs:
                need += self._num_new_blocks(seq, k) - self._num_out_of_window(seq)
            return need <= free

        return largest_fitting(limit if upto is None else min(limit, upto), fits)

    def _num_out_of_window(self, seq: _Seq) -> int:
        """Unshared blocks the next allocation frees (vLLM frees them before it allocates)."""
        count = 0
        for g, w in enumerate(self.windows):
            if w:
                skip = max(0, seq.num_tokens - w + 1) // self.block_size
                count += sum(
                    1 for b in seq.tables[g][: max(0, skip - seq.first[g])] if self.pool.ref_cnt[b] == 1
                )
        return count

    def _num_new_blocks(self, seq: _Seq, num_new_tokens: int) -> int:
        """Blocks the groups need for ``num_new_tokens`` more tokens (after the window's blocks are dropped)."""
        bs = self.block_size
        end = -(-(seq.num_tokens + num_new_tokens) // bs)
        need = 0
        for g, w in enumerate(self.windows):
            held_end = seq.first[g] + len(seq.tables[g])
            if w:
                held_end = max(held_end, max(0, seq.num_tokens - w + 1) // bs)
            need += max(0, end - held_end)
        return need

    def _drop_out_of_window(self, seq: _Seq) -> None:
        """Free each window group's blocks wholly before token ``computed − window + 1``."""
        bs = self.block_size
        for g, w in enumerate(self.windows):
            if not w:
                continue
            skip = max(0, seq.num_tokens - w + 1) // bs
            num_drop = min(len(seq.tables[g]), skip - seq.first[g])
            if num_drop > 0:
                dropped, seq.tables[g] = seq.tables[g][:num_drop], seq.tables[g][num_drop:]
                seq.first[g] += num_drop
                self._release(g, dropped)
            elif not seq.tables[g] and skip > seq.first[g]:
                seq.first[g] = skip

    def _release(self, g: int, blocks: list[int]) -> None:
        """Drop one reference to each (last first, as vLLM frees a request); those no longer in use leave
        the group's token count (read before the pool clears an uncached block's fill)."""
        pool = self.pool
        filled = [pool.num_filled[b] for b in blocks]
        pool.free_blocks(blocks[::-1])
        self.used_tokens[g] -= sum(n for b, n in zip(blocks, filled) if pool.ref_cnt[b] == 0)

    def _grow(self, seq: _Seq, num_new_tokens: int) -> None:
        """Store ``num_new_tokens`` more tokens in every group (capacity checked); cache newly full blocks."""
        pool, bs = self.pool, self.block_size
        old_tokens = seq.num_tokens
        new_tokens = old_tokens + num_new_tokens
        self._reserved -= self._seq_reserved(seq)
        for g in range(self.num_groups):
            table = seq.tables[g]
            if (
                self.windows[g] and not table
            ):  # every block dropped: the window restarts at the block of old_tokens
                seq.first[g] = max(seq.first[g], old_tokens // bs)
            filled_from = old_tokens
            if table and pool.num_filled[table[-1]] < bs:
                last = table[-1]
                num_fill = min(new_tokens, (seq.first[g] + len(table)) * bs) - old_tokens
                pool.set_filled(last, pool.num_filled[last] + num_fill)
                self.used_tokens[g] += num_fill
                filled_from += num_fill
            elif not table:
                filled_from = seq.first[g] * bs  # a fresh window group starts at a block boundary
            remaining = new_tokens - max(filled_from, seq.first[g] * bs + len(table) * bs)
            if remaining > 0:
                new_blocks = pool.get_new_blocks(-(-remaining // bs))
                pool.fill_new_blocks(new_blocks, remaining)
                for b in new_blocks:
                    self.block_group[b] = g
                self.used_tokens[g] += remaining
                table += new_blocks
            first_full, num_full = old_tokens // bs, new_tokens // bs
            for idx in range(max(first_full, seq.first[g]), min(num_full, len(seq.block_hashes))):
                pool.cache_block(table[idx - seq.first[g]], (g, seq.block_hashes[idx]))
        seq.num_tokens = new_tokens
        self._reserved += self._seq_reserved(seq)

    def _seq_reserved(self, seq: _Seq) -> int:
        empty = -seq.num_tokens % self.block_size
        return max(0, min(empty, seq.final_num_tokens - seq.num_tokens))

    # -- release -----------------------------------------------------------------------------------------

    def fork(self, parent_seq_id: int, child_seq_id: int, *, final_num_tokens: int | None = None) -> bool:
        raise KvsimError(
            "parallel sampling (n > 1) or beam search with sliding-window layers is not modelled"
        )

    def free(self, seq_id: int) -> None:
        seq = self.seqs.pop(seq_id)
        self._reserved -= self._seq_reserved(seq)
        for g, table in enumerate(seq.tables):
            self._release(g, table)

    def swap_out(self, seq_id: int) -> int | None:
        return None  # vLLM v1 preempts by recompute

    def swap_in(self, seq_id: int) -> int | None:
        return None

    def take_overhead_s(self, previous_step_s: float = 0.0) -> float:
        return 0.0

    def clear_blocked(self) -> None:
        """Nothing to clear: paged memory has no external fragmentation."""

    # -- accounting --------------------------------------------------------------------------------------

    def breakdown(self) -> MemoryBreakdown:
        token_states = sum(n * b for n, b in zip(self.used_tokens, self.slot_bytes))
        reserved = self._reserved * self.token_bytes
        in_use = self.pool.num_used_blocks * self.block_bytes
        return MemoryBreakdown(
            token_states=token_states,
            reserved=reserved,
            internal_frag=in_use - token_states - reserved,
            external_frag=0,
            free=self.capacity_bytes - in_use,
            cached_bytes=self.pool.num_cached_free_blocks * self.block_bytes,
        )

    def free_bytes(self) -> int:
        return self.capacity_bytes - self.pool.num_used_blocks * self.block_bytes

    def prefix_cache_counts(self) -> tuple[int, int, int, int, int] | None:
        if not self.config.enable_prefix_caching:
            return None
        return (
            self.num_prefix_query_tokens,
            self.num_prefix_hit_tokens,
            self.num_prefix_query_blocks,
            self.num_prefix_hit_blocks,
            self.pool.num_evictions,
        )

    def check_invariants(self) -> None:
        """O(blocks + sequences), for tests: the class docstring's claims and DESIGN §3's sums."""
        bs, pool = self.block_size, self.pool
        expected = [0] * pool.num_blocks
        for seq in self.seqs.values():
            end = -(-seq.num_tokens // bs)
            for g, table in enumerate(seq.tables):
                assert seq.first[g] + len(table) == end or not table, "a table does not reach the last token"
                if not self.windows[g]:
                    assert seq.first[g] == 0 and len(table) == end
                for b in table:
                    expected[b] += 1
                    assert self.block_group[b] == g
        pool.check_invariants(expected)
        recount = [0] * self.num_groups
        for b in range(pool.num_blocks):
            if pool.ref_cnt[b]:
                recount[self.block_group[b]] += pool.num_filled[b]
        assert recount == self.used_tokens, (recount, self.used_tokens)
        parts = self.breakdown()
        assert min(parts.as_dict().values()) >= 0 and parts.capacity_bytes == self.capacity_bytes, parts
