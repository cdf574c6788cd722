"""`kvsim reproduce vllm-blog`: the development set's rows simulated with their stated set-ups."""

import numpy as np
import pytest
from click.testing import CliRunner

from kvsim.cli import main
from kvsim.cli.reproduce_blog import (
    NUM_REQUESTS,
    fitted_point,
    implied_decode_concurrency,
    load_rows,
    make_trace,
    workload_lengths,
)


def test_the_shipped_copy_has_the_twelve_setups():
    rows = load_rows()["rows"]
    assert len(rows) == 12 and {r["gpu"] for r in rows} == {"h100-sxm", "a100-80gb"}


def test_sharegpt_lengths_keep_the_datasets_shape_at_the_posts_means():
    prompt, output = workload_lengths("sharegpt", seed=0)
    assert len(prompt) == NUM_REQUESTS and prompt.min() >= 1 and output.min() >= 1
    # 500 rows drawn from 30,731: their mean is near the dataset's, so the scaled mean near the post's
    assert abs(prompt.mean() / 202 - 1) < 0.15 and abs(output.mean() / 179 - 1) < 0.15
    assert np.array_equal(workload_lengths("sharegpt", seed=0)[0], prompt)  # seeded
    fixed_prompt, fixed_output = workload_lengths("prefill-heavy", seed=0)
    assert set(fixed_prompt) == {462} and set(fixed_output) == {16}


def test_qps_inf_sends_everything_at_once_and_a_rate_is_poisson():
    prompt, output = workload_lengths("decode-heavy", seed=0)
    assert make_trace(prompt, output, float("inf"), 0).arrival_s.max() == 0.0
    gaps = np.diff(make_trace(prompt, output, 4.0, 0).arrival_s)
    assert abs(gaps.mean() - 0.25) < 0.03 and gaps.min() > 0


def test_one_row_prints_kvsim_beside_the_published_numbers():
    result = CliRunner().invoke(
        main, ["reproduce", "vllm-blog", "--row", "llama-3-70b a100-80gb decode-heavy"]
    )
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines() if line.startswith("llama-3-70b")]
    # throughput at inf, mean TPOT at 2 req/s (the only rate published for this row), mean TTFT at inf
    assert [(cells[4], cells[-5], cells[-1]) for cells in lines] == [
        ("throughput", "inf", "pred"),  # an A100 row: predicted, not fitted
        ("mean", "2", "pred"),
        ("mean", "inf", "-"),
    ]
    throughput = lines[0]
    assert throughput[-3] == "6.74" and float(throughput[-2]) == round(float(throughput[-4]) / 6.74, 2)
    assert "engine vllm-v0 (vLLM v0.6.0, serial host time, num_scheduler_steps 10)" in result.output
    assert "(fitted)" in result.output and "(assumed)" in result.output
    assert "cost model (a100-80gb): measured (Vidur, A100 80GB" in result.output


def test_a_tpot_no_256_sequence_engine_could_show_is_marked_not_fitted():
    # H100 8B ShareGPT at QPS inf: 36.91 req/s x 56.2 ms x 178 tokens = 369 sequences decoding at once
    row = next(
        r
        for r in load_rows()["rows"]
        if (r["model"], r["gpu"], r["workload"]) == ("llama-3-8b", "h100-sxm", "sharegpt")
    )
    assert implied_decode_concurrency(row, "inf") == pytest.approx(36.91 * 0.0562 * 178)
    assert implied_decode_concurrency(row, "2") == pytest.approx(2 * 0.0085 * 178)
    assert not fitted_point(row, "inf") and fitted_point(row, "16")
    assert fitted_point(row, "32")  # 32 req/s is below its 36.91 at QPS inf, 83 sequences at once
    overloaded = next(
        r
        for r in load_rows()["rows"]
        if (r["model"], r["gpu"], r["workload"]) == ("llama-3-70b", "h100-sxm", "prefill-heavy")
    )
    assert implied_decode_concurrency(overloaded, "32") < 256 and not fitted_point(
        overloaded, "32"
    )  # 32 > 25.26
