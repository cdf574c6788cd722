"""``ProfileCostModel``: the ``CostModel`` Protocol over a profile's terms, for one model and TP degree.

``step_time`` is called ~100k times per simulated run, so everything that depends only on the model, the TP
degree and the profile is folded into per-token coefficients at construction: the hot path does a handful of
float multiply-adds and no dict lookups by string.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from itertools import repeat

import numpy as np

from kvsim.errors import KvsimError
from kvsim.simulator.batch import Batch, StepTime
from kvsim.simulator.cost.layer_kinds import ArchitectureGemms, windowed_prefill_layer_s
from kvsim.simulator.cost.profile import GEMM_OPS, LAYER_OPS, Profile, Term, ramp_knees
from kvsim.simulator.cost.work import (
    GemmShape,
    causal_attended_pairs,
    elementwise_bytes_per_token,
    kv_bytes_per_token_layer,
    kv_write_bytes_per_token,
    layer_gemm_shapes,
    lm_head_shape,
    prefill_attn_bytes,
    prefill_attn_flops,
    sampling_bytes_per_seq,
)
from kvsim.simulator.specs import ModelSpec

# ``sampling`` argument -> the profile term that times it
SAMPLING_TERMS = {"greedy": "sampling", "top_p": "sampling_top_p"}


class _Gemm:
    """One GEMM's cost in the step's token count ``t``: ``const + max(flop_s·t, byte0_s + byte_s·t)``."""

    __slots__ = ("byte0_s", "byte_s", "const_s", "flop_s")

    def __init__(self, term: Term, shape: GemmShape, dtype_bytes: int) -> None:
        p = term.params
        self.const_s = p["const_s"]
        self.flop_s = p["s_per_flop"] * (2 * shape.k * shape.n)  # seconds per token, compute bound
        self.byte0_s = p["s_per_byte"] * (dtype_bytes * shape.k * shape.n)  # weights, once per step
        self.byte_s = p["s_per_byte"] * (dtype_bytes * (shape.k + shape.n))  # activations, per token

    def __call__(self, num_tokens: int) -> float:
        return self.const_s + max(self.flop_s * num_tokens, self.byte0_s + self.byte_s * num_tokens)


class ProfileCostModel:
    """Step time from a profile (DESIGN §5). Invariant: ``decode_step_times(b, k)[i]`` equals
    ``step_time(<b advanced i decode steps>).total_s`` bit for bit (same operations in the same order)."""

    # The engine may time a one-step decode window with step_time alone (no arrays). Opt-in per class, not a
    # Protocol promise: a wrapper that watches decode_step_times (reproduce vllm-fig15) must see every step.
    single_decode_by_step_time = True

    def __init__(self, profile: Profile, model: ModelSpec, tp: int = 1, sampling: str = "greedy") -> None:
        """``sampling``: which sampler every step pays, ``greedy`` (argmax) or ``top_p`` (sort and
        multinomial), from the profile's ``sampling`` or ``sampling_top_p`` term (none where it has neither)."""
        model.check_tp(tp)
        if sampling not in SAMPLING_TERMS:
            raise KvsimError(f"sampling must be one of {', '.join(SAMPLING_TERMS)}, got {sampling!r}")
        self.sampling = sampling
        self.profile, self.model, self.tp = profile, model, tp
        self.source = profile.source
        self.description = _describe(profile, tp)
        terms = profile.terms
        self._num_layers = model.num_layers
        # Per-op GEMM fits hold for the shapes they were measured on, the profiled model's; any other model
        # uses the fit pooled over all ops.
        self.per_op_gemms = profile.profiled(model.name) and any(f"gemm.{op}" in terms for op in GEMM_OPS)

        # Kernel terms are timed one launch at a time; back to back, each launch is launch_overlap_s shorter.
        overlap = terms.get("launch_overlap")
        self.launch_overlap_s = overlap.params["const_s"] if overlap is not None else 0.0

        def launched(term: Term) -> Term:
            """``term`` with its constant less the launch overlap (never below zero)."""
            if not self.launch_overlap_s:
                return term
            const_s = max(0.0, term.params["const_s"] - self.launch_overlap_s)
            return dataclasses.replace(term, params={**term.params, "const_s": const_s})

        def gemm_term(op: str) -> Term:
            return launched(profile.gemm_term(op, model.name))

        self._layer_gemms = tuple(
            _Gemm(gemm_term(s.op), s, model.dtype_bytes) for s in layer_gemm_shapes(model, tp)
        )
        # MoE layers, latent attention or quantized weights: their GEMMs (layer_kinds.py); None: the dense sum
        self._arch_gemms = (
            ArchitectureGemms(gemm_term, model, tp, layer_gemm_shapes(model, tp))
            if model.is_moe or model.is_mla or model.linear_bytes_per_param is not None
            else None
        )
        # sliding-window layers (0: none): attention over at most the window (layer_kinds.py)
        self._num_window_layers = model.num_sliding_layers if model.has_window else 0
        self._window = model.sliding_window or 0
        kinds = [
            name
            for name, present in (
                ("MoE experts (uniform routing assumed)", model.is_moe),
                ("latent attention", model.is_mla),
                ("quantized weights' bytes", model.linear_bytes_per_param or model.expert_bytes_per_param),
                ("sliding-window attention", self._num_window_layers),
            )
            if present
        ]
        if kinds:
            uncalibrated = "timed with the pooled GEMM and attention terms (not calibrated on them)"
            self.description += f"; {', '.join(kinds)} {uncalibrated}"
        self._gemm_s_cache: dict[int, float] = {}  # num_tokens -> gemm_s
        # num_seqs -> _decode_parts
        self._decode_parts_cache: dict[int, tuple[float, float, float, float]] = {}
        # One prefilling sequence's per-layer attention seconds by (q_len, kv_len), per kernel (paged, contiguous)
        self._prefill_seq_s_cache: dict[bool, dict[tuple[int, int], float]] = {True: {}, False: {}}
        # ... and a step's whole prefill attention when it has one prompt chunk (no windowed layers), the same way
        self._prefill_one_s_cache: dict[bool, dict[tuple[int, int], float]] = {True: {}, False: {}}
        # (q_lens, kv_lens, kernel) -> total_s of a prefill-only step with no allocator time: vLLM's default
        # steps, whose few shapes repeat
        self._prefill_step_cache: dict[tuple, float] = {}
        # a step's terms by its token count and by its sequence count (_token_parts, _seq_parts)
        self._token_parts_cache: dict[int, tuple[float, float, float, float]] = {}
        self._seq_parts_cache: dict[int, tuple[float, float, float]] = {}
        self._lm_head = _Gemm(gemm_term("lm_head"), lm_head_shape(model, tp), model.dtype_bytes)

        # (const_s, s_per_kv_token, s_per_seq, s_per_block, knees, segments) of each decode kernel, per layer
        # launch. A measured profile's ramp (kv_bytes_min_<K> parameters) makes the per-layer time a concave
        # piecewise-linear function of the batch's KV tokens: knees holds its breakpoints in tokens, and
        # segments[i] the (const_s, s_per_kv_token) that hold from knees[i - 1] (exclusive) to knees[i]
        # (inclusive), i = bisect_left(knees, tokens). Without a ramp: no knees, one segment, the plain line.
        kv_bytes_per_token = kv_bytes_per_token_layer(model, tp)

        def decode(kernel: str) -> tuple:
            p = launched(terms[f"attn_decode_{kernel}"]).params
            const_s, s_tok = p["const_s"], p["kv_bytes"] * kv_bytes_per_token
            ramps = [
                (knee / kv_bytes_per_token, s * kv_bytes_per_token) for knee, s in ramp_knees(p, "kv_bytes")
            ]
            segments = []
            for i in range(len(ramps) + 1):  # below ramps[i]'s knee: ramps[:i] are flat, ramps[i:] still rise
                segments.append(
                    (
                        const_s + sum(s * knee for knee, s in ramps[:i]),
                        s_tok + sum(s for _, s in ramps[i:]),
                    )
                )
            knees = tuple(knee for knee, _ in ramps)
            return const_s, s_tok, p["num_seqs"], p.get("num_blocks", 0.0), knees, tuple(segments)

        def prefill(kernel: str) -> tuple[float, float, float, float]:  # (const_s, s/FLOP, s/byte, s/seq)
            p = launched(terms[f"attn_prefill_{kernel}"]).params
            return p["const_s"], p["flops"], p["bytes"], p["num_seqs"]

        self._decode_paged, self._decode_contiguous = decode("paged"), decode("contiguous")
        self._prefill_paged, self._prefill_contiguous = prefill("paged"), prefill("contiguous")
        self._heads = model.num_heads // tp
        self._kv_heads = max(1, model.num_kv_heads // tp)
        # prefill attention's work is FLOPs per causal pair and bytes linear in new and context tokens
        # (work.py): its coefficients, taken from those functions
        head_dim, dtype_bytes = model.head_dim, model.dtype_bytes
        self._prefill_flops_per_pair = prefill_attn_flops(1, 1, self._heads, head_dim)
        self._prefill_bytes_per_q = prefill_attn_bytes(
            1, 0, self._heads, self._kv_heads, head_dim, dtype_bytes
        )
        self._prefill_bytes_per_kv = prefill_attn_bytes(
            0, 1, self._heads, self._kv_heads, head_dim, dtype_bytes
        )

        # Two all-reduces per layer (after attention's O and after the MLP), each of [t, hidden] activations:
        # the group size's measured fit (hinge in message bytes) where the profile has one, else the ring line.
        # Either way (const_s, s_per_token, knee_tokens): const_s + s_per_token · max(0, t − knee_tokens).
        message_bytes_per_token = model.hidden_size * model.dtype_bytes
        self._allreduce = None
        if tp > 1:
            measured = terms.get(f"allreduce.tp{tp}")
            if measured is not None:
                p = measured.params
                self._allreduce = (
                    p["const_s"],
                    p["s_per_byte"] * message_bytes_per_token,
                    p["knee_bytes"] / message_bytes_per_token,
                )
            else:
                p = terms["allreduce"].params
                ring_bytes_per_token = 2 * (tp - 1) / tp * message_bytes_per_token
                self._allreduce = (p["const_s"], p["ring_bytes"] * ring_bytes_per_token, 0.0)
        # Elementwise kernels the profile has terms for: (launches per step, const_s, s_per_token) in LAYER_OPS
        # order, absent ones (0, 0.0, 0.0); None when the profile has none (nothing to add, no work per step).
        ops = []
        for name, per_layer, per_step in LAYER_OPS:
            term = terms.get(name)
            if term is None:
                ops.append((0, 0.0, 0.0))
                continue
            p = launched(term).params
            s_tok = p["bytes"] * elementwise_bytes_per_token(model, tp, name)
            ops.append((per_layer * model.num_layers + per_step, p["const_s"], s_tok))
        self._elementwise = tuple(ops) if any(n for n, _, _ in ops) else None
        self._elementwise_cache: dict[int, tuple[float, float, float, float, float, float]] = {}
        # KV-cache write per kernel (paged, contiguous): (launches per step, const_s, s_per_token), one launch per
        # layer; sampling: (const_s, s_per_seq) once per step. Absent terms cost nothing: (0, 0.0, 0.0).
        kv_write_bytes = kv_write_bytes_per_token(model, tp)

        def per_layer(name: str) -> tuple[int, float, float]:
            term = terms.get(name)
            if term is None:
                return 0, 0.0, 0.0
            p = launched(term).params
            return model.num_layers, p["const_s"], p["bytes"] * kv_write_bytes

        self._kv_write = {True: per_layer("kv_write_paged"), False: per_layer("kv_write_contiguous")}
        sampler = terms.get(SAMPLING_TERMS[sampling])
        self._sampling = (0.0, 0.0)
        if sampler is not None:
            p = launched(sampler).params
            self._sampling = (p["const_s"], p["bytes"] * sampling_bytes_per_seq(model))
        p = terms["step_overhead"].params
        self._overhead = (p["const_s"], p["num_seqs"])
        self._vmm = {kind: _table(terms.get(f"vmm_{kind}")) for kind in ("map", "unmap")}

    def step_time(self, batch: Batch) -> StepTime:
        terms = self._step_terms(batch)
        return StepTime(allocator_s=batch.allocator_overhead_s) if terms is None else StepTime(*terms)

    def _step_terms(self, batch: Batch) -> tuple[float, ...] | None:
        """StepTime's fields in field order (None for an empty batch): step_time and step_total_s share them."""
        num_prefill_tokens = sum(batch.prefill_q_lens)
        num_decode_seqs = batch.num_decode_seqs
        num_tokens = num_prefill_tokens + num_decode_seqs
        if num_tokens == 0:
            return None
        num_seqs = len(batch.prefill_q_lens) + num_decode_seqs
        gemm_s = self._gemm_s_cache.get(num_tokens)
        if gemm_s is None:
            gemm_s = self._cache_gemm_s(num_tokens)
        attn_prefill_s = self._attn_prefill_s(batch) if batch.prefill_q_lens else 0.0
        attn_decode_s = 0.0
        if num_decode_seqs:
            attn_decode_s = self._attn_decode_s(
                self._decode_paged if batch.attention_kernel == "paged" else self._decode_contiguous,
                batch.decode_kv_tokens,
                num_decode_seqs,
                batch.decode_kv_blocks,
            )
        return (
            gemm_s,
            attn_prefill_s,
            attn_decode_s,
            self._lm_head(num_seqs),
            self._allreduce_s(num_tokens),
            self._overhead[0] + self._overhead[1] * num_seqs,
            batch.allocator_overhead_s,
            *self._elementwise_parts(num_tokens)[:5],
            self._kv_write_s(num_tokens, batch.attention_kernel == "paged"),
            self._sampling_s(num_seqs),
        )

    def _attn_prefill_s(self, batch: Batch) -> float:
        """All layers' prefill attention of ``batch``'s prompt chunks (one varlen launch per layer), each
        sequence's share memoized by (new tokens, context)."""
        paged = batch.attention_kernel == "paged"
        q_lens = batch.prefill_q_lens
        if len(q_lens) == 1 and not self._num_window_layers:  # one prompt chunk (most steps): memoized whole
            key = (q_lens[0], batch.prefill_kv_lens[0])
            attn_prefill_s = self._prefill_one_s_cache[paged].get(key)
            if attn_prefill_s is not None:
                return attn_prefill_s
        layers = self._num_layers
        const_s, s_flop, s_byte, s_seq = self._prefill_paged if paged else self._prefill_contiguous
        per_layer_s = const_s  # one varlen launch per layer serves every prefilling sequence
        cache = self._prefill_seq_s_cache[paged]
        for key in zip(batch.prefill_q_lens, batch.prefill_kv_lens):
            seq_s = cache.get(key)
            if seq_s is None:
                q_len, kv_len = key
                # prefill_attn_flops and prefill_attn_bytes (work.py) by their coefficients: the same ints
                flops = self._prefill_flops_per_pair * causal_attended_pairs(q_len, kv_len)
                nbytes = self._prefill_bytes_per_q * q_len + self._prefill_bytes_per_kv * kv_len
                seq_s = s_flop * flops + s_byte * nbytes + s_seq
                if len(cache) >= 65536:
                    cache.clear()
                cache[key] = seq_s
            per_layer_s += seq_s
        attn_prefill_s = layers * per_layer_s
        if self._num_window_layers:  # the windowed layers' share, recomputed over their window
            window_s = windowed_prefill_layer_s(
                (const_s, s_flop, s_byte, s_seq), batch.prefill_q_lens, batch.prefill_kv_lens, self
            )
            attn_prefill_s = (layers - self._num_window_layers) * per_layer_s
            attn_prefill_s += self._num_window_layers * window_s
        elif len(q_lens) == 1:
            one = self._prefill_one_s_cache[paged]
            if len(one) >= 65536:
                one.clear()
            one[key] = attn_prefill_s
        return attn_prefill_s

    def step_total_s(self, batch: Batch) -> float:
        """``step_time(batch).total_s`` bit for bit (the same float operations in the same order), with the terms
        that depend only on a step's token count or sequence count taken from caches: the engine's hot path."""
        seqs = batch.num_decode_seqs
        q_lens = batch.prefill_q_lens
        if q_lens or not seqs:
            if not seqs:
                if not q_lens:
                    return self.step_time(batch).total_s  # empty: its allocator time alone
                if not batch.allocator_overhead_s:  # a prefill-only step: cached whole, by shape
                    kv_lens = batch.prefill_kv_lens
                    # One prompt (most prefill steps) is keyed by its numbers, several by their tuples: a
                    # tuple's hash is not cached, so nested tuples cost more to look up.
                    if len(q_lens) == 1:
                        key = (q_lens[0], kv_lens[0], batch.attention_kernel)
                    else:
                        key = (q_lens, kv_lens, batch.attention_kernel)
                    total_s = self._prefill_step_cache.get(key)
                    if total_s is None:
                        total_s = self._mixed_total_s(batch, q_lens, 0)
                        if len(self._prefill_step_cache) >= 65536:
                            self._prefill_step_cache.clear()
                        self._prefill_step_cache[key] = total_s
                    return total_s
            return self._mixed_total_s(batch, q_lens, seqs)
        parts = self._decode_parts_cache.get(seqs) or self._decode_parts(seqs)
        paged = batch.attention_kernel == "paged"
        decode = self._decode_paged if paged else self._decode_contiguous
        if self._num_window_layers:
            attn_decode_s = self._attn_decode_s(decode, batch.decode_kv_tokens, seqs, batch.decode_kv_blocks)
        else:  # the hot path: no call beyond what it made before windowed layers existed
            attn_decode_s = self._num_layers * _attn_decode_layer_s(
                decode, batch.decode_kv_tokens, seqs, batch.decode_kv_blocks
            )
        # total_s adds attn_prefill_s (0.0 here) after gemm_s: gemm_s + 0.0 == gemm_s.
        # parts: (gemm_s, lm_head_s, allreduce_s, overhead_s, small_kernels_s paged, ... contiguous)
        return (
            parts[0]
            + attn_decode_s
            + parts[1]
            + parts[2]
            + parts[3]
            + batch.allocator_overhead_s
            + parts[4 if paged else 5]
        )

    def _mixed_total_s(self, batch: Batch, q_lens, seqs: int) -> float:
        """``step_time(batch).total_s`` of a step with prompt chunks: StepTime.total_s's sum in its order (the
        small kernels as StepTime.small_kernels_s adds them), its per-token-count and per-sequence-count terms
        from ``_token_parts`` and ``_seq_parts``."""
        num_tokens = sum(q_lens) + seqs
        num_seqs = len(q_lens) + seqs
        gemm_s, allreduce_s, small_paged_s, small_contiguous_s = self._token_parts_cache.get(
            num_tokens
        ) or self._token_parts(num_tokens)
        lm_head_s, overhead_s, sampling_s = self._seq_parts_cache.get(num_seqs) or self._seq_parts(num_seqs)
        paged = batch.attention_kernel == "paged"
        attn_decode_s = 0.0
        if seqs:
            attn_decode_s = self._attn_decode_s(
                self._decode_paged if paged else self._decode_contiguous,
                batch.decode_kv_tokens,
                seqs,
                batch.decode_kv_blocks,
            )
        return (
            gemm_s
            + self._attn_prefill_s(batch)
            + attn_decode_s
            + lm_head_s
            + allreduce_s
            + overhead_s
            + batch.allocator_overhead_s
            + ((small_paged_s if paged else small_contiguous_s) + sampling_s)
        )

    def _token_parts(self, num_tokens: int) -> tuple[float, float, float, float]:
        """(gemm_s, allreduce_s, elementwise + KV write paged, elementwise + KV write contiguous) of a step of
        ``num_tokens`` tokens, summed as StepTime.small_kernels_s begins; memoized."""
        gemm_s = self._gemm_s_cache.get(num_tokens)
        if gemm_s is None:
            gemm_s = self._cache_gemm_s(num_tokens)
        elementwise_s = self._elementwise_parts(num_tokens)[5]
        parts = (
            gemm_s,
            self._allreduce_s(num_tokens),
            elementwise_s + self._kv_write_s(num_tokens, True),
            elementwise_s + self._kv_write_s(num_tokens, False),
        )
        if len(self._token_parts_cache) >= 65536:
            self._token_parts_cache.clear()
        self._token_parts_cache[num_tokens] = parts
        return parts

    def _seq_parts(self, num_seqs: int) -> tuple[float, float, float]:
        """(lm_head_s, overhead_s, sampling_s) of a step batching ``num_seqs`` sequences; memoized."""
        parts = (
            self._lm_head(num_seqs),
            self._overhead[0] + self._overhead[1] * num_seqs,
            self._sampling_s(num_seqs),
        )
        if len(self._seq_parts_cache) >= 65536:
            self._seq_parts_cache.clear()
        self._seq_parts_cache[num_seqs] = parts
        return parts

    def _decode_parts(self, num_seqs: int) -> tuple[float, float, float, float, float, float]:
        """(gemm_s, lm_head_s, allreduce_s, overhead_s, small_kernels_s paged, small_kernels_s contiguous) of
        a pure decode step of ``num_seqs`` sequences (StepTime.small_kernels_s: elementwise, KV write,
        sampling, added in its order)."""
        parts = self._decode_parts_cache.get(num_seqs)
        if parts is None:  # a decode step's tokens are its sequences: its token- and sequence-count terms
            gemm_s, allreduce_s, small_paged_s, small_contiguous_s = self._token_parts_cache.get(
                num_seqs
            ) or self._token_parts(num_seqs)
            lm_head_s, overhead_s, sampling_s = self._seq_parts_cache.get(num_seqs) or self._seq_parts(
                num_seqs
            )
            parts = (
                gemm_s,
                lm_head_s,
                allreduce_s,
                overhead_s,
                small_paged_s + sampling_s,
                small_contiguous_s + sampling_s,
            )
            if len(self._decode_parts_cache) >= 65536:
                self._decode_parts_cache.clear()
            self._decode_parts_cache[num_seqs] = parts
        return parts

    def decode_step_times(
        self, batch: Batch, num_steps: int, decode_kv_blocks: np.ndarray | None = None
    ) -> np.ndarray:
        assert not batch.prefill_q_lens, "decode_step_times takes pure-decode batches"
        assert num_steps >= 0
        if self._num_window_layers:  # windowed models step one step at a time (allocators/paged_hybrid.py)
            assert num_steps <= 1, "a windowed model's decode steps are timed one at a time"
            return np.full(num_steps, self.step_time(batch).total_s)
        first = self.step_time(batch)
        seqs = batch.num_decode_seqs
        if seqs == 0:
            return np.full(num_steps, first.total_s)
        tokens = batch.decode_kv_tokens + np.arange(num_steps, dtype=np.int64) * seqs
        blocks = (
            np.full(num_steps, batch.decode_kv_blocks, dtype=np.int64)
            if decode_kv_blocks is None
            else np.asarray(decode_kv_blocks, dtype=np.int64)
        )
        assert blocks.shape == (num_steps,)
        const_s, s_tok, s_seq, s_blk, knees, segments = (
            self._decode_paged if batch.attention_kernel == "paged" else self._decode_contiguous
        )
        if knees:  # each step's segment of the ramp, as _attn_decode_layer_s picks it
            seg = np.array(segments)[np.searchsorted(knees, tokens, side="left")]
            const_s, s_tok = seg[:, 0], seg[:, 1]
        # The same expression, in the same order, as step_time (_attn_decode_layer_s) and StepTime.total_s.
        attn_decode_s = self._num_layers * (const_s + s_tok * tokens + s_seq * seqs + s_blk * blocks)
        return (
            first.gemm_s
            + first.attn_prefill_s
            + attn_decode_s
            + first.lm_head_s
            + first.allreduce_s
            + first.overhead_s
            + first.allocator_s
            + first.small_kernels_s
        )

    def decode_step_times_list(
        self, batch: Batch, num_steps: int, decode_kv_blocks: list[int] | None = None
    ) -> list[float]:
        """``decode_step_times`` as a list of Python floats, element for element bit-identical (the same
        float64 operations in the same order, int -> float conversions exact below 2**53): cheaper than
        arrays for the short windows that most decode windows are."""
        seqs = batch.num_decode_seqs
        if seqs == 0 or batch.prefill_q_lens or self._num_window_layers:
            assert num_steps <= 1 or not self._num_window_layers, "windowed models step one at a time"
            return [self.step_time(batch).total_s] * num_steps
        if decode_kv_blocks is None:
            decode_kv_blocks = [batch.decode_kv_blocks] * num_steps
        return self._decode_times(
            batch.attention_kernel == "paged",
            seqs,
            batch.decode_kv_tokens,
            num_steps,
            decode_kv_blocks,
            batch.allocator_overhead_s,
        )

    def reads_decode_blocks(self, attention_kernel: str) -> bool:
        """Whether a decode step's time depends on its KV block count (a fitted per-block term): if not, a
        window's per-step block counts need not be computed."""
        return bool((self._decode_paged if attention_kernel == "paged" else self._decode_contiguous)[3])

    def decode_segment_times(self, attention_kernel: str, segments) -> list[float]:
        """The step durations of a decode window planned as segments (``schedulers/cohort_through.py``:
        ``(steps, sequences, KV tokens of the first step, KV blocks of each step or None, _)``): each segment
        as ``decode_step_times_list`` would time the pure-decode batch of its members, with no allocator
        time. Segments come without block counts only to a cost model that reads none (``reads_decode_blocks``)."""
        paged = attention_kernel == "paged"
        durations: list[float] = []
        assert not self._num_window_layers, "windowed models step one at a time (no cohort windows)"
        const_s, s_tok, s_seq, s_blk, knees, ramp = self._decode_paged if paged else self._decode_contiguous
        if s_seq or s_blk or (not knees and const_s <= 0.0):
            for num_steps, seqs, tokens, blocks, _ in segments:
                durations += self._decode_times(paged, seqs, tokens, num_steps, blocks or repeat(0), 0.0)
            return durations
        # No per-sequence or per-block term: _decode_times' reduced sum written out here for a segment on one
        # line (the roofline's, or one segment of a measured ramp) of one GPU (a window has a few segments, and
        # this is most windows' timing): the same floats.
        layers, cached_parts = self._num_layers, self._decode_parts_cache
        for num_steps, seqs, tokens, _, _ in segments:
            head, lm_head_s, allreduce_s, overhead_s, small_paged_s, small_contiguous_s = cached_parts.get(
                seqs
            ) or self._decode_parts(seqs)
            small_s = small_paged_s if paged else small_contiguous_s
            line_const_s, line_s_tok = const_s, s_tok
            if knees:
                # across a knee (None): step by step
                line_const_s, line_s_tok = _window_line(knees, ramp, tokens, num_steps, seqs) or (0.0, 0.0)
            if allreduce_s or head <= 0.0 or line_const_s <= 0.0:
                durations += self._decode_times(paged, seqs, tokens, num_steps, repeat(0), 0.0)
                continue
            durations += [
                head + layers * (line_const_s + line_s_tok * t) + lm_head_s + overhead_s + small_s
                for t in range(tokens, tokens + num_steps * seqs, seqs)
            ]
        return durations

    def _decode_times(
        self, paged: bool, seqs: int, tokens0: int, num_steps: int, decode_kv_blocks, allocator_s: float
    ) -> list[float]:
        """The durations of ``num_steps`` pure-decode steps of ``seqs`` sequences from ``tokens0`` KV tokens
        (``decode_kv_blocks``: an iterable of each step's blocks), as ``step_time(..).total_s`` computes
        each one."""
        const_s, s_tok, s_seq, s_blk, knees, segments = (
            self._decode_paged if paged else self._decode_contiguous
        )
        layers = self._num_layers
        parts = self._decode_parts_cache.get(seqs) or self._decode_parts(seqs)
        head, lm_head_s, allreduce_s, overhead_s, small_paged_s, small_contiguous_s = (
            parts  # head: gemm_s + 0.0
        )
        small_s = small_paged_s if paged else small_contiguous_s
        seq_s = s_seq * seqs
        token_range = range(tokens0, tokens0 + num_steps * seqs, seqs)
        line = _window_line(knees, segments, tokens0, num_steps, seqs) if knees and num_steps else None
        if line is not None:  # the whole window on one line of the ramp: timed below as a line without one
            (const_s, s_tok), knees = line, ()
        if knees:  # a measured profile's ramp: each step on its segment, as _attn_decode_layer_s picks it
            out = []
            for tokens, blocks in zip(token_range, decode_kv_blocks):
                seg_const_s, seg_s_tok = segments[bisect_left(knees, tokens)]
                out.append(
                    head
                    + layers * (seg_const_s + seg_s_tok * tokens + seq_s + s_blk * blocks)
                    + lm_head_s
                    + allreduce_s
                    + overhead_s
                    + allocator_s
                    + small_s
                )
            return out
        if not (seq_s or s_blk or allreduce_s or allocator_s) and const_s > 0.0 and head > 0.0:
            # The roofline's case (no per-sequence or per-block term, one GPU, no allocator time): a zero
            # addend leaves a sum unchanged unless the sum is -0.0, and sums with a positive term never are;
            # so leaving the zeros out gives the same floats, at half the operations per step.
            return [
                head + layers * (const_s + s_tok * tokens) + lm_head_s + overhead_s + small_s
                for tokens in token_range
            ]
        # float * int converts the int exactly as float() would: the same products as step_time's
        return [
            head
            + layers * (const_s + s_tok * tokens + seq_s + s_blk * blocks)
            + lm_head_s
            + allreduce_s
            + overhead_s
            + allocator_s
            + small_s
            for tokens, blocks in zip(token_range, decode_kv_blocks)
        ]

    def map_latency_s(self, page_size_bytes: int) -> float | None:
        """Measured seconds to map one physical page of this size (cuMemCreate + cuMemMap + cuMemSetAccess),
        interpolated between measured sizes; None when the profile has no VMM measurement (roofline)."""
        return _lookup(self._vmm["map"], page_size_bytes)

    def unmap_latency_s(self, page_size_bytes: int) -> float | None:
        """Measured seconds to unmap and release one page (cuMemUnmap + cuMemRelease), as map_latency_s."""
        return _lookup(self._vmm["unmap"], page_size_bytes)

    def _cache_gemm_s(self, num_tokens: int) -> float:
        """All layers' GEMMs for ``num_tokens``; memoized, since steps repeat the same few token counts
        (bounded by max_num_batched_tokens; the cache is cleared if it ever grows past 64k entries)."""
        if self._arch_gemms is not None:
            gemm_s = self._arch_gemms(num_tokens)
        else:
            qkv, o, up, down = self._layer_gemms
            gemm_s = self._num_layers * (qkv(num_tokens) + o(num_tokens) + up(num_tokens) + down(num_tokens))
        if len(self._gemm_s_cache) >= 65536:
            self._gemm_s_cache.clear()
        self._gemm_s_cache[num_tokens] = gemm_s
        return gemm_s

    def _attn_decode_s(self, decode: tuple, tokens: int, seqs: int, blocks: int) -> float:
        """All layers' decode attention; windowed layers read at most the window per sequence, bounded per
        step by ``min(tokens, seqs × window)`` (layer_kinds.py), their blocks in proportion."""
        if not self._num_window_layers:
            return self._num_layers * _attn_decode_layer_s(decode, tokens, seqs, blocks)
        window_tokens = min(tokens, seqs * self._window)
        window_blocks = blocks if window_tokens == tokens else -(-blocks * window_tokens // tokens)
        return (self._num_layers - self._num_window_layers) * _attn_decode_layer_s(
            decode, tokens, seqs, blocks
        ) + self._num_window_layers * _attn_decode_layer_s(decode, window_tokens, seqs, window_blocks)

    def _allreduce_s(self, num_tokens: int) -> float:
        if self._allreduce is None:
            return 0.0
        const_s, s_tok, knee_tokens = self._allreduce
        return 2 * self._num_layers * (const_s + s_tok * max(0.0, num_tokens - knee_tokens))

    def _kv_write_s(self, num_tokens: int, paged: bool) -> float:
        launches, const_s, s_tok = self._kv_write[paged]
        return launches * (const_s + s_tok * num_tokens)

    def _sampling_s(self, num_seqs: int) -> float:
        const_s, s_seq = self._sampling
        return const_s + s_seq * num_seqs

    def _elementwise_parts(self, num_tokens: int) -> tuple[float, float, float, float, float, float]:
        """(rmsnorm_s, rotary_s, activation_s, residual_add_s, embedding_s, their sum as
        StepTime.elementwise_s adds them) of a step of ``num_tokens`` tokens; memoized per token count."""
        if self._elementwise is None:
            return _NO_ELEMENTWISE
        parts = self._elementwise_cache.get(num_tokens)
        if parts is not None:
            return parts
        each = [launches * (const_s + s_tok * num_tokens) for launches, const_s, s_tok in self._elementwise]
        parts = (*each, each[0] + each[1] + each[2] + each[3] + each[4])
        if len(self._elementwise_cache) >= 65536:
            self._elementwise_cache.clear()
        self._elementwise_cache[num_tokens] = parts
        return parts


_NO_ELEMENTWISE = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _window_line(knees, ramp, tokens0: int, num_steps: int, seqs: int) -> tuple[float, float] | None:
    """The ramp's (const_s, s_per_token) line that holds every step of a decode window from ``tokens0`` KV tokens
    (``num_steps`` >= 1 steps of ``seqs`` sequences), None when the window crosses a knee: its KV tokens only
    grow, so the segments of its first and last steps decide (past the last knee, the first alone)."""
    if tokens0 > knees[-1]:
        return ramp[-1]
    segment = bisect_left(knees, tokens0)
    if segment == bisect_left(knees, tokens0 + (num_steps - 1) * seqs):
        return ramp[segment]
    return None


def _attn_decode_layer_s(decode: tuple, tokens: int, seqs: int, blocks: int) -> float:
    """One layer's decode attention for a batch, on the ramp's segment that holds ``tokens`` (the plain line
    without a ramp). decode_step_times and decode_step_times_list repeat these operations in this order."""
    const_s, s_tok, s_seq, s_blk, knees, segments = decode
    if knees:
        const_s, s_tok = segments[bisect_left(knees, tokens)]
    return const_s + s_tok * tokens + s_seq * seqs + s_blk * blocks


def _table(term: Term | None) -> tuple[np.ndarray, np.ndarray] | None:
    if term is None or not term.params:
        return None
    sizes = sorted(term.params, key=int)
    return np.array([int(s) for s in sizes], dtype=float), np.array([term.params[s] for s in sizes])


def _lookup(table: tuple[np.ndarray, np.ndarray] | None, page_size_bytes: int) -> float | None:
    """Linear interpolation between measured page sizes; beyond the largest, the largest's cost scaled by
    size (mapping is at least proportional to the memory it backs); below the smallest, the smallest's cost."""
    if table is None:
        return None
    sizes, seconds = table
    if page_size_bytes > sizes[-1]:
        return float(seconds[-1] * page_size_bytes / sizes[-1])
    return float(np.interp(page_size_bytes, sizes, seconds))


def _describe(profile: Profile, tp: int = 1) -> str:
    device = profile.device
    measured_allreduce = tp > 1 and any(
        name.startswith("allreduce") and term.source == "measured" for name, term in profile.terms.items()
    )
    allreduce_note = "; all-reduce measured (Vidur's NCCL timings)" if measured_allreduce else ""
    if profile.source == "roofline":
        text = f"{device.name} roofline from datasheet peaks and stated efficiency factors (not measured)"
        return text + allreduce_note
    if profile.provenance:  # measured elsewhere: the provenance names the GPU, who measured it and when
        parts = [f"{profile.source} ({profile.provenance})"]
    else:
        parts = [f"{device.name} {profile.source}"]
        parts += [f"{key} {getattr(device, key)}" for key in ("date", "driver") if getattr(device, key)]
    text = ", ".join(parts)
    overlap = profile.terms.get("launch_overlap")
    if overlap is not None:
        text += f"; launches back to back {overlap.params['const_s'] * 1e6:.1f} us shorter than alone"
    borrowed = [name for name, term in profile.terms.items() if term.source == "roofline"]
    if borrowed:
        text += f"; from the roofline: {', '.join(borrowed)}"
    text += allreduce_note
    if not profile.representative:
        text += " (NOT representative: smoke-test numbers)"
    return text
