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


def test_scheduler_batches_carry_each_field_where_batch_declares_it():
    """SchedulerBase._batch builds Batch by position (cheaper than keywords): a reordered Batch must fail here."""
    import dataclasses

    from kvsim.simulator.allocators import make_allocator
    from kvsim.simulator.batch import Batch
    from kvsim.simulator.request_state import RequestState
    from kvsim.simulator.schedulers.vllm import VllmScheduler
    from kvsim.simulator.specs import ModelSpec

    model = ModelSpec.from_name("llama-2-7b")
    for spec, block_size in (("paged:block_size=32", 32), ("reserved:max", 16)):
        alloc = make_allocator(spec, model=model, tp=1, capacity_bytes=1 << 32)
        sched = VllmScheduler(alloc, max_num_seqs=8, max_num_batched_tokens=4096)
        sched._begin_step()
        sched._prefills = [(RequestState(0, 0, 0.0, 100, 5), 60)]
        sched._num_decode_seqs, sched._decode_kv_tokens, sched._decode_kv_blocks = 3, 300, 21
        sched._carried_overhead_s = 0.5
        expected = {
            "prefill_q_lens": (60,),
            "prefill_kv_lens": (60,),
            "num_decode_seqs": 3,
            "decode_kv_tokens": 300,
            "decode_kv_blocks": 21,
            "attention_kernel": alloc.attention_kernel,
            "block_size": block_size,
            "allocator_overhead_s": 0.5,
        }
        assert dataclasses.asdict(sched._batch()) == expected
        assert [f.name for f in dataclasses.fields(Batch)] == list(expected)
