"""Does a profile predict a whole decoder layer? ``python -m kvsim.calibrate.validate_step``.

The cost model adds up terms fitted on kernels timed one at a time, each after an L2 flush. In a real step the
same kernels run back to back: the QKV GEMM, attention (prefill and/or decode, paged or contiguous), the O GEMM
and the two MLP GEMMs of every layer. This times exactly that sequence on the GPU, for a set of serving-sized
batches, and sets it beside two numbers:

- ``sum_of_parts_us``: the same kernels timed one by one, as the calibration sweeps time them. The gap between
  the layer and this sum is what composing kernels costs or saves (L2 hits on activations, tails overlapping);
- ``predicted_us``: the profile's prediction for one layer (``ProfileCostModel``: the step's GEMM and attention
  seconds divided by the number of layers), without a launch overlap. The gap to the layer is the whole error
  of the cost model's kernel terms at that batch, fit and composition together;
- ``predicted_overlap_us``: the same with the launch overlap (``launch_overlap``: the median per-call saving
  of layers over their parts) estimated from the other layers, plus one lone launch for the layer's first.

Norms, rotary embeddings and activations are not in the cost model's terms (its ``step_overhead`` term stands
for the engine's per-step costs), so they are not timed here either. ``kvsim calibrate`` runs this after its
sweeps and refits its profile with the layers; alone, it writes one CSV row per layer and prints a table, and
``--from-csv`` re-predicts an earlier CSV's layers with another profile, without a GPU. On CPU
(``--device cpu``) it runs a tiny model with the torch reference kernels, to exercise the code: those numbers
mean nothing.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from kvsim.calibrate.fit import launch_savings_s
from kvsim.calibrate.measurements import Measurements, load_measurements
from kvsim.calibrate.sweeps import length_hint, resolve_kernels, shuffled_block_table
from kvsim.calibrate.timing import Timer
from kvsim.errors import KvsimError
from kvsim.simulator.batch import Batch
from kvsim.simulator.cost import profile_from_spec
from kvsim.simulator.cost.profile import Profile, Term
from kvsim.simulator.cost.profile_model import ProfileCostModel
from kvsim.simulator.cost.roofline import roofline_profile
from kvsim.simulator.cost.work import layer_gemm_shapes
from kvsim.simulator.specs import GPUS, ModelSpec

BLOCK_SIZE = 16
COLUMNS = (
    "kernel", "decode_seqs", "decode_context", "prefill_seqs", "prefill_q_len", "prefill_prefix", "launches",
    "measured_layer_us", "sum_of_parts_us", "predicted_us", "predicted_overlap_us", "composition_err_pct",
    "model_err_pct", "model_err_overlap_pct",
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
        rng = np.random.default_rng(seed)  # block ids
        dtype = torch.float16 if model.dtype_bytes == 2 and device != "cpu" else torch.float32

        torch.manual_seed(seed)  # tensors are drawn where they live (GiBs of KV: no host round trip)

        def randn(*shape):
            return torch.randn(*shape, device=device, dtype=dtype)

        kernels = resolve_kernels(impl)
        heads, kv_heads, head_dim = model.num_heads, model.num_kv_heads, model.head_dim
        tokens = case.decode_seqs + case.prefill_seqs * case.prefill_q_len
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
                k_cache, v_cache, table = self._paged_kv(randn, [kv_len] * n, kv_heads, head_dim, rng, device)
                lens = torch.full((n,), kv_len, dtype=torch.int32, device=device)
                fn = kernels["paged_prefill_attention"]
                args = (q, k_cache, v_cache, table, cu_q, lens)
                attention.append(partial(fn, *args, **length_hint(fn, "max_q_len", q_len)))
            else:
                k, v = randn(n * q_len, kv_heads, head_dim), randn(n * q_len, kv_heads, head_dim)
                fn = kernels["contiguous_prefill_attention"]
                attention.append(partial(fn, q, k, v, cu_q, **length_hint(fn, "max_seqlen", q_len)))
        if case.decode_seqs:
            n, ctx = case.decode_seqs, case.decode_context
            q = randn(n, heads, head_dim)
            lens = torch.full((n,), ctx, dtype=torch.int32, device=device)
            if kernel == "paged":
                k_cache, v_cache, table = self._paged_kv(randn, [ctx] * n, kv_heads, head_dim, rng, device)
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

    def _paged_kv(self, randn, lens: list[int], kv_heads: int, head_dim: int, rng, device: str):
        """K and V caches of exactly the blocks ``lens`` need, handed out shuffled, and their block table."""
        per_seq = [-(-n // BLOCK_SIZE) for n in lens]
        table = shuffled_block_table(per_seq, sum(per_seq), rng)
        shape = (sum(per_seq), BLOCK_SIZE, kv_heads, head_dim)
        return randn(*shape), randn(*shape), self.torch.from_numpy(table).to(device)


CASE_FIELDS = ("decode_seqs", "decode_context", "prefill_seqs", "prefill_q_len", "prefill_prefix")


def measure(
    model: ModelSpec, device: str = "cuda", cases: tuple[StepCase, ...] | None = None, seed: int = 0
) -> list[dict]:
    """One row per (case, kernel): the layer timed back to back, and its kernels timed one by one."""
    import torch

    smoke = device == "cpu"
    if not smoke and not torch.cuda.is_available():
        raise KvsimError(
            "no CUDA GPU is visible: validate a profile on the GPU it describes (or --device cpu)"
        )
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
            rows.append(
                {
                    "kernel": kernel,
                    **{name: getattr(case, name) for name in CASE_FIELDS},
                    "launches": len(runner.parts),
                    "measured_layer_us": round(layer_s * 1e6, 2),
                    "sum_of_parts_us": round(parts_s * 1e6, 2),
                }
            )
            del runner
            if not smoke:
                torch.cuda.empty_cache()
    return rows


def _case(row: dict) -> StepCase:
    return StepCase(**{name: int(row[name]) for name in CASE_FIELDS})


def _launches(row: dict) -> int:
    """Kernel calls in the row's layer: four GEMMs and one attention call per phase present (files written
    before the column existed lack it)."""
    if row.get("launches") not in (None, ""):
        return int(row["launches"])
    return 4 + (int(row["prefill_seqs"]) > 0) + (int(row["decode_seqs"]) > 0)


def measurement_rows(rows: list[dict]) -> list[dict]:
    """``launch_overlap`` rows for a measurements CSV, from which the profile's fit takes that term."""
    return [
        {
            "term": "launch_overlap",
            "parts_s": float(r["sum_of_parts_us"]) * 1e-6,
            "launches": _launches(r),
            "median_s": float(r["measured_layer_us"]) * 1e-6,
            "kernel": r["kernel"],
            **{name: int(r[name]) for name in CASE_FIELDS},
        }
        for r in rows
    ]


