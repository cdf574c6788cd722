"""Rejections explained (docs/outputs.md): summary.json's ``rejected_by_reason`` keys are the reasons' templates
with their numbers beside them, and ``kvsim simulate`` prints them under its table."""

from __future__ import annotations

import pytest
from simtools import make_trace, run

from kvsim.cli.simulate import rejection_lines
from kvsim.simulator.metrics import reason_template, rejections_by_reason, render_reason


@pytest.mark.parametrize(
    "reason, template, values",
    [
        (
            "prompt 4085 + output 62 tokens exceed max_model_len 4096",
            "prompt {0} + output {1} tokens exceed max_model_len {2}",
            [4085, 62, 4096],
        ),
        (  # numbers inside a label are part of the name, not values
            "reserved:pow2 needs a contiguous region of 8192 slots, but the largest buddy block of this replica "
            "(6000 slots) is 4096 slots",
            "reserved:pow2 needs a contiguous region of {0} slots, but the largest buddy block of this replica "
            "({1} slots) is {2} slots",
            [8192, 6000, 4096],
        ),
        (
            "vattention:page_size=64KiB needs 3 page groups of 21.5 tokens but the replica holds only 2.",
            "vattention:page_size=64KiB needs {0} page groups of {1} tokens but the replica holds only {2}.",
            [3, 21.5, 2],
        ),
        ("paged:block_size=16 on llama-2-7b", "paged:block_size=16 on llama-2-7b", []),
    ],
)
def test_a_reason_splits_into_its_template_and_its_numbers(reason, template, values):
    assert reason_template(reason) == (template, values)
    assert render_reason(template, [{"min": v, "max": v} for v in values]) == reason


def test_reasons_of_one_template_are_counted_with_the_range_of_each_number():
    by_reason = rejections_by_reason(
        [
            "prompt 4085 + output 62 tokens exceed max_model_len 4096",
            "prompt 3990 + output 700 tokens exceed max_model_len 4096",
            "prompt 4085 + output 62 tokens exceed max_model_len 4096",
            "prompt longer than max_num_batched_tokens",
        ]
    )
    assert by_reason == {
        "prompt longer than max_num_batched_tokens": {"count": 1, "values": []},
        "prompt {0} + output {1} tokens exceed max_model_len {2}": {
            "count": 3,
            "values": [{"min": 3990, "max": 4085}, {"min": 62, "max": 700}, {"min": 4096, "max": 4096}],
        },
    }
    template = "prompt {0} + output {1} tokens exceed max_model_len {2}"
    assert render_reason(template, by_reason[template]["values"]) == (
        "prompt 3990..4085 + output 62..700 tokens exceed max_model_len 4096"
    )


def over_context_trace():
    # llama-2-7b's context is 4,096 tokens: the first two requests can never be served
    return make_trace([(0.0, 4000, 200), (0.0, 3000, 1500), (0.0, 10, 2)])


def test_the_summary_keeps_each_template_with_its_count_and_numbers_and_requests_keep_their_text():
    result = run(over_context_trace())
    assert result.summary["rejected_by_reason"] == {
        "prompt {0} + output {1} tokens exceed max_model_len {2}": {
            "count": 2,
            "values": [{"min": 3000, "max": 4000}, {"min": 200, "max": 1500}, {"min": 4096, "max": 4096}],
        }
    }
    assert result.recorder.rejected_reason[1] == "prompt 3000 + output 1500 tokens exceed max_model_len 4096"


def test_the_cli_prints_the_reasons_under_the_table_once_when_every_configuration_rejects_alike():
    results = [run(over_context_trace()), run(over_context_trace(), allocator="paged:block_size=32")]
    assert rejection_lines(results) == [
        "rejected 2 of 3 requests, in every configuration:",
        "  2  prompt 3000..4000 + output 200..1500 tokens exceed max_model_len 4096",
    ]


def test_the_cli_prints_the_reasons_per_configuration_when_they_differ():
    tight = 2048 * 512 * 1024  # 2,048 token slots of llama-2-7b: the 2,010-token request fits only in paged
    results = [
        run(over_context_trace(), kv_capacity_bytes=tight),
        run(over_context_trace(), kv_capacity_bytes=tight, allocator="reserved:max", scheduler="orca"),
    ]
    lines = rejection_lines(results)
    assert lines[0] == "rejected by paged:block_size=16: 2 of 3 requests:"
    assert lines[2].startswith("rejected by reserved:max: 3 of 3 requests:")
    assert "reserved:max needs a contiguous region of 4096 slots" in "\n".join(lines[3:])


def test_nothing_is_printed_without_rejections():
    assert rejection_lines([run(make_trace([(0.0, 10, 2)]))]) == []
