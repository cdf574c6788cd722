"""How much faster the H100 is than the A100 on a prefill's layer work: Vidur's measurements beside kvsim's profiles.

    python scripts/validation/vidur_gpu_ratio.py

Vidur timed one model on both GPUs, CodeLlama-34B (calibrate/profiles/vidur/compute/{a100,h100}/codellama/...
mlp.csv.gz). For each TP and token count this prints the A100 ÷ H100 time of its per-layer GEMMs (QKV, O, MLP up
and down) and elementwise kernels (two RMSNorms, rotary, activation, residual add) as Vidur measured them
(medians, repeated rows averaged, linear between measured token counts), and the same ratio of the whole GPU step
of a prefill of that many tokens as kvsim's shipped profiles price it (``make_cost_model`` through
``gpu_time_only``: the A100-80GB profile built from Vidur's A100 data, kvsim's own H100 measurements).

The vllm-blog prefill-heavy row (Llama-3-8B, 462-token prompts; docs/validation.md) published an H100 ÷ A100
throughput of 59.10 ÷ 28.34 = 2.09: if both GPUs' runs were bound by the GPU's prefill work, that would be the
ratio here.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

from kvsim.simulator.batch import Batch
from kvsim.simulator.cost import make_cost_model
from kvsim.simulator.engine_overhead import gpu_time_only

sys.path.insert(0, str(Path(__file__).parent))  # Vidur's medians per operator: vidur_step_check's reader
from vidur_step_check import measured_operators

MODEL, PRESET = "codellama/CodeLlama-34b-Instruct-hf", "codellama-34b"
GEMMS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
ELEMENTWISE = ("input_layernorm", "post_attention_layernorm", "attn_rope", "mlp_act", "add")
PUBLISHED_RATIO = 59.10 / 28.34  # vllm-blog prefill-heavy, Llama-3-8B: H100 ÷ A100 throughput at QPS inf
PROMPT_TOKENS = 462  # the prefill-heavy prompts


@functools.cache
def _operators(gpu: str, tp: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return measured_operators(f"compute/{gpu}/{MODEL}/mlp.csv.gz", PRESET, tp)


def vidur_ms(gpu: str, tp: int, tokens: float, operators: tuple[str, ...]) -> float:
    """Σ of ``operators``' per-layer medians (ms) in Vidur's ``gpu`` file at ``tp``, linear in num_tokens."""
    measured = _operators(gpu, tp)
    total_s = 0.0
    for op in operators:
        grid, seconds = measured[op]
        if not grid[0] <= tokens <= grid[-1]:
            raise ValueError(
                f"{tokens} tokens is outside Vidur's {gpu} TP {tp} range {grid[0]:.0f}-{grid[-1]:.0f}"
            )
        total_s += float(np.interp(tokens, grid, seconds))
    return total_s * 1e3


def kvsim_step_s(gpu: str, tp: int, tokens: int) -> float:
    """kvsim's GPU time of one prefill-only step of ``tokens`` tokens in prompts of PROMPT_TOKENS."""
    cost = gpu_time_only(make_cost_model(PRESET, gpu, tp))
    full, rest = divmod(tokens, PROMPT_TOKENS)
    q_lens = (PROMPT_TOKENS,) * full + ((rest,) if rest else ())
    return cost.step_time(Batch(prefill_q_lens=q_lens, prefill_kv_lens=q_lens)).total_s


def rows(tps=(1, 2, 4), token_counts=(462, 1848, 3696)) -> list[dict]:
    out = []
    for tp in tps:
        for tokens in token_counts:
            gemm = vidur_ms("a100", tp, tokens, GEMMS) / vidur_ms("h100", tp, tokens, GEMMS)
            small = vidur_ms("a100", tp, tokens, ELEMENTWISE) / vidur_ms("h100", tp, tokens, ELEMENTWISE)
            both = (vidur_ms("a100", tp, tokens, GEMMS) + vidur_ms("a100", tp, tokens, ELEMENTWISE)) / (
                vidur_ms("h100", tp, tokens, GEMMS) + vidur_ms("h100", tp, tokens, ELEMENTWISE)
            )
            kvsim = kvsim_step_s("a100-80gb", tp, tokens) / kvsim_step_s("h100-sxm", tp, tokens)
            out.append(
                {
                    "tp": tp,
                    "tokens": tokens,
                    "gemms": gemm,
                    "elementwise": small,
                    "layer": both,
                    "kvsim_step": kvsim,
                }
            )
    return out


def table(entries: list[dict]) -> str:
    lines = [
        f"{PRESET}, A100 ÷ H100 time of a prefill's work (Vidur: measured per layer; kvsim: its profiles' GPU step)",
        f"{'TP':>3} {'tokens':>7} {'Vidur GEMMs':>12} {'Vidur elementwise':>18} {'Vidur both':>11} {'kvsim step':>11}",
    ]
    for e in entries:
        lines.append(
            f"{e['tp']:>3} {e['tokens']:>7} {e['gemms']:>12.2f} {e['elementwise']:>18.2f} {e['layer']:>11.2f} "
            f"{e['kvsim_step']:>11.2f}"
        )
    lines.append(
        f"vllm-blog prefill-heavy, Llama-3-8B: published H100 ÷ A100 throughput {PUBLISHED_RATIO:.2f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    print(table(rows()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