def predict(rows: list[dict], profile: Profile, model: ModelSpec) -> list[dict]:
    """``rows`` with the profile's predictions for each lone layer added:

    - ``predicted_us``: the kernel terms as fitted, no launch overlap: what the calibration sweeps alone say;
    - ``predicted_overlap_us``: with the launch overlap estimated from the OTHER rows (leave one out), plus one
      lone launch's cost, since a layer timed alone pays it for its first kernel.
    """
    base_terms = {name: term for name, term in profile.terms.items() if name != "launch_overlap"}
    base = ProfileCostModel(dataclasses.replace(profile, terms=base_terms), model, 1)
    savings = [launch_savings_s(r) for r in measurement_rows(rows)]
    out = []
    for i, row in enumerate(rows):
        case, kernel = _case(row), row["kernel"]
        layer_s = float(row["measured_layer_us"]) * 1e-6
        overlap_s = max(0.0, float(np.median(savings[:i] + savings[i + 1 :]))) if len(rows) > 1 else 0.0
        terms = {**base_terms, "launch_overlap": Term("linear", {"const_s": overlap_s})}
        with_overlap = ProfileCostModel(dataclasses.replace(profile, terms=terms), model, 1)
        raw_s = _layer_s(base, case, kernel, model)
        overlap_layer_s = _layer_s(with_overlap, case, kernel, model) + overlap_s
        parts_s = float(row["sum_of_parts_us"]) * 1e-6
        out.append(
            {
                **row,
                "launches": _launches(row),
                "predicted_us": round(raw_s * 1e6, 2),
                "predicted_overlap_us": round(overlap_layer_s * 1e6, 2),
                "composition_err_pct": round((parts_s / layer_s - 1) * 100, 2),
                "model_err_pct": round((raw_s / layer_s - 1) * 100, 2),
                "model_err_overlap_pct": round((overlap_layer_s / layer_s - 1) * 100, 2),
            }
        )
    return out


