"""The torch ops of a Llama step besides its GEMMs and attention, as kvsim times them (DESIGN §5).

One function per profile term, shared by the calibration sweeps (calibrate/step_sweeps.py: each op alone, over
token counts) and the whole-model check (calibrate/validate_model.py: every op in its place in 32 layers), so the
profile is fitted on the very kernels the model runs. They are eager PyTorch ops, the way a serving engine runs
them without its fused custom kernels: vLLM fuses the residual add into its RMSNorm kernel and runs rotary as
one kernel, so these terms are an upper bound on vLLM's (its torch.compile of the same ops lands in between).

Shapes are per TP shard; ``t`` is the step's tokens, ``n`` its sequences. Work model (HBM bytes moved per byte
of the output tensor, the profile feature's unit) is in ``simulator/cost/roofline.py``.
"""

from __future__ import annotations

from typing import Any

RMS_NORM_EPS = 1e-5  # Llama 3's rms_norm_eps
ROPE_THETA = 500_000.0  # Llama 3's rope_theta


def rms_norm(x: Any, weight: Any) -> Any:
    """[t, hidden] -> [t, hidden]: torch's fused ``rms_norm`` where this torch has it (2.4+), else the
    composite of gpt-fast's RMSNorm (upcast, mean of squares, rsqrt, scale)."""
    import torch

    if hasattr(torch.nn.functional, "rms_norm"):
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, RMS_NORM_EPS)
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + RMS_NORM_EPS)).to(x.dtype) * weight


def rotary_cache(max_positions: int, head_dim: int, device: str) -> Any:
    """[max_positions, head_dim / 2] complex64: e^(i · position · θ^(-2j / head_dim)), built once per model."""
    import torch

    inv_freq = ROPE_THETA ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(max_positions, device=device, dtype=torch.float32), inv_freq)
    return torch.polar(torch.ones_like(angles), angles)


def rotary(q: Any, k: Any, cache: Any, positions: Any) -> tuple[Any, Any]:
    """q [t, heads, head_dim], k [t, kv_heads, head_dim] rotated by their tokens' ``positions`` [t] (int64):
    gpt-fast's complex multiply (interleaved pairs; the layout of the weights is immaterial to the time)."""
    import torch

    freqs = cache[positions][:, None, :]  # [t, 1, head_dim / 2]

    def rotate(x: Any) -> Any:
        pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(pairs * freqs).flatten(-2).type_as(x)

    return rotate(q), rotate(k)


def silu_mul(gate_up: Any) -> Any:
    """[t, 2 · inter] (the fused gate/up GEMM's output) -> [t, inter]: SiLU(gate) · up."""
    import torch

    gate, up = gate_up.chunk(2, dim=-1)
    return torch.nn.functional.silu(gate) * up


def residual_add(x: Any, residual: Any) -> Any:
    """[t, hidden] + [t, hidden]."""
    return x + residual


def embedding(token_ids: Any, weight: Any) -> Any:
    """token_ids [t] -> [t, hidden]: one row of the [vocab, hidden] table per token."""
    import torch

    return torch.nn.functional.embedding(token_ids, weight)


def kv_write_paged(k_cache: Any, v_cache: Any, slot_mapping: Any, k: Any, v: Any) -> None:
    """k, v [t, kv_heads, head_dim] into the caches [num_blocks, block_size, kv_heads, head_dim] at
    ``slot_mapping`` [t] (int64, block id · block_size + offset): vLLM's reshape_and_cache, as two scatters."""
    kv_heads, head_dim = k_cache.shape[2], k_cache.shape[3]
    k_cache.view(-1, kv_heads, head_dim).index_copy_(0, slot_mapping, k)
    v_cache.view(-1, kv_heads, head_dim).index_copy_(0, slot_mapping, v)


def kv_write_contiguous(k_cache: Any, v_cache: Any, seq_index: Any, positions: Any, k: Any, v: Any) -> None:
    """k, v [t, kv_heads, head_dim] into each sequence's region of the caches [max_seqs, max_len, kv_heads,
    head_dim], token i at (``seq_index[i]``, ``positions[i]``) (int64 [t])."""
    k_cache.index_put_((seq_index, positions), k)
    v_cache.index_put_((seq_index, positions), v)


def sample_greedy(logits: Any) -> Any:
    """[n, vocab] logits -> [n] token ids: argmax of the float32 logits (temperature 0)."""
    return logits.float().argmax(dim=-1)


def sample_top_p(logits: Any, temperature: Any, top_p: Any) -> Any:
    """[n, vocab] logits -> [n, 1] token ids, vLLM's PyTorch top-p path: scale by ``temperature`` [n, 1], sort,
    keep the smallest set of tokens whose probability reaches ``top_p`` [n, 1], sample from it."""
    import torch

    scaled = logits.float().div_(temperature)
    sorted_logits, order = scaled.sort(dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative <= 1 - top_p
    drop[:, -1] = False  # the most likely token always stays
    sorted_logits.masked_fill_(drop, float("-inf"))
    kept = torch.empty_like(sorted_logits).scatter_(-1, order, sorted_logits)
    return torch.multinomial(kept.softmax(dim=-1), num_samples=1)
