"""Does a profile predict a whole decoder layer? ``python -m kvsim.calibrate.validate_step``.

The cost model adds up terms fitted on kernels timed one at a time, each after an L2 flush. In a real step the
same kernels run back to back: the QKV GEMM, attention (prefill and/or decode, paged or contiguous), the O GEMM
and the two MLP GEMMs of every layer. This times exactly that sequence on the GPU, for a set of serving-sized
batches, and sets it beside two numbers:

- ``sum_of_parts_us``: the same kernels timed one by one, as the calibration sweeps time them. The gap between
  the layer and this sum is what composing kernels costs or saves (L2 hits on activations, tails overlapping);
- ``predicted_us``: the profile's prediction for one layer (``ProfileCostModel``: the step's GEMM and attention
  seconds divided by the number of layers). The gap to the layer is the whole error of the cost model's
  kernel terms at that batch, fit and composition together.

Norms, rotary embeddings and activations are not in the cost model's terms (its ``step_overhead`` term stands
for the engine's per-step costs), so they are not timed here either. Writes one CSV row per batch and prints a
table. On CPU (``--device cpu``) it runs a tiny model with the torch reference kernels, to exercise the code:
those numbers mean nothing.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from kvsim.calibrate.sweeps import accepts_kwarg, resolve_kernels
from kvsim.calibrate.timing import Timer
from kvsim.errors import KvsimError
from kvsim.simulator.batch import Batch
from kvsim.simulator.cost.profile import load_profile
from kvsim.simulator.cost.profile_model import ProfileCostModel
from kvsim.simulator.cost.roofline import roofline_profile
from kvsim.simulator.cost.work import layer_gemm_shapes
from kvsim.simulator.specs import GPUS, ModelSpec

BLOCK_SIZE = 16
COLUMNS = (
    "kernel", "decode_seqs", "decode_context", "prefill_seqs", "prefill_q_len", "prefill_prefix",
    "measured_layer_us", "sum_of_parts_us", "predicted_us", "composition_err_pct", "model_err_pct",
)  # fmt: skip


@dataclass(frozen=True)
class StepCase:
    """One batch: decode sequences of ``decode_context`` tokens each, and prefills of ``prefill_q_len`` new
    tokens after ``prefill_prefix`` cached ones (a chunk of a longer prompt, or a prefix-cache hit)."""

    decode_seqs: int = 0
    decode_context: int = 0
    prefill_seqs: int = 0
    prefill_q_len: int = 0
    prefill_prefix: int = 0

    def batch(self, kernel: str) -> Batch:
        blocks = -(-self.decode_context // BLOCK_SIZE) * self.decode_seqs if kernel == "paged" else 0
        return Batch(
            prefill_q_lens=(self.prefill_q_len,) * self.prefill_seqs,
            prefill_kv_lens=(self.prefill_q_len + self.prefill_prefix,) * self.prefill_seqs,
            num_decode_seqs=self.decode_seqs,
            decode_kv_tokens=self.decode_seqs * self.decode_context,
            decode_kv_blocks=blocks,
            attention_kernel=kernel,
        )


GPU_CASES = (
    StepCase(decode_seqs=1, decode_context=512),
    StepCase(decode_seqs=1, decode_context=8192),
    StepCase(decode_seqs=8, decode_context=2048),
    StepCase(decode_seqs=32, decode_context=1024),
    StepCase(decode_seqs=64, decode_context=4096),
    StepCase(decode_seqs=128, decode_context=512),
    StepCase(decode_seqs=256, decode_context=1024),
    StepCase(prefill_seqs=1, prefill_q_len=512),
    StepCase(prefill_seqs=4, prefill_q_len=1024),
    StepCase(prefill_seqs=1, prefill_q_len=4096),
    StepCase(prefill_seqs=2, prefill_q_len=256, prefill_prefix=2048),  # chunked prefill (paged only)
    StepCase(decode_seqs=32, decode_context=1024, prefill_seqs=1, prefill_q_len=512),  # a mixed step
)
CPU_CASES = (
    StepCase(decode_seqs=2, decode_context=40),
    StepCase(prefill_seqs=1, prefill_q_len=24),
    StepCase(decode_seqs=2, decode_context=40, prefill_seqs=1, prefill_q_len=8, prefill_prefix=16),
)


class LayerRunner:
    """The tensors of one decoder layer and one batch, and the kernels the cost model adds up for it."""

    def __init__(
        self, model: ModelSpec, case: StepCase, kernel: str, device: str, impl: str, seed: int
    ) -> None:
        import torch

        self.torch = torch
        gen = torch.Generator(device="cpu").manual_seed(seed)
        dtype = torch.float16 if model.dtype_bytes == 2 and device != "cpu" else torch.float32

        torch.manual_seed(seed)  # tensors are drawn where they live (GiBs of KV: no host round trip)

        def randn(*shape):
            return torch.randn(*shape, device=device, dtype=dtype)

        kernels = resolve_kernels(impl)
        heads, kv_heads, head_dim = model.num_heads, model.num_kv_heads, model.head_dim
        tokens = case.decode_seqs + case.prefill_seqs * case.prefill_q_len
        self.x = randn(tokens, model.hidden_size)
        self.gemms = []  # (weight [n, k], input [tokens, k]) per GEMM, in layer order
        for shape in layer_gemm_shapes(model, 1):
            self.gemms.append((randn(shape.n, shape.k), randn(tokens, shape.k)))
        qkv, o, up, down = (partial(torch.nn.functional.linear, a, w) for w, a in self.gemms)
        attention = []  # functools.partial binds each call's tensors now (a lambda would see later rebinds)
        if case.prefill_seqs:
            n, q_len, kv_len = case.prefill_seqs, case.prefill_q_len, case.prefill_q_len + case.prefill_prefix
            q = randn(n * q_len, heads, head_dim)
            cu_q = torch.arange(0, n + 1, dtype=torch.int32, device=device) * q_len
            if kernel == "paged" or case.prefill_prefix:
                k_cache, v_cache, table = self._paged_kv(randn, [kv_len] * n, kv_heads, head_dim, gen, device)
                lens = torch.full((n,), kv_len, dtype=torch.int32, device=device)
                fn = kernels["paged_prefill_attention"]
                args = (q, k_cache, v_cache, table, cu_q, lens)
                attention.append(partial(fn, *args, **_hint(fn, "max_q_len", q_len)))
            else:
                k, v = randn(n * q_len, kv_heads, head_dim), randn(n * q_len, kv_heads, head_dim)
                fn = kernels["contiguous_prefill_attention"]
                attention.append(partial(fn, q, k, v, cu_q, **_hint(fn, "max_seqlen", q_len)))
        if case.decode_seqs:
            n, ctx = case.decode_seqs, case.decode_context
            q = randn(n, heads, head_dim)
            lens = torch.full((n,), ctx, dtype=torch.int32, device=device)
            if kernel == "paged":
                k_cache, v_cache, table = self._paged_kv(randn, [ctx] * n, kv_heads, head_dim, gen, device)
                fn = kernels["paged_decode_attention"]
                attention.append(partial(fn, q, k_cache, v_cache, table, lens, max_seq_len=ctx))
            else:
                k, v = randn(n, ctx, kv_heads, head_dim), randn(n, ctx, kv_heads, head_dim)
                fn = kernels["contiguous_decode_attention"]
                attention.append(partial(fn, q, k, v, lens, max_seq_len=ctx))
        self.parts = [qkv, *attention, o, up, down]  # zero-argument calls, in layer order

    def layer(self) -> None:
        for part in self.parts:
            part()

    def _paged_kv(self, randn, lens: list[int], kv_heads: int, head_dim: int, gen, device: str):
        """K and V caches of exactly the blocks ``lens`` need, handed out shuffled, and their block table."""
        torch = self.torch
        per_seq = [-(-n // BLOCK_SIZE) for n in lens]
        total = sum(per_seq)
        ids = torch.randperm(total, generator=gen).to(torch.int32)
        table = torch.zeros((len(lens), max(per_seq)), dtype=torch.int32)
        start = 0
        for row, count in enumerate(per_seq):
            table[row, :count] = ids[start : start + count]
            start += count
        shape = (total, BLOCK_SIZE, kv_heads, head_dim)
        return randn(*shape), randn(*shape), table.to(device)


def _hint(fn, name: str, value: int) -> dict:
    """A length the caller vouches for, where the kernel takes one: spares it a device-to-host copy (timed)."""
    return {name: value} if accepts_kwarg(fn, name) else {}


def validate(
    profile_path: str | Path | None,
    model: ModelSpec | str,
    device: str = "cuda",
    cases: tuple[StepCase, ...] | None = None,
    seed: int = 0,
) -> list[dict]:
    """One row per (case, kernel): the layer measured, its parts' sum, and the profile's prediction."""
    import torch

    model = ModelSpec.from_name(model) if isinstance(model, str) else model
    smoke = device == "cpu"
    if not smoke and not torch.cuda.is_available():
        raise KvsimError(
            "no CUDA GPU is visible: validate a profile on the GPU it describes (or --device cpu)"
        )
    profile = roofline_profile(GPUS["a100-80gb"]) if profile_path is None else load_profile(profile_path)
    cost = ProfileCostModel(profile, model, 1)
    timer = (
        Timer("cpu", target_s=0.0, min_reps=1, max_reps=1, warmup=1)
        if smoke
        else Timer(device, target_s=0.05, min_reps=10, max_reps=100, warmup=5)
    )
    impl = "reference" if smoke else "triton"
    rows = []
    for case in cases or (CPU_CASES if smoke else GPU_CASES):
        for kernel in ("paged", "contiguous"):
            if kernel == "contiguous" and case.prefill_prefix:
                continue  # a cached prefix lives in blocks: the contiguous prefill kernel takes whole prompts
            runner = LayerRunner(model, case, kernel, device, impl, seed)
            layer_s = timer.time(runner.layer).median_s
            parts_s = sum(timer.time(part).median_s for part in runner.parts)
            step = cost.step_time(case.batch(kernel))
            predicted_s = (step.gemm_s + step.attn_prefill_s + step.attn_decode_s) / model.num_layers
            rows.append(
                {
                    "kernel": kernel,
                    "decode_seqs": case.decode_seqs,
                    "decode_context": case.decode_context,
                    "prefill_seqs": case.prefill_seqs,
                    "prefill_q_len": case.prefill_q_len,
                    "prefill_prefix": case.prefill_prefix,
                    "measured_layer_us": round(layer_s * 1e6, 2),
                    "sum_of_parts_us": round(parts_s * 1e6, 2),
                    "predicted_us": round(predicted_s * 1e6, 2),
                    "composition_err_pct": round((parts_s / layer_s - 1) * 100, 2),
                    "model_err_pct": round((predicted_s / layer_s - 1) * 100, 2),
                }
            )
            del runner
            if not smoke:
                torch.cuda.empty_cache()
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        f"{'kernel':10} {'decode':>12} {'prefill':>16} {'layer us':>10} {'parts us':>10} {'pred us':>10} "
        f"{'parts err %':>11} {'model err %':>11}"
    ]
    for r in rows:
        decode = f"{r['decode_seqs']}x{r['decode_context']}" if r["decode_seqs"] else "-"
        prefill = (
            f"{r['prefill_seqs']}x{r['prefill_q_len']}+{r['prefill_prefix']}" if r["prefill_seqs"] else "-"
        )
        lines.append(
            f"{r['kernel']:10} {decode:>12} {prefill:>16} {r['measured_layer_us']:>10.1f} "
            f"{r['sum_of_parts_us']:>10.1f} {r['predicted_us']:>10.1f} {r['composition_err_pct']:>11.1f} "
            f"{r['model_err_pct']:>11.1f}"
        )
    errors = np.abs([r["model_err_pct"] for r in rows])
    parts = np.abs([r["composition_err_pct"] for r in rows])
    lines.append(
        f"mean |model err| {errors.mean():.1f}% (max {errors.max():.1f}%); "
        f"mean |parts err| {parts.mean():.1f}% (max {parts.max():.1f}%) over {len(rows)} layers"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kvsim.calibrate.validate_step", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--profile", help="profile JSON to validate (default: the A100-80GB roofline, on CPU)"
    )
    parser.add_argument("--model", default="llama-3-8b", help="model preset whose layer to run")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run on a tiny model")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model = args.model
    if args.device == "cpu":
        from kvsim.calibrate.run import SMOKE_MODEL

        model = SMOKE_MODEL
    try:
        rows = validate(args.profile, model, args.device, seed=args.seed)
    except KvsimError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(table(rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