def _layer_s(cost: ProfileCostModel, case: StepCase, kernel: str, model: ModelSpec) -> float:
    """One layer's GEMMs and attention as the cost model prices them inside a step."""
    step = cost.step_time(case.batch(kernel))
    return (step.gemm_s + step.attn_prefill_s + step.attn_decode_s) / model.num_layers


def write_rows(rows: list[dict], path: Path, columns: tuple[str, ...] | list[str] = COLUMNS) -> Path:
    """The rows as CSV, one per layer (COLUMNS; validate_model.py passes its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def table(rows: list[dict]) -> str:
    lines = [
        f"{'kernel':10} {'decode':>9} {'prefill':>11} {'layer us':>9} {'parts us':>9} {'pred us':>9} "
        f"{'err %':>6} {'+overlap us':>11} {'err %':>6}"
    ]
    for r in rows:
        decode = f"{r['decode_seqs']}x{r['decode_context']}" if int(r["decode_seqs"]) else "-"
        prefill = (
            f"{r['prefill_seqs']}x{r['prefill_q_len']}+{r['prefill_prefix']}"
            if int(r["prefill_seqs"])
            else "-"
        )
        lines.append(
            f"{r['kernel']:10} {decode:>9} {prefill:>11} {float(r['measured_layer_us']):>9.1f} "
            f"{float(r['sum_of_parts_us']):>9.1f} {r['predicted_us']:>9.1f} {r['model_err_pct']:>6.1f} "
            f"{r['predicted_overlap_us']:>11.1f} {r['model_err_overlap_pct']:>6.1f}"
        )
    for label, key in (
        ("kernel terms alone", "model_err_pct"),
        ("with launch overlap", "model_err_overlap_pct"),
    ):
        errors = np.abs([r[key] for r in rows])
        lines.append(
            f"{label}: mean |error| {errors.mean():.1f}% (max {errors.max():.1f}%) over {len(rows)} layers"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kvsim.calibrate.validate_step", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--profile",
        help="profile JSON to validate, or roofline:GPU for a GPU's datasheet roofline (e.g. roofline:h100-sxm; "
        "default: the A100-80GB roofline)",
    )
    parser.add_argument("--model", default="llama-3-8b", help="model preset whose layer to run")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run on a tiny model")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write, one row per layer")
    parser.add_argument(
        "--from-csv",
        type=Path,
        help="re-predict the layers of an earlier --out CSV instead of measuring (no GPU)",
    )
    parser.add_argument(
        "--measurements",
        type=Path,
        help="add the layers to this calibration measurements CSV as launch_overlap rows and refit its profile",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from kvsim.calibrate.run import SMOKE_MODEL, fit_only, summary

    model = SMOKE_MODEL if args.device == "cpu" and args.from_csv is None else ModelSpec.from_name(args.model)
    try:
        profile = (
            roofline_profile(GPUS["a100-80gb"]) if args.profile is None else profile_from_spec(args.profile)
        )
        if args.from_csv is not None:
            with args.from_csv.open(newline="") as f:
                measured = list(csv.DictReader(f))
        else:
            measured = measure(model, args.device, seed=args.seed)
        rows = predict(measured, profile, model)
        if args.measurements is not None:
            measurements = load_measurements(args.measurements)
            kept = [r for r in measurements.rows if r["term"] != "launch_overlap"]  # a rerun replaces them
            meta = dict(measurements.meta)
            meta["launch_overlap_rows"] = (
                f"{len(measured)} whole layers from {args.from_csv.name}"
                if args.from_csv is not None
                else f"{len(measured)} whole layers measured by validate_step on {args.device}"
            )
            Measurements(meta, kept + measurement_rows(measured)).save(args.measurements)
            print(summary(fit_only(args.measurements, seed=args.seed)))
    except (KvsimError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    write_rows(rows, args.out)
    print(table(rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
