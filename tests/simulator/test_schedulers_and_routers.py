"""Scheduler policies and routers, as exact timelines with a 0.25 s constant step."""

from __future__ import annotations

from simtools import make_trace, run

# A and B start together; C arrives during the first step.
TRACE = [(0.0, 10, 2), (0.0, 10, 4), (0.1, 10, 2)]


def test_static_batch_runs_until_its_last_request_ends():
    result = run(make_trace(TRACE), scheduler="static", max_num_seqs=8)
    rec = result.recorder
    # {A, B}: prefill [0, .25], decodes to .5 (A done) and 1.0 (B done); C waits for the next batch.
    assert rec.finish_s.tolist() == [0.5, 1.0, 1.5]
    assert rec.first_scheduled_s.tolist() == [0.0, 0.0, 1.0]


def test_static_batch_holds_finished_members_memory_until_it_ends():
    result = run(make_trace(TRACE[:2]), scheduler="static", max_num_seqs=8)
    rows = result.recorder.timeline_rows()
    row_at_half = [row for row in rows if row[0] == 0.5][-1]
    # A finished at 0.5 but its 10 + 1 tokens of KV stay, beside B's 10 + 2.
    assert row_at_half[2] == (11 + 12) * 512 * 1024


def test_orca_batches_a_new_prompt_with_running_decodes():
    result = run(make_trace(TRACE), scheduler="orca")
    rec = result.recorder
    # [0,.25] prefill A+B | [.25,.5] decode A(done), B + prefill C | [.5,.75] B, C(done) | [.75,1.0] B done
    assert rec.first_token_s.tolist() == [0.25, 0.25, 0.5]
    assert rec.finish_s.tolist() == [0.5, 1.0, 0.75]


def test_vllm_runs_prefill_only_steps():
    result = run(make_trace(TRACE))
    rec = result.recorder
    # [0,.25] prefill A+B | [.25,.5] prefill C alone | [.5,.75] decode A(done), B, C(done) | B to 1.25
    assert rec.first_token_s.tolist() == [0.25, 0.25, 0.5]
    assert rec.finish_s.tolist() == [0.75, 1.25, 0.75]


def test_max_num_seqs_caps_the_batch():
    result = run(make_trace([(0.0, 10, 3)] * 3), max_num_seqs=2)
    assert result.summary["batch"]["max_num_seqs"] == 2
    assert result.recorder.first_scheduled_s.tolist() == [0.0, 0.0, 0.75]


ROUTED = [(0.0, 10, 100), (0.1, 10, 2), (1.0, 10, 2)]


def test_round_robin_alternates_replicas():
    result = run(make_trace(ROUTED), num_replicas=2, router="round_robin")
    assert result.recorder.replica.tolist() == [0, 1, 0]


def test_least_outstanding_avoids_the_busy_replica():
    result = run(make_trace(ROUTED), num_replicas=2, router="least_outstanding")
    # At 1.0 replica 0 still serves the long request; replica 1 finished its one at 0.6.
    assert result.recorder.replica.tolist() == [0, 1, 1]
    assert result.recorder.finish_s[1] == 0.6
