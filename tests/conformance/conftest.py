"""The conformance tests' shared case: two requests whose every step can be worked out by hand."""

from __future__ import annotations

import copy

import pytest

TWO_REQUESTS = {
    "name": "two",
    "config": {
        "block_size": 16,
        "num_blocks": 8,
        "max_num_seqs": 4,
        "max_num_batched_tokens": 32,
        "max_model_len": 256,
        "enable_chunked_prefill": True,
        "enable_prefix_caching": True,
        "long_prefill_token_threshold": 0,
    },
    "requests": [
        {"index": 0, "arrival_step": 0, "num_prompt_tokens": 40, "num_output_tokens": 3},
        {"index": 1, "arrival_step": 0, "num_prompt_tokens": 20, "num_output_tokens": 2},
    ],
}


@pytest.fixture(scope="module")
def two_requests() -> dict:
    """Budget 32, 8 blocks: request 0 (40-token prompt, 3 output tokens) and request 1 (20, 2), both at step 0."""
    return copy.deepcopy(TWO_REQUESTS)
