"""Bad arguments fail fast with a ValueError that names the argument, before any kernel runs."""

from __future__ import annotations

import pytest
import torch
from kernel_cases import cu_seqlens, generator, int32, paged_cache, randn

from kvsim.kernels import (
    contiguous_decode_attention,
    contiguous_prefill_attention,
    paged_decode_attention,
    paged_prefill_attention,
)

F16 = torch.float16


@pytest.fixture
def decode_args(device):
    """Valid paged-decode arguments: 2 sequences of 20 and 5 tokens, 4 q heads over 2 KV heads, block 16."""
    gen = generator(3)
    k_cache, v_cache, block_table = paged_cache([20, 5], 2, 64, 16, F16, device, gen)
    q = randn((2, 4, 64), F16, device, gen)
    return dict(
        q=q, k_cache=k_cache, v_cache=v_cache, block_table=block_table, seq_lens=int32([20, 5], device)
    )


def _with(args: dict, **changes) -> dict:
    return {**args, **changes}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: dict(q=a["q"][0]), r"q must have shape \[num_seqs, num_heads, head_dim\]"),
        (lambda a: dict(q=a["q"].double()), "q has dtype torch.float64"),
        (lambda a: dict(q=a["q"].float()), "k_cache has dtype torch.float16 but q has torch.float32"),
        (lambda a: dict(v_cache=a["v_cache"][:, :8]), "v_cache has shape"),
        (lambda a: dict(q=a["q"][:, :3]), "num_heads must be a multiple of num_kv_heads"),
        (
            lambda a: dict(q=torch.zeros((2, 4, 80), dtype=F16, device=a["q"].device)),
            "k_cache has head_dim 64",
        ),
        (lambda a: dict(block_table=a["block_table"].long()), "block_table must have dtype torch.int32"),
        (lambda a: dict(block_table=a["block_table"][:1]), r"block_table must have shape \[num_seqs"),
        (lambda a: dict(seq_lens=a["seq_lens"][:1]), r"seq_lens must have shape \[num_seqs\]"),
        (lambda a: dict(seq_lens=int32([20, 0], a["q"].device)), "seq_lens must all be >= 1"),
        (lambda a: dict(seq_lens=int32([20, 49], a["q"].device)), "block_table holds at most 3 blocks"),
        (lambda a: dict(q=a["q"].transpose(1, 2).contiguous().transpose(1, 2)), "contiguous in its last"),
        (lambda a: dict(scale=-1.0), "scale must be a positive finite float"),
        (lambda a: dict(num_kv_splits=0), "num_kv_splits must be a positive int"),
    ],
)
def test_paged_decode_rejects(decode_args, change, message):
    with pytest.raises(ValueError, match=message):
        paged_decode_attention(**_with(decode_args, **change(decode_args)))


def test_paged_decode_rejects_block_ids_outside_the_cache(decode_args):
    block_table = decode_args["block_table"].clone()
    block_table[1, 0] = decode_args["k_cache"].shape[0]  # one past the last block
    with pytest.raises(ValueError, match="block_table has 1 block ids outside"):
        paged_decode_attention(**_with(decode_args, block_table=block_table))


def test_padding_entries_past_a_sequences_last_block_are_not_checked(decode_args):
    """vLLM pads block tables with arbitrary ids; only the blocks a sequence uses must be valid."""
    assert (decode_args["block_table"][:, -1] >= decode_args["k_cache"].shape[0]).all()
    paged_decode_attention(**decode_args)


def test_cpu_tensors_need_the_interpreter(decode_args, monkeypatch):
    if decode_args["q"].device.type == "cuda":
        pytest.skip("only meaningful for CPU tensors")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="q is on cpu: the Triton kernels need CUDA tensors"):
        paged_decode_attention(**decode_args)


def test_contiguous_decode_rejects_lengths_past_the_region(device):
    q = torch.zeros((1, 2, 64), dtype=F16, device=device)
    k = torch.zeros((1, 10, 1, 64), dtype=F16, device=device)
    with pytest.raises(ValueError, match=r"seq_lens must lie in \[1, 10\]"):
        contiguous_decode_attention(q, k, k, int32([11], device))
    with pytest.raises(ValueError, match="k has 1 sequences in dim 0 but q has 2"):
        contiguous_decode_attention(
            torch.zeros((2, 2, 64), dtype=F16, device=device), k, k, int32([1, 1], device)
        )


def test_paged_prefill_rejects_bad_lengths(device):
    gen = generator(4)
    k_cache, v_cache, block_table = paged_cache([20, 5], 1, 64, 16, F16, device, gen)
    q = randn((10, 2, 64), F16, device, gen)
    lens = int32([20, 5], device)
    with pytest.raises(ValueError, match="seq_lens must be >= each sequence's query count"):
        paged_prefill_attention(q, k_cache, v_cache, block_table, cu_seqlens([4, 6], device), lens)
    with pytest.raises(ValueError, match="cu_seqlens_q must start at 0, never decrease, and end at"):
        paged_prefill_attention(q, k_cache, v_cache, block_table, cu_seqlens([4, 5], device), lens)
    with pytest.raises(ValueError, match=r"cu_seqlens_q must have dtype torch\.int32"):
        paged_prefill_attention(q, k_cache, v_cache, block_table, cu_seqlens([5, 5], device).long(), lens)


def test_contiguous_prefill_rejects_mismatched_tokens(device):
    q = torch.zeros((8, 2, 64), dtype=F16, device=device)
    k = torch.zeros((7, 2, 64), dtype=F16, device=device)
    with pytest.raises(ValueError, match="k has 7 tokens but q has 8"):
        contiguous_prefill_attention(q, k, k, cu_seqlens([8], device))
    with pytest.raises(ValueError, match="cu_seqlens must start at 0"):
        contiguous_prefill_attention(q, q, q, int32([0, 9], device))
