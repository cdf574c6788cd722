"""A request's parallel sequences (n > 1) hold KV together: one that could never fit them on the replica is
rejected at arrival with the reason (DESIGN §4), and one that just fits runs. And a swapped-out request that
cannot come back even to an empty GPU is recomputed, even when the step that emptied the replica ran nothing.

llama-2-7b (512 KiB of KV per token): capacities are given in token slots."""

from __future__ import annotations

import numpy as np
import pytest
from simtools import KV_BYTES_PER_TOKEN, make_trace, run

# One request of 40 + 50 tokens with n = 3, then a small one behind it. Each sequence stores 89 tokens (the
# last output token's KV is never written).
SAMPLES = [(0.0, 40, 50), (0.0, 10, 5)]


@pytest.mark.parametrize(
    "allocator, fits_slots, reason",
    [
        # 16-token blocks: the prompt's 2 full blocks shared, then ceil(89 / 16) - 2 = 4 blocks each: 14
        (
            "paged",
            14 * 16,
            "its 3 parallel sequences need 14 blocks of 16 tokens (the prompt's 2 full blocks shared) "
            "but the replica holds only 13",
        ),
        # 64 KiB pages hold 8 tokens of one layer's K: ceil(89 / 8) = 12 page groups each, no sharing: 36
        (
            "vattention:page_size=64KiB",
            36 * 8,
            "its 3 parallel sequences need 36 page groups of 8 tokens, one buffer each, but the replica "
            "holds only 35",
        ),
        # a region of 90 slots each, in a 128-slot buddy block: 384 slots hold three (256 + 128), 383 two
        (
            "reserved:oracle",
            384,
            "reserved:oracle needs a contiguous region of 90 slots for each of 3 parallel sequences, but this "
            "replica's buddy heap of 383 slots cannot hold them together even when empty; use paged or give "
            "the model more memory",
        ),
    ],
)
def test_parallel_sequences_that_fit_together_run_and_one_slot_less_is_rejected_at_arrival(
    allocator, fits_slots, reason
):
    trace = make_trace(SAMPLES, n=[3, 1])
    fits = run(trace, allocator=allocator, kv_capacity_bytes=fits_slots * KV_BYTES_PER_TOKEN)
    assert fits.summary["num_finished"] == 2 and fits.summary["num_rejected"] == 0

    short = run(trace, allocator=allocator, kv_capacity_bytes=(fits_slots - 1) * KV_BYTES_PER_TOKEN)
    assert short.recorder.rejected_reason == {0: reason}
    assert np.isnan(short.recorder.first_token_s[0])  # never admitted: it took no memory and no step
    assert short.summary["num_finished"] == 1 and short.summary["num_preemptions"] == 0


def test_contiguous_growth_rejects_at_arrival_samples_whose_final_regions_cannot_coexist():
    # The user's case (vllm-v0, chunked prefill, swap, 448 slots = 256 + 128 + 64): 46 + 90 tokens with n = 2
    # store 135 tokens each, in regions of 256 slots; two never fit. It was admitted, ran, swapped out the
    # request behind it, was dropped when alone, and the replica, empty with that request swapped out, stopped
    # on an AssertionError.
    trace = make_trace([(0.0, 46, 90), (0.0, 11, 110)], n=[2, 1])
    config = dict(
        allocator="contiguous-growth:min_region_tokens=64",
        kv_capacity_bytes=448 * KV_BYTES_PER_TOKEN,
        enable_chunked_prefill=True,
        max_num_batched_tokens=64,
        max_num_seqs=32,
        preemption_mode="swap",
        swap_space_gib=0.5,
    )
    for fast_forward in (True, False):
        result = run(trace, fast_forward=fast_forward, **config)
        assert result.recorder.rejected_reason == {
            0: "contiguous-growth:min_region_tokens=64 grows each of 2 parallel sequences to 135 stored tokens "
            "in a region of 256 slots, the last from one of 128, which must coexist with the others' for the "
            "copy, but this replica's buddy heap of 448 slots cannot hold them together even when empty; use "
            "paged or give the model more memory"
        }
        assert result.summary["num_finished"] == 1 and result.summary["num_preemptions"] == 0


def test_a_request_whose_first_token_is_its_last_never_forks_so_its_samples_need_no_memory():
    # n = 3 but one output token: it finishes at its prefill, one sequence of 100 tokens in 7 blocks of 16 (8
    # blocks leave vLLM v0's watermark free). Three sequences would need 6 shared blocks + 3 of their own.
    result = run(make_trace([(0.0, 100, 1)], n=[3]), kv_capacity_bytes=8 * 16 * KV_BYTES_PER_TOKEN)
    assert result.summary["num_finished"] == 1


@pytest.mark.parametrize("enable_chunked_prefill", [False, True])
def test_a_swapped_request_that_cannot_come_back_to_an_empty_gpu_is_recomputed(enable_chunked_prefill):
    # 640 slots (512 + 128), two requests with n = 2 whose regions grow 64 -> 128 -> 256. A (53 + 95 tokens)
    # and B (98 + 34) fit together on an empty heap, but as placed they do not: B, the newest, is swapped out
    # with its two regions of 128 slots full; then A, alone, cannot place its second region of 256 and is
    # dropped, in a step that runs nothing. B's two regions cannot come back and grow to 256 beside each other
    # even on the empty heap, so B turns into a recompute (one scheduling call) and is admitted at the next:
    # before, the engine allowed one call per queued request and stopped on "a replica with queued work and
    # nothing running scheduled nothing".
    trace = make_trace([(0.0, 53, 95), (0.0, 98, 34)], n=[2, 2])
    config = dict(
        allocator="contiguous-growth:min_region_tokens=64",
        kv_capacity_bytes=640 * KV_BYTES_PER_TOKEN,
        preemption_mode="swap",
        swap_space_gib=0.5,
        enable_chunked_prefill=enable_chunked_prefill,
        max_num_batched_tokens=64 if enable_chunked_prefill else None,
        max_num_seqs=32,
    )
    fast = run(trace, **config)
    slow = run(trace, fast_forward=False, **config)
    assert fast.summary == slow.summary
    assert fast.recorder.timeline_rows() == slow.recorder.timeline_rows()
    rec = fast.recorder
    assert rec.num_preemptions.tolist() == [0, 1]  # B's swap-out; its recompute is no second preemption
    assert not np.isnan(rec.finish_s[1]) and 1 not in rec.rejected_reason
    assert fast.summary["num_finished"] + fast.summary["num_rejected"] == 2
