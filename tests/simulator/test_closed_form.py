"""Closed-form timelines with a constant step cost (0.25 s: exact in binary floating point)."""

from __future__ import annotations

import numpy as np
from simtools import make_trace, run


def test_lone_request_ttft_is_one_step_and_tpot_one_step():
    # Prefill [1.00, 1.25] makes token 1; decodes of 4 more tokens end at 2.25.
    result = run(make_trace([(1.0, 100, 5)]))
    rec = result.recorder
    assert rec.first_scheduled_s[0] == 1.0
    assert rec.first_token_s[0] == 1.25
    assert rec.finish_s[0] == 2.25
    latency = result.summary["latency"]
    assert latency["ttft_s"]["mean"] == 0.25
    assert latency["tpot_s"]["mean"] == 0.25
    assert latency["e2e_s"]["mean"] == 1.25
    assert latency["normalized_latency_s_per_token"]["mean"] == 1.25 / 5
    assert result.summary["duration_s"] == 1.25
    assert result.summary["throughput"]["output_tokens_per_s"] == 5 / 1.25


def test_single_token_output_finishes_at_prefill_and_has_no_tpot():
    result = run(make_trace([(0.0, 10, 1)]))
    assert result.recorder.finish_s[0] == 0.25
    assert result.summary["latency"]["tpot_s"]["mean"] is None


def test_two_requests_exact_vllm_timeline():
    # A (10 prompt, 3 out) at 0.0; B (20 prompt, 2 out) at 0.3.
    # [0.00,0.25] prefill A -> A tok1 | [0.25,0.50] decode A -> A tok2 | B arrived mid-step: seen at 0.50
    # [0.50,0.75] prefill B alone (vLLM v0: prefill-only steps) -> B tok1, A waits
    # [0.75,1.00] decode A and B -> A tok3 (done), B tok2 (done)
    result = run(make_trace([(0.0, 10, 3), (0.3, 20, 2)]))
    rec = result.recorder
    assert rec.first_scheduled_s.tolist() == [0.0, 0.5]
    assert rec.first_token_s.tolist() == [0.25, 0.75]
    assert rec.finish_s.tolist() == [1.0, 1.0]
    assert result.summary["latency"]["queueing_delay_s"]["max"] == 0.5 - 0.3
    rows = result.recorder.timeline_rows()
    # initial, admit A, A prefilled, admit B, B prefilled, both finished (idle)
    assert [row[0] for row in rows] == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0]
    num_batched_tokens = [row[-1] for row in rows]
    assert num_batched_tokens == [0, 10, 1, 20, 2, 0]
    # KV holds the prompt plus every output token but the newest: A 10+2-1 = 11 ... at 1.0 nothing.
    assert rows[-1][2] == 0  # token_states


def test_chunked_prefill_mixes_decodes_and_chunks_within_the_budget():
    # budget 8 tokens: A (12 prompt) prefills in chunks 8 + 4; its first token comes at the end of chunk 2.
    result = run(make_trace([(0.0, 12, 2)]), enable_chunked_prefill=True, max_num_batched_tokens=8, max_num_seqs=8)
    assert result.recorder.first_token_s[0] == 0.5
    assert result.recorder.finish_s[0] == 0.75


def test_time_weighted_batch_size_is_exact():
    # Two identical requests at 0: one prefill step of 2 seqs, then 3 decode steps of 2 seqs.
    result = run(make_trace([(0.0, 8, 4), (0.0, 8, 4)]))
    assert result.summary["batch"]["mean_num_seqs"] == 2.0
    assert result.summary["batch"]["max_num_seqs"] == 2
    assert result.summary["batch"]["mean_num_batched_tokens"] == (16 + 3 * 2) / 4


def test_token_states_integrate_over_the_timeline():
    result = run(make_trace([(0.0, 16, 1)]))
    bytes_per_token = 512 * 1024  # llama-2-7b, fp16, TP 1
    # 16 prompt tokens of KV held during [0, 0.25]; the run lasts 0.25 s.
    assert result.summary["memory"]["whole_run"]["token_states"] == 16 * bytes_per_token
    assert np.isnan(result.recorder.finish_s).sum() == 0


def test_overlapped_vattention_mapping_hides_behind_a_step_only_when_there_was_one():
    # 2^-10 s per page, 64 pages a group (32 layers, K and V): 0.0625 s to map a 100-token prompt's group.
    spec = "vattention:mapping=overlapped,reuse_pages=false,map_latency_s=0.0009765625"
    # A reaches an idle replica: nothing ran before its prefill, so all of its mapping shows.
    # B arrives while A decodes: its mapping hides behind A's decode step before its prefill.
    # C reaches the replica idle again, long after A's and B's last steps: all of it shows again.
    result = run(make_trace([(1.0, 100, 3), (1.4, 100, 2), (10.0, 100, 2)]), allocator=spec)
    rec = result.recorder
    assert rec.first_token_s.tolist() == [1.3125, 1.8125, 10.3125]
    assert result.summary["allocator_stats"]["map_charged_s"] == 2 * 0.0625
