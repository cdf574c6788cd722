"""`kvsim reproduce`: the vLLM paper's set-ups run and keep the paper's ordering."""

from __future__ import annotations

import re

from click.testing import CliRunner

from kvsim.cli import main
from kvsim.cli.reproduce import WORKLOADS, paper_like_trace


def test_paper_like_lengths_have_the_papers_means_and_fit_the_context():
    trace = paper_like_trace(WORKLOADS["sharegpt"], seed=0, num_requests=20_000)
    assert abs(trace.num_prompt_tokens.mean() - 161.31) / 161.31 < 0.05
    assert abs(trace.num_output_tokens.mean() - 337.99) / 337.99 < 0.05
    assert (trace.num_prompt_tokens + trace.num_output_tokens).max() <= 2048


def test_fig2_token_state_shares_follow_the_papers_order():
    result = CliRunner().invoke(main, ["reproduce", "vllm-fig2", "--num-requests", "400"])
    assert result.exit_code == 0, result.output
    shares = {}
    for line in result.output.splitlines():
        match = re.match(r"(Orca \(\w+\)|vLLM)\s+([\d.]+)%", line)
        if match:
            shares[match.group(1)] = float(match.group(2))
    assert list(shares) == ["Orca (Max)", "Orca (Pow2)", "Orca (Oracle)", "vLLM"]
    assert shares["Orca (Max)"] < shares["Orca (Pow2)"] < shares["Orca (Oracle)"] < shares["vLLM"]


def test_vllm_sustains_a_higher_rate_than_orca_max():
    from kvsim.cli.reproduce import max_rate

    vllm = max_rate("vLLM", "vllm", "paged:block_size=16", threshold=0.5, seed=0, num_requests=120)
    orca_max = max_rate("Orca (Max)", "orca", "reserved:max", threshold=0.5, seed=0, num_requests=120)
    assert vllm > 2 * orca_max


def test_parallel_samples_share_their_prompt_blocks_more_as_n_grows():
    result = CliRunner().invoke(main, ["reproduce", "vllm-fig15", "--num-requests", "150"])
    assert result.exit_code == 0, result.output
    savings = [float(m.group(1)) for m in re.finditer(r"^\d\s+([\d.]+)%", result.output, re.M)]
    assert len(savings) == 3
    assert 0 < savings[0] < savings[1] < savings[2] < 50
