"""A report a person can read: latency axes that show every line, rejections with their reasons, the words
explained, columns that fit (issue 19, "Confusing output")."""

import json
import re

import numpy as np

from kvsim.reports import write_report
from kvsim.reports.figures import latency_cdf_figure
from kvsim.reports.figures.latency_cdf import axis_type
from kvsim.reports.rejections import rejection_rows
from kvsim.reports.runs import read_run
from kvsim.reports.summary import summary_table


def edit_summary(run_dir, **changes):
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(changes)
    path.write_text(json.dumps(summary))
    return run_dir


def columns(ttft_s):
    ttft_s = np.asarray(ttft_s, dtype=float)
    return {
        "ttft_s": ttft_s,
        "tpot_s": ttft_s / 100,
        "e2e_s": ttft_s + 1,
        "normalized_latency_s_per_token": ttft_s,
    }


def test_a_saturated_configuration_puts_the_ttft_axis_on_a_log_scale():
    rng = np.random.default_rng(0)
    healthy = rng.uniform(0.05, 0.2, 500)  # median ~0.12 s
    saturated = rng.uniform(5, 80, 500)  # a queue that never drains: up to 80 s
    fig = latency_cdf_figure({"paged": columns(healthy), "reserved:max": columns(saturated)})
    assert fig.layout.xaxis.type == "log"  # TTFT: 80 s is over 100x the healthy median
    assert fig.layout.xaxis3.type == "linear"  # e2e: 81 s is 72x the median of ~1.1 s: linear
    similar = latency_cdf_figure({"a": columns(healthy), "b": columns(healthy * 1.5)})
    assert similar.layout.xaxis.type == "linear"


def test_axis_rule_is_two_decades_from_the_smallest_median_and_never_log_with_zeros():
    assert axis_type([np.array([1.0, 2.0, 3.0]), np.array([50.0, 301.0])]) == "log"  # 301 > 100 x 2
    assert axis_type([np.array([1.0, 2.0, 3.0]), np.array([50.0, 199.0])]) == "linear"
    assert axis_type([np.array([0.0, 2.0, 3.0]), np.array([500.0])]) == "linear"
    assert axis_type([np.array([])]) == "linear"


def test_rejections_are_listed_by_reason_with_their_numbers(make_run, tmp_path):
    structured = {
        "prompt {0} + output {1} tokens exceed max_model_len {2}": {
            "count": 143,
            "values": [{"min": 4070, "max": 7930}, {"min": 27, "max": 400}, {"min": 4096, "max": 4096}],
        }
    }
    a = edit_summary(make_run("a", label="paged"), num_rejected=143, rejected_by_reason=structured)
    b = edit_summary(make_run("b", label="reserved:max"), num_rejected=143, rejected_by_reason=structured)
    c = edit_summary(
        make_run("c", label="vattention"),
        num_rejected=2,
        rejected_by_reason={"prompt N tokens exceed KV capacity N": 2},  # folders written before templates
    )
    assert rejection_rows([read_run(a), read_run(b)]) == [
        ["all 2", 143, "prompt 4070..7930 + output 27..400 tokens exceed max_model_len 4096"]
    ]
    text = write_report([a, b, c], tmp_path / "r.html").read_text()
    table = text[text.index('id="rejections"') :]
    assert "<h2>Rejected requests by reason</h2>" in text
    assert "<td>prompt 4070..7930 + output 27..400 tokens exceed max_model_len 4096</td>" in table
    assert '<td class="lines">paged<br>reserved:max</td><td class="num">143</td>' in table
    assert "<td>prompt N tokens exceed KV capacity N</td>" in table


def test_terms_and_header_hover_text_explain_rejected_saturated_and_vattention_counters(make_run, tmp_path):
    run = edit_summary(
        make_run("va", label="vattention"),
        allocator_stats={"num_pages_mapped": 128512, "map_s": 5.14, "map_charged_s": 0.0585},
    )
    text = write_report([run], tmp_path / "r.html").read_text()
    terms = text[text.index('id="terms"') :]
    for term in ("Rejected", "Saturated", "num_pages_mapped", "map_s", "map_charged_s"):
        assert f"<dt>{term}</dt>" in terms
    assert "with overlapped mapping (the default) only what did not hide behind the step before" in terms
    assert re.search(r'<th title="Requests refused at arrival[^"]*">Rejected</th>', text)
    assert '<span title="vAttention: total time spent mapping pages' in text  # the counter's name, on hover


def test_prefix_cache_hit_rates_are_columns_only_when_a_run_has_them(make_run):
    cached = edit_summary(
        make_run("p", label="paged:enable_prefix_caching=true"),
        prefix_cache={
            "num_query_tokens": 1000,
            "num_hit_tokens": 250,
            "num_query_blocks": 60,
            "num_hit_blocks": 15,
            "num_evicted_blocks": 7,
            "hit_rate_tokens": 0.25,
            "hit_rate_blocks": 0.25,
        },
    )
    plain = make_run("q", label="reserved:max")
    header, rows, _ = summary_table([read_run(cached), read_run(plain)])
    i = header.index("Prefix-cache hits (% of tokens)")
    assert [row[i] for row in rows] == [25.0, None]
    assert [row[header.index("Cached blocks evicted")] for row in rows] == [7, None]
    header, _, _ = summary_table([read_run(plain)])
    assert not any("Prefix-cache" in h for h in header)


def test_what_every_run_shares_is_said_once_above_the_table(make_run, tmp_path):
    runs = [make_run("a", label="paged"), make_run("b", label="reserved:max", seed=1)]
    header, _, shared = summary_table([read_run(r) for r in runs])
    assert shared == {"Scheduler": "vllm", "Model": "opt-13b", "GPU": "a100-40gb"}
    assert "Model" not in header and "Cost model" in header  # where step times came from stays in each row
    text = write_report(runs, tmp_path / "r.html").read_text()
    assert (
        '<p class="shared" id="shared">Scheduler vllm, Model opt-13b, GPU a100-40gb (every run).</p>' in text
    )
