"""The contiguous-growth allocator (power-of-two regions that double when full, FMS's global cache), as a
specification: where it grows, what each copy costs, what the accounting shows, and a whole simulate() run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from allocator_ops import KV_BYTES_PER_TOKEN, OPS, TINY, run_ops
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simtools import KV_BYTES_PER_TOKEN as LLAMA_SLOT
from simtools import make_trace, random_trace, run

from kvsim.errors import KvsimError
from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.allocators import make_allocator
from kvsim.simulator.cost.roofline import HBM_BW_EFFICIENCY

SLOT = KV_BYTES_PER_TOKEN  # 512 bytes per token of the tiny model
COPY_BW = 1e9  # bytes copied per second in these tests: a 16-slot copy takes 16 × 512 / 1e9 s


def growth(spec="contiguous-growth:copy_bw_bytes_per_s=1e9", num_slots=1024, swap_slots=0, **kwargs):
    return make_allocator(
        spec,
        model=TINY,
        tp=1,
        capacity_bytes=num_slots * SLOT,
        swap_space_bytes=swap_slots * SLOT,
        **kwargs,
    )


def parts_in_slots(alloc) -> tuple[int, int, int, int, int]:
    p = alloc.breakdown()
    return tuple(v // SLOT for v in (p.token_states, p.reserved, p.internal_frag, p.external_frag, p.free))


def test_the_region_doubles_at_the_first_token_past_it_and_each_growth_copies_the_old_region():
    alloc = growth()
    alloc.allocate(0, 10, final_num_tokens=40)  # the prompt's region: 16 slots
    assert parts_in_slots(alloc) == (10, 6, 0, 0, 1008)
    assert alloc.append_slots(0, 6) and alloc.seqs[0].num_region_slots == 16 and alloc.take_overhead_s() == 0
    assert alloc.append_slots(0, 1)  # token 17: 16 -> 32 slots, copying the 16 stored ones
    assert alloc.seqs[0].num_region_slots == 32
    assert alloc.take_overhead_s() == pytest.approx(16 * SLOT / COPY_BW)
    assert parts_in_slots(alloc) == (17, 15, 0, 0, 992)
    assert alloc.append_slots(0, 16)  # token 33: 32 -> 64; the request ends at 40, so 24 slots are waste
    assert parts_in_slots(alloc) == (33, 7, 24, 0, 960)
    assert alloc.stats() == {
        "num_growth_copies": 2,
        "num_fork_copies": 0,
        "copy_bytes": (16 + 32) * SLOT,
        "copy_s": pytest.approx((16 + 32) * SLOT / COPY_BW),
    }
    assert alloc.take_overhead_s() == pytest.approx(32 * SLOT / COPY_BW) and alloc.take_overhead_s() == 0
    alloc.check_invariants()


@pytest.mark.parametrize(
    ("options", "regions"),
    [
        ("", {1: 16, 16: 16, 17: 32, 33: 64, 200: 256}),
        ("min_region_tokens=4,growth_factor=4", {1: 4, 5: 16, 17: 64, 65: 256}),
        ("min_region_tokens=100", {1: 100, 101: 200, 201: 256}),  # capped at max_model_len
    ],
)
def test_regions_climb_the_ladder_min_region_tokens_times_growth_factor_capped_at_max_model_len(
    options, regions
):
    alloc = growth(f"contiguous-growth:copy_bw_bytes_per_s=1e9{',' if options else ''}{options}")
    alloc.allocate(0, 1, final_num_tokens=256)
    for num_tokens, region in regions.items():
        assert alloc.append_slots(0, num_tokens - alloc.seqs[0].num_tokens)
        assert alloc.seqs[0].num_region_slots == region, num_tokens
        alloc.check_invariants()
    assert not alloc.append_slots(0, 256 - alloc.seqs[0].num_tokens + 1)  # never past max_model_len


def test_the_default_copy_rate_is_the_streaming_hbm_bandwidth_halved_because_a_copy_reads_and_writes():
    alloc = growth("contiguous-growth", hbm_bw_bytes_per_s=2e12)
    assert alloc.copy_bw_bytes_per_s == pytest.approx(2e12 * HBM_BW_EFFICIENCY / 2)
    assert growth(hbm_bw_bytes_per_s=2e12).copy_bw_bytes_per_s == COPY_BW  # the spec's rate wins
    with pytest.raises(KvsimError, match="copy needs a bandwidth"):
        growth("contiguous-growth")


def test_a_growth_with_no_free_doubled_region_fails_the_append_and_changes_nothing():
    alloc = growth(num_slots=64)
    alloc.allocate(0, 20, final_num_tokens=40)  # 32 slots at 0
    alloc.allocate(1, 20, final_num_tokens=40)  # 32 slots at 32
    before = (alloc.breakdown(), dict(alloc.buddy.allocated), alloc.stats())
    assert not alloc.append_slots(0, 13)  # 33 tokens need 64 contiguous slots while 32 are held
    assert (alloc.breakdown(), dict(alloc.buddy.allocated), alloc.stats()) == before
    assert alloc.max_uniform_growth([0, 1], 20) == 12
    alloc.free(1)
    assert alloc.max_uniform_growth([0], 20) == 12  # the old region must still coexist with the new one


def test_max_uniform_growth_counts_growths_that_fit_and_replays_them_in_order():
    alloc = growth(num_slots=128)
    alloc.allocate(0, 16, final_num_tokens=40)  # 16 slots, full
    alloc.allocate(1, 16, final_num_tokens=40)
    # Both can grow to 32 together (64 free slots beyond 32 used); with 17 more each they need 2 × 64.
    assert alloc.max_uniform_growth([0, 1], 40) == 16
    assert alloc.append_slots(0, 16) and alloc.append_slots(1, 16)
    alloc.check_invariants()


def test_max_uniform_growth_lets_a_region_freed_by_one_growth_serve_the_next():
    alloc = growth(num_slots=128)
    for seq_id, num_tokens in [(0, 16), (9, 16), (1, 16), (2, 16), (3, 32)]:
        alloc.allocate(seq_id, num_tokens, final_num_tokens=64)
    alloc.free(9)
    # A=0 at slots 0-15 with 16-31 free beside it; B=1 at 32-47; two more regions; 32 slots free at 96-127.
    assert alloc.buddy.allocated == {0: 16, 32: 16, 48: 16, 64: 32}
    # A moves to 96 and its old 16 slots merge with their free buddy into the 32 that B then takes.
    assert alloc.max_uniform_growth([0, 1], 40) == 16
    assert alloc.append_slots(0, 16) and alloc.append_slots(1, 16)
    assert (alloc.seqs[0].offset, alloc.seqs[1].offset) == (96, 0)
    alloc.check_invariants()


def test_a_request_whose_last_growth_can_never_fit_is_rejected_at_arrival():
    alloc = growth(num_slots=64)
    assert alloc.rejection_reason(40, 10) is None  # one region of 64, never moved
    assert "coexist" in alloc.rejection_reason(20, 30)  # 32 -> 64 needs 96 slots during the copy
    assert "largest buddy block" in alloc.rejection_reason(100, 10)
    assert "max_model_len" in alloc.rejection_reason(200, 100)
    assert growth(num_slots=96).rejection_reason(20, 30) is None
    # asked again (the placements on an empty heap are kept per pair of regions): the same answers
    assert alloc.rejection_reason(40, 10) is None and "coexist" in alloc.rejection_reason(20, 30)
    assert "largest buddy block" in alloc.rejection_reason(100, 10)


def test_a_blocked_head_of_queue_allocation_shows_free_minus_the_largest_block_as_external_frag():
    alloc = growth(num_slots=1024)
    for seq_id in range(4):
        alloc.allocate(seq_id, 256, final_num_tokens=256)  # offsets 0, 256, 512, 768
    alloc.free(0)
    alloc.free(2)
    assert alloc.allocate(9, 200, final_num_tokens=300, num_prompt_tokens=257) is None  # 512 contiguous
    assert parts_in_slots(alloc)[3:] == (256, 256)
    alloc.clear_blocked()
    assert parts_in_slots(alloc)[3:] == (0, 512)


def test_a_fork_copies_the_parents_stored_tokens_into_its_own_region():
    alloc = growth(num_slots=64)
    alloc.allocate(0, 10, final_num_tokens=30)
    assert alloc.fork(0, 1) and alloc.seqs[1].num_region_slots == 16
    assert alloc.stats()["num_fork_copies"] == 1 and alloc.take_overhead_s() == pytest.approx(
        10 * SLOT / COPY_BW
    )
    alloc.allocate(2, 20, final_num_tokens=20)  # 32 slots: the heap is full
    assert not alloc.fork(0, 3) and 3 not in alloc.seqs and alloc.stats()["num_fork_copies"] == 1


def test_the_spec_is_canonical_and_bad_options_name_the_fix():
    assert growth("contiguous-growth", hbm_bw_bytes_per_s=1e12).name == "contiguous-growth"
    name = growth("contiguous-growth:growth_factor=4,copy_bw_bytes_per_s=1e9,min_region_tokens=32").name
    assert name == "contiguous-growth:min_region_tokens=32,growth_factor=4,copy_bw_bytes_per_s=1e+09"
    derived = growth("contiguous-growth:copy_bw_bytes_per_s=none", hbm_bw_bytes_per_s=1e12)
    assert derived.name == "contiguous-growth" and derived.copy_bw_bytes_per_s == 1e12 * HBM_BW_EFFICIENCY / 2
    for spec, message in [
        ("contiguous-growth:growth_factor=1", "growth_factor must be an integer >= 2"),
        ("contiguous-growth:min_region_tokens=0", "min_region_tokens must be >= 1"),
        ("contiguous-growth:copy_bw_bytes_per_s=-1", "omit it to derive it"),
        ("contiguous-growth:copy_bw_bytes_per_s=fast", "not a number"),
        ("contiguous-growth:pow2", "takes no policy"),
    ]:
        with pytest.raises(KvsimError, match=message):
            growth(spec, hbm_bw_bytes_per_s=1e12)


# The shared operations, with more and larger appends and a heap small enough that growths fail.
GROWTH_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"), st.integers(1, 40), st.integers(0, 80), st.integers(0, 3)),
        st.tuples(st.just("append"), st.integers(0, 9), st.integers(1, 40), st.just(0)),
        st.tuples(st.just("append"), st.integers(0, 9), st.integers(1, 40), st.just(0)),
        st.tuples(st.just("fork"), st.integers(0, 9), st.just(0), st.just(0)),
        st.tuples(st.just("free"), st.integers(0, 9), st.just(0), st.just(0)),
        st.tuples(st.just("swap_out"), st.integers(0, 9), st.just(0), st.just(0)),
        st.tuples(st.just("swap_in"), st.integers(0, 9), st.just(0), st.just(0)),
        st.tuples(st.just("growth"), st.integers(0, 9), st.integers(0, 3), st.integers(0, 60)),
    ),
    max_size=50,
)


@pytest.mark.parametrize(
    ("spec", "ops_strategy", "num_slots"),
    [
        ("contiguous-growth:copy_bw_bytes_per_s=1e9", OPS, 700),
        ("contiguous-growth:copy_bw_bytes_per_s=1e9", GROWTH_OPS, 300),
        ("contiguous-growth:copy_bw_bytes_per_s=1e9,min_region_tokens=4,growth_factor=3", GROWTH_OPS, 300),
    ],
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_operations_keep_every_invariant(spec, ops_strategy, num_slots, data):
    """No two regions overlap (the buddy's extents are the regions), every region is on the growth ladder, the
    five parts sum to capacity after every call, a failed call (a growth with no free block) changes nothing,
    max_uniform_growth is exact, and nothing leaks once everything is freed."""
    run_ops(growth(spec, num_slots=num_slots, swap_slots=100), data.draw(ops_strategy))


# -- a whole run ---------------------------------------------------------------------------------------------


def test_the_copy_lands_on_the_step_that_grows():
    """One request, prompt 10, 10 output tokens, 0.25 s steps: its 17th slot (the 8th step) grows 16 -> 32
    and copies 16 slots of llama-2-7b's KV, which at this copy rate takes 0.125 s more."""
    copy_bw = 16 * LLAMA_SLOT / 0.125
    trace = make_trace([(0.0, 10, 10)])
    grown = run(trace, allocator=f"contiguous-growth:copy_bw_bytes_per_s={copy_bw:.17g}")
    unmoved = run(
        trace, allocator=f"contiguous-growth:copy_bw_bytes_per_s={copy_bw:.17g},min_region_tokens=32"
    )
    assert unmoved.recorder.finish_s[0] == pytest.approx(2.5)
    assert grown.recorder.finish_s[0] == pytest.approx(2.625)
    assert grown.summary["allocator_stats"] == {
        "num_growth_copies": 1,
        "num_fork_copies": 0,
        "copy_bytes": 16 * LLAMA_SLOT,
        "copy_s": pytest.approx(0.125),
    }


TIGHT = 2500 * LLAMA_SLOT  # llama-2-7b KV for 2500 tokens: growths fail and requests are preempted


@pytest.mark.parametrize(
    ("options", "parallel_samples"),
    [
        ({"scheduler": "vllm-v0"}, False),
        ({"scheduler": "vllm-v0", "enable_chunked_prefill": True}, False),
        ({"scheduler": "vllm-v0", "preemption_mode": "swap", "swap_space_gib": 1.0}, False),
        ({"scheduler": "vllm"}, False),  # v1: chunk-by-chunk allocation through the copying allocator
        ({"scheduler": "orca"}, False),
        ({"scheduler": "vllm-v0"}, True),
        ({"scheduler": "vllm"}, True),
    ],
)
def test_a_tight_run_finishes_every_request_deterministically_and_fast_forward_equals_stepping(
    options, parallel_samples
):
    trace = random_trace(80, seed=3, rate_per_s=8.0)
    if parallel_samples:  # every third request samples 3 sequences: forks copy the prompt's KV
        n = np.where(np.arange(len(trace)) % 3 == 0, 3, 1)
        trace = dataclasses.replace(trace, n=n)
    config = SimConfig(kv_capacity_bytes=TIGHT, allocator="contiguous-growth", **options)
    fast = simulate(config, trace)
    again = simulate(config, trace)
    slow = simulate(dataclasses.replace(config, fast_forward=False), trace)
    assert fast.summary["num_preemptions"] > 0
    if (
        parallel_samples
    ):  # 3 growing sequences of one request may outgrow 2500 slots: rejected at arrival when their regions
        # cannot be together even on an empty heap, else dropped if as placed they outgrow it, with the reason
        reasons = set(fast.summary["rejected_by_reason"])
        at_arrival = {r for r in reasons if "parallel sequences" in r and "even when empty" in r}
        assert at_arrival and reasons - at_arrival <= {
            "its sequences outgrow the KV memory even alone on the replica",
            "its parallel samples do not fit in the KV memory",
        }
        assert fast.summary["num_finished"] + fast.summary["num_rejected"] == len(trace)
    else:
        assert fast.summary["num_finished"] == len(trace)
    stats = fast.summary["allocator_stats"]
    assert stats["num_growth_copies"] > 0 and (stats["num_fork_copies"] > 0) == parallel_samples
    for other in (again, slow):
        assert other.summary == fast.summary
        assert other.recorder.timeline_rows() == fast.recorder.timeline_rows()


def test_the_cli_takes_the_spec_with_options_and_a_bad_option_is_an_error_with_exit_status_2():
    from click.testing import CliRunner

    from kvsim.cli import main

    args = ["simulate", "--trace", "azure-conv", "--num-requests", "20", "--allocator"]
    result = CliRunner().invoke(main, [*args, "contiguous-growth:min_region_tokens=64"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split() == ["contiguous-growth:min_region_tokens=64"]
    assert "num_growth_copies" in result.output
    result = CliRunner().invoke(main, [*args, "contiguous-growth:growth_factor=1"])
    assert result.exit_code == 2 and "Error: contiguous-growth: growth_factor must be" in result.output


def test_the_copy_counters_reach_the_comparison_table_and_csv_beside_allocators_without_them(tmp_path):
    import csv

    from kvsim.cli.simulate import comparison_table, write_comparison_csv

    trace = make_trace([(0.0, 10, 10), (0.1, 30, 40)])  # regions 16 -> 32, and 32 -> 64 -> 128
    results = [run(trace, allocator="paged"), run(trace, allocator="contiguous-growth")]
    table = comparison_table(results).splitlines()
    copies = next(line for line in table if line.startswith("num_growth_copies")).split()
    assert copies == [
        "num_growth_copies",
        "-",
        str(results[1].summary["allocator_stats"]["num_growth_copies"]),
    ]
    write_comparison_csv(results, tmp_path / "comparison.csv")
    with (tmp_path / "comparison.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[-5:] == [
        "cost_model",
        "num_growth_copies",
        "num_fork_copies",
        "copy_bytes",
        "copy_s",
    ]
    assert rows[0]["copy_bytes"] == "" and int(rows[1]["copy_bytes"]) == (16 + 32 + 64) * LLAMA_SLOT
