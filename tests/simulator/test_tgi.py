"""TGI's router (``--scheduler tgi``): exact timelines with a constant step cost (0.25 s), the reservation
budget under random workloads, no livelock, determinism, and fast-forward ≡ stepping."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simtools import KV_BYTES_PER_TOKEN, make_trace, random_trace, run

from kvsim.cli import main
from kvsim.errors import KvsimError
from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.schedulers import SCHEDULERS, TgiScheduler
from kvsim.traces.request import Provenance, Trace

LONG = 100  # output tokens of the requests that form the running batch


def running_batch_and_late_arrivals(num_late: int, late_s: float = 0.1):
    """Ten requests at 0 (one prefill batch), then ``num_late`` arrivals at ``late_s``."""
    return make_trace([(0.0, 8, LONG)] * 10 + [(late_s, 8, 4)] * num_late)


def test_lone_request_is_prefilled_at_once_and_decodes_every_step():
    result = run(make_trace([(1.0, 100, 5)]), scheduler="tgi")
    assert result.recorder.first_scheduled_s[0] == 1.0
    assert result.recorder.first_token_s[0] == 1.25
    assert result.recorder.finish_s[0] == 2.25


def test_one_arrival_waits_max_waiting_tokens_decode_steps_behind_a_batch_of_ten():
    # Batch of 10 prefilled [0, 0.25] -> waiting_tokens 1. min_size = floor(10 × 0.3) = 3 > 1 waiting, so every
    # attempt fails until waiting_tokens reaches 20: after 19 decode steps, at 0.25 + 19 × 0.25 = 5.0.
    result = run(running_batch_and_late_arrivals(1), scheduler="tgi")
    assert result.recorder.first_scheduled_s[10] == 5.0
    assert result.recorder.first_token_s[10] == 5.25
    # The running batch paused for that prefill: its requests end one step later than decoding alone.
    assert result.recorder.finish_s[0] == 0.25 + (LONG - 1) * 0.25 + 0.25


def test_enough_waiting_requests_join_at_the_next_step():
    # Three waiting = floor(10 × 0.3): the attempt at 0.25 admits them together.
    result = run(running_batch_and_late_arrivals(3), scheduler="tgi")
    assert result.recorder.first_scheduled_s[10:].tolist() == [0.25, 0.25, 0.25]
    assert result.recorder.first_token_s[10:].tolist() == [0.5, 0.5, 0.5]


def test_max_waiting_tokens_one_admits_at_every_step_and_the_merged_batch_decodes_first():
    # Arrivals at 0.1 and 0.3. At 0.25 the first joins (prefill [0.25, 0.5]); 0.5 is the merged batch's decode,
    # with no attempt; the second joins at 0.75.
    trace = make_trace([(0.0, 8, LONG)] * 10 + [(0.1, 8, 4), (0.3, 8, 4)])
    result = run(trace, scheduler="tgi", max_waiting_tokens=1)
    assert result.recorder.first_scheduled_s[10:].tolist() == [0.25, 0.75]


def test_waiting_served_ratio_zero_admits_any_waiting_request():
    result = run(running_batch_and_late_arrivals(1), scheduler="tgi", waiting_served_ratio=0.0)
    assert result.recorder.first_scheduled_s[10] == 0.25


SMALL_BUDGET = {
    "scheduler": "tgi",
    "max_total_tokens": 200,
    "max_input_tokens": 100,
    "max_batch_prefill_tokens": 150,
    "max_batch_total_tokens": 320,  # 20 blocks of 16
}


def test_budget_counts_prompt_plus_max_new_tokens_so_the_third_request_waits():
    # Each reserves 16 + 100 tokens (8 blocks): A and B fit (232 <= 320), A + B + C (348) do not, so C waits for
    # a finish: A and B end at 0.25 + 99 × 0.25 = 25.0. vLLM, which does not reserve, runs all three at once.
    trace = make_trace([(0.0, 16, 100)] * 3)
    tgi = run(trace, **SMALL_BUDGET)
    assert tgi.recorder.first_scheduled_s.tolist() == [0.0, 0.0, 25.0]
    vllm = run(trace)
    assert vllm.recorder.first_scheduled_s.tolist() == [0.0, 0.0, 0.0]


def test_clients_without_max_new_tokens_reserve_up_to_max_total_tokens():
    # max_new_tokens = 200 - 16 = 184 each: A + B = 400 > 320, so B waits for A (0.25 + 3 × 0.25 = 1.0).
    trace = make_trace([(0.0, 16, 4)] * 2)
    result = run(trace, **SMALL_BUDGET, max_new_tokens="max_total_tokens")
    assert result.recorder.first_scheduled_s.tolist() == [0.0, 1.0]
    oracle = run(trace, **SMALL_BUDGET)
    assert oracle.recorder.first_scheduled_s.tolist() == [0.0, 0.0]


def test_a_fixed_max_new_tokens_never_falls_below_the_recorded_output():
    scheduler = build_scheduler(max_new_tokens="50")
    assert scheduler.max_new_tokens(16, 10) == 50
    assert scheduler.max_new_tokens(16, 80) == 80  # the trace shows it generated 80: it asked for >= 80


def test_min_batch_size_is_computed_in_f32_as_tgi_does():
    # Rust: (batch_size as f32 * waiting_served_ratio).floor(). 90 × 0.7 is 62.99… in f64 but 63 in f32.
    assert build_scheduler(waiting_served_ratio=0.7)._min_batch_size(90) == 63
    assert build_scheduler()._min_batch_size(10) == 3


@pytest.mark.parametrize(
    ("max_new_tokens", "reserved_slots", "internal_slots"),
    [
        ("oracle", 115 - 16, 128 - 115),  # 8 blocks = 128 slots for 16 + 100 - 1; 115 will be filled
        ("max_total_tokens", 115 - 16, 208 - 115),  # 16 + 184 - 1 = 199 -> 13 blocks = 208 slots
    ],
)
def test_memory_shows_the_blocks_tgi_holds_for_tokens_not_yet_generated(
    max_new_tokens, reserved_slots, internal_slots
):
    result = run(make_trace([(0.0, 16, 100)]), **SMALL_BUDGET, max_new_tokens=max_new_tokens)
    admitted = result.recorder.timeline_rows()[1]  # (time_s, replica, token_states, reserved, internal, ...)
    assert admitted[2:5] == (
        16 * KV_BYTES_PER_TOKEN,
        reserved_slots * KV_BYTES_PER_TOKEN,
        internal_slots * KV_BYTES_PER_TOKEN,
    )


def test_max_concurrent_requests_refuses_the_overflow_at_arrival():
    result = run(make_trace([(0.0, 8, 4)] * 3), scheduler="tgi", max_concurrent_requests=2)
    assert result.summary["num_finished"] == 2
    assert "max_concurrent_requests" in result.recorder.rejected_reason[2]


def test_validation_rejects_prompts_over_max_input_tokens_and_overlong_requests():
    trace = make_trace([(0.0, 120, 4), (0.0, 90, 150), (0.0, 90, 4)])
    result = run(trace, **SMALL_BUDGET)
    reasons = result.recorder.rejected_reason
    assert "max_input_tokens" in reasons[0]
    assert "max_total_tokens" in reasons[1]
    assert result.summary["num_finished"] == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"allocator": "reserved:max"}, "use --allocator paged"),
        ({"max_input_tokens": 300, "max_total_tokens": 200}, "must be < max_total_tokens"),
        ({"max_input_tokens": 100, "max_batch_prefill_tokens": 50}, "must be >= max_input_tokens"),
        ({"max_batch_total_tokens": 10**9}, "exceeds the KV cache"),
        ({"max_new_tokens": "lots"}, "max_new_tokens must be"),
    ],
)
def test_bad_tgi_options_are_clear_errors(fields, message):
    with pytest.raises(KvsimError, match=message):
        run(make_trace([(0.0, 8, 4)]), scheduler="tgi", **fields)


def test_tgi_options_with_another_scheduler_are_an_error():
    with pytest.raises(KvsimError, match="waiting_served_ratio is a tgi option"):
        run(make_trace([(0.0, 8, 4)]), waiting_served_ratio=0.5)


def build_scheduler(**fields) -> TgiScheduler:
    from kvsim.simulator.allocators import make_allocator
    from kvsim.simulator.schedulers.tgi_config import resolve_tgi_config
    from kvsim.simulator.specs import ModelSpec

    model = ModelSpec.from_name("llama-2-7b")
    allocator = make_allocator("paged", model=model, tp=1, capacity_bytes=4000 * KV_BYTES_PER_TOKEN)
    config = resolve_tgi_config(SimConfig(scheduler="tgi", **fields), max_model_len=4096, allocator=allocator)
    return TgiScheduler(allocator, config=config)


class CheckedTgi(TgiScheduler):
    """Checks the reservation invariant after every schedule()."""

    def schedule(self, now_s):
        batch = super().schedule(now_s)
        reserved = sum(self._reservation(req)[2] for req in self.running)
        assert reserved == self.num_reserved_blocks <= self.num_pool_blocks
        paged = self.allocator.inner.breakdown()
        used_blocks = (paged.capacity_bytes - paged.free) // self.allocator.block_bytes
        assert used_blocks <= self.num_reserved_blocks  # what is in use lies inside the reservation
        view = self.allocator.breakdown()  # TGI's holdings: the reservation is in use, not free
        assert view.capacity_bytes == paged.capacity_bytes and min(view.as_dict().values()) >= 0
        assert view.free == paged.capacity_bytes - self.num_reserved_blocks * self.allocator.block_bytes
        if batch is not None and batch.prefill_q_lens:
            assert not batch.num_decode_seqs  # a new batch is prefilled alone
            assert sum(batch.prefill_q_lens) <= self.prefill_token_budget
        assert len(self.waiting) + len(self.running) <= self.config.max_concurrent_requests
        self.allocator.check_invariants()
        return batch


@st.composite
def tgi_workloads(draw):
    num = draw(st.integers(1, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    trace = Trace(
        request_id=np.arange(num, dtype=np.int64),
        arrival_s=np.cumsum(rng.exponential(1.0 / draw(st.sampled_from([0.5, 5.0, 50.0])), num)),
        num_prompt_tokens=rng.integers(1, 300, num),
        num_output_tokens=rng.integers(1, 200, num),
        provenance=Provenance(source="hypothesis"),
    )
    fields = {
        "scheduler": "tgi",
        "kv_capacity_bytes": draw(st.sampled_from([600, 2000])) * KV_BYTES_PER_TOKEN,
        "max_total_tokens": 520,
        "max_input_tokens": 300,
        "waiting_served_ratio": draw(st.sampled_from([0.0, 0.3, 1.2])),
        "max_waiting_tokens": draw(st.sampled_from([1, 5, 20])),
        "max_new_tokens": draw(st.sampled_from(["oracle", "max_total_tokens", "64"])),
        "max_concurrent_requests": draw(st.sampled_from([4, 128])),
        "max_batch_size": draw(st.sampled_from([None, 3])),
        "allocator": draw(st.sampled_from(["paged", "paged:block_size=8"])),
    }
    return trace, fields


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tgi_workloads())
def test_budget_is_never_exceeded_and_every_request_finishes_or_is_rejected(workload):
    trace, fields = workload
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(SCHEDULERS, "tgi", CheckedTgi)
        result = run(trace, step_s=0.25, per_token_s=0.001, **fields)
    summary = result.summary
    assert summary["num_finished"] + summary["num_rejected"] == len(trace)
    assert summary["num_preemptions"] == 0
    stepped = run(trace, step_s=0.25, per_token_s=0.001, **fields, fast_forward=False)
    assert stepped.summary == summary
    assert stepped.recorder.timeline_rows() == result.recorder.timeline_rows()


FF_CASES = {
    "defaults": SimConfig(scheduler="tgi", kv_capacity_bytes=1500 * KV_BYTES_PER_TOKEN),
    "max-total-tokens-policy": SimConfig(
        scheduler="tgi",
        kv_capacity_bytes=3000 * KV_BYTES_PER_TOKEN,
        max_new_tokens="max_total_tokens",
        max_total_tokens=800,
        max_input_tokens=500,
    ),
    "overloaded-small-batches": SimConfig(
        scheduler="tgi",
        kv_capacity_bytes=1500 * KV_BYTES_PER_TOKEN,
        max_concurrent_requests=6,
        max_batch_size=4,
        max_waiting_tokens=3,
        waiting_served_ratio=1.2,
    ),
}


@pytest.mark.parametrize("case", list(FF_CASES))
def test_fast_forward_equals_stepping_and_runs_are_deterministic(case):
    trace = random_trace(80, seed=3, rate_per_s=8.0)  # roofline cost: step times grow with context
    config = FF_CASES[case]
    fast = simulate(config, trace)
    again = simulate(config, trace)
    slow = simulate(dataclasses.replace(config, fast_forward=False), trace)
    assert fast.summary["num_finished"] > 0
    for other in (again, slow):
        assert fast.summary == other.summary
        for name in ("first_scheduled_s", "first_token_s", "finish_s"):
            np.testing.assert_array_equal(getattr(fast.recorder, name), getattr(other.recorder, name))
        assert fast.recorder.timeline_rows() == other.recorder.timeline_rows()


def test_cli_flags_and_toml_keys_spell_tgi_options_as_tgi_does(tmp_path):
    toml = tmp_path / "tgi.toml"
    toml.write_text('scheduler = "tgi"\nmax_new_tokens = 64\nwaiting_served_ratio = 1.2\n')
    args = ["simulate", "--trace", "azure-code", "--num-requests", "40", "--config", str(toml)]
    result = CliRunner().invoke(main, [*args, "--max-waiting-tokens", "5", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "runs" / "paged_block_size-16" / "config.json").read_text())
    assert (config["scheduler"], config["max_new_tokens"], config["max_waiting_tokens"]) == ("tgi", "64", 5)
    assert config["waiting_served_ratio"] == 1.2
    assert config["max_batch_total_tokens"] > 0  # resolved from the KV capacity
    bad = CliRunner().invoke(main, [*args, "--allocator", "vattention"])
    assert bad.exit_code == 2 and "use --allocator paged" in bad.output


def test_reproduce_tgi_vs_vllm_prints_every_system_at_every_rate():
    from kvsim.cli.reproduce_tgi import RATES_PER_S, SYSTEMS

    result = CliRunner().invoke(main, ["reproduce", "tgi-vs-vllm", "--num-requests", "20"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.split()[:1] and line.split()[0][0].isdigit()]
    assert len(rows) == len(RATES_PER_S) * len(SYSTEMS)
    assert "24x" in result.output  # the paper's claim is printed beside kvsim's numbers
