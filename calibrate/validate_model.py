"""Does a profile predict a whole model's step? ``python -m kvsim.calibrate.validate_model``.

validate_step.py checks one decoder layer's GEMMs and attention. This runs what a serving engine runs per
step: a Llama-3-8B-shaped model with random weights, every layer, built from torch ops and kvsim's Triton
attention kernels (paged KV cache, block size 16): the token embedding; per layer the input RMSNorm, the QKV
GEMM, rotary on q and k, the KV-cache write (scatter by slot mapping), paged prefill and/or decode attention, the
O GEMM, the residual add, the post-attention RMSNorm, the gate/up GEMM, SiLU·mul, the down GEMM and the second
residual add; the final RMSNorm over all tokens, the LM head over each sequence's last token, and greedy sampling.
The elementwise ops are calibrate/step_ops.py's, the very functions the calibration sweeps time.

Each batch (decode, prefill, chunked prefill, mixed) is timed two ways:

- ``once_us``: one step at a time (``Timer``: L2 flushed, the host's launch hidden), the median: how the
  calibration sweeps time kernels;
- ``sustained_us``: the mean step of 200 consecutive steps (prefill and mixed steps: as many as fit in about
  2 s, at least 10), run back to back as a serving engine's loop runs them, at the clocks a GPU holds under
  sustained load. Every step is the same batch (contexts do not grow), so one prediction applies to all.

Decode steps run as serving engines run them, from a CUDA graph: the model's forward (embedding to logits) is
captured once per batch with ``torch.cuda.CUDAGraph`` and replayed; sampling runs after it, outside the graph,
as vLLM runs its sampler. Where the capture fails (a Triton version whose launches cannot be captured), the
step runs eagerly and the row's ``note`` says why. Prefill and mixed steps run eagerly (vLLM v0 captures decode
only).

``predicted_us`` is the profile's step (``ProfileCostModel.step_time``, greedy sampling) less its
``step_overhead`` (the engine's host time, not GPU time) and allocator time. The errors are predicted against
measured; the issue's goal is a mean |error| <= 5% and a max <= 10% (over ``sustained_us``). On CPU
(``--device cpu``) a tiny model runs on the torch reference kernels to exercise the code: those numbers mean
nothing.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from kvsim.calibrate import step_ops, validate_step
from kvsim.calibrate.sweeps import length_hint, resolve_kernels, shuffled_block_table
from kvsim.calibrate.timing import Timer
from kvsim.calibrate.validate_step import CASE_FIELDS, StepCase
from kvsim.errors import KvsimError
from kvsim.simulator.cost import profile_from_spec
from kvsim.simulator.cost.profile import Profile
from kvsim.simulator.cost.profile_model import ProfileCostModel
from kvsim.simulator.cost.work import layer_gemm_shapes, lm_head_shape
from kvsim.simulator.specs import ModelSpec

BLOCK_SIZE = 16
SUSTAINED_STEPS = 200
SUSTAINED_TARGET_S = 2.0  # prefill and mixed steps: about this long a run of consecutive steps
MIN_SUSTAINED_STEPS = 10
GOAL_MEAN_PCT, GOAL_MAX_PCT = 5.0, 10.0
GPU_CASES = (
    StepCase(decode_seqs=1, decode_context=512),
    StepCase(decode_seqs=1, decode_context=8192),
    StepCase(decode_seqs=8, decode_context=2048),
    StepCase(decode_seqs=32, decode_context=1024),
    StepCase(decode_seqs=32, decode_context=4096),
    StepCase(decode_seqs=128, decode_context=512),
    StepCase(decode_seqs=128, decode_context=1024),
    StepCase(prefill_seqs=1, prefill_q_len=512),
    StepCase(prefill_seqs=1, prefill_q_len=2048),
    StepCase(prefill_seqs=4, prefill_q_len=1024),
    StepCase(prefill_seqs=2, prefill_q_len=256, prefill_prefix=2048),  # chunked prefill
    StepCase(decode_seqs=32, decode_context=1024, prefill_seqs=1, prefill_q_len=512),  # mixed steps
    StepCase(decode_seqs=128, decode_context=512, prefill_seqs=1, prefill_q_len=256),
)
CPU_CASES = (
    StepCase(decode_seqs=2, decode_context=40),
    StepCase(prefill_seqs=1, prefill_q_len=24),
    StepCase(decode_seqs=2, decode_context=40, prefill_seqs=1, prefill_q_len=8, prefill_prefix=16),
)
COLUMNS = (
    *CASE_FIELDS, "mode", "once_us", "sustained_us", "sustained_steps", "predicted_us", "err_once_pct",
    "err_sustained_pct", "pred_gemm_us", "pred_attn_us", "pred_small_kernels_us", "pred_lm_head_us",
    "pred_sampling_us", "note",
)  # fmt: skip


def case_tokens(case: StepCase) -> int:
    """KV tokens the case keeps in each layer's cache."""
    return case.decode_seqs * case.decode_context + case.prefill_seqs * (
        case.prefill_q_len + case.prefill_prefix
    )


class LlamaModel:
    """Random weights and per-layer paged KV caches of ``model`` (one TP shard: the whole model), on
    ``device``. Weights are drawn N(0, 1/fan_in) so activations stay finite through every layer."""

    def __init__(self, model: ModelSpec, device: str, impl: str, pool_tokens: int, seed: int = 0) -> None:
        import torch

        self.torch, self.model, self.device = torch, model, device
        self.dtype = torch.float16 if model.dtype_bytes == 2 and device != "cpu" else torch.float32
        self.kernels = resolve_kernels(impl)
        torch.manual_seed(seed)

        def weight(n: int, k: int):  # nn.Linear layout [n, k]
            return torch.empty(n, k, device=device, dtype=self.dtype).normal_(0.0, k**-0.5)

        def ones(n: int):
            return torch.ones(n, device=device, dtype=self.dtype)

        hidden = model.hidden_size
        self.heads, self.kv_heads, self.head_dim = model.num_heads, model.num_kv_heads, model.head_dim
        self.embedding = torch.empty(model.vocab_size, hidden, device=device, dtype=self.dtype).normal_()
        lm = lm_head_shape(model)
        self.lm_head, self.final_norm = weight(lm.n, lm.k), ones(hidden)
        self.num_blocks = -(-pool_tokens // BLOCK_SIZE)
        cache_shape = (self.num_blocks, BLOCK_SIZE, self.kv_heads, self.head_dim)
        self.layers = []
        for _ in range(model.num_layers):
            qkv, o, up, down = (weight(s.n, s.k) for s in layer_gemm_shapes(model))
            caches = tuple(torch.empty(cache_shape, device=device, dtype=self.dtype).normal_() for _ in "kv")
            self.layers.append((ones(hidden), qkv, o, ones(hidden), up, down, *caches))
        self.rope = step_ops.rotary_cache(model.max_model_len, self.head_dim, device)

    def forward(self, inputs: StepInputs):
        """One step's logits [num_seqs, vocab]: every kernel the cost model prices, in a serving engine's order."""
        torch, linear = self.torch, self.torch.nn.functional.linear
        t, heads, kv_heads, d = inputs.num_tokens, self.heads, self.kv_heads, self.head_dim
        h = step_ops.embedding(inputs.token_ids, self.embedding)
        for norm_in, w_qkv, w_o, norm_post, w_up, w_down, k_cache, v_cache in self.layers:
            qkv = linear(step_ops.rms_norm(h, norm_in), w_qkv)
            q = qkv[:, : heads * d].view(t, heads, d)
            k = qkv[:, heads * d : (heads + kv_heads) * d].view(t, kv_heads, d)
            v = qkv[:, (heads + kv_heads) * d :].view(t, kv_heads, d)
            q, k = step_ops.rotary(q, k, self.rope, inputs.positions)
            step_ops.kv_write_paged(k_cache, v_cache, inputs.slot_mapping, k, v)
            parts = [attend(q, k_cache, v_cache) for attend in inputs.attention]
            attn = parts[0] if len(parts) == 1 else torch.cat(parts)
            h = step_ops.residual_add(linear(attn.view(t, heads * d), w_o), h)
            mlp = linear(step_ops.silu_mul(linear(step_ops.rms_norm(h, norm_post), w_up)), w_down)
            h = step_ops.residual_add(mlp, h)
        h = step_ops.rms_norm(h, self.final_norm)
        if inputs.last_token_index is not None:  # a prefilling sequence samples from its last token only
            h = h.index_select(0, inputs.last_token_index)
        return linear(h, self.lm_head)


class StepInputs:
    """The tensors of one batch: tokens, positions, slot mapping and the attention calls (decode sequences
    first, then prefills), laid out in the model's KV pool through shuffled block tables."""

    def __init__(self, lm: LlamaModel, case: StepCase, rng: np.random.Generator) -> None:
        torch, device, kernels = lm.torch, lm.device, lm.kernels
        decode_lens = [case.decode_context] * case.decode_seqs
        prefill_lens = [case.prefill_q_len + case.prefill_prefix] * case.prefill_seqs
        per_seq = [-(-n // BLOCK_SIZE) for n in decode_lens + prefill_lens]
        table = shuffled_block_table(per_seq, lm.num_blocks, rng)  # [num_seqs, max_blocks]
        positions, slots = [], []
        for row, (seq_len, q_len) in enumerate(
            [(n, 1) for n in decode_lens] + [(n, case.prefill_q_len) for n in prefill_lens]
        ):
            pos = np.arange(seq_len - q_len, seq_len)
            positions.append(pos)
            slots.append(table[row, pos // BLOCK_SIZE].astype(np.int64) * BLOCK_SIZE + pos % BLOCK_SIZE)
        self.num_tokens = case.decode_seqs + case.prefill_seqs * case.prefill_q_len
        self.num_seqs = case.decode_seqs + case.prefill_seqs

        def on_device(a, dtype=torch.int64):
            return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)

        self.token_ids = on_device(rng.integers(0, lm.model.vocab_size, self.num_tokens))
        self.positions = on_device(np.concatenate(positions))
        self.slot_mapping = on_device(np.concatenate(slots))
        self.attention = []
        n_dec = case.decode_seqs
        if n_dec:
            fn = kernels["paged_decode_attention"]
            args = (on_device(table[:n_dec], torch.int32), on_device(decode_lens, torch.int32))
            hint = length_hint(fn, "max_seq_len", case.decode_context)

            def decode(q, k_cache, v_cache, fn=fn, args=args, hint=hint):
                return fn(q[:n_dec], k_cache, v_cache, *args, **hint)

            self.attention.append(decode)
        self.last_token_index = None
        if case.prefill_seqs:
            fn = kernels["paged_prefill_attention"]
            q_len = case.prefill_q_len
            cu_q = on_device(np.arange(case.prefill_seqs + 1) * q_len, torch.int32)
            args = (on_device(table[n_dec:], torch.int32), cu_q, on_device(prefill_lens, torch.int32))
            hint = length_hint(fn, "max_q_len", q_len)

            def prefill(q, k_cache, v_cache, fn=fn, args=args, hint=hint):
                table_, cu_q_, lens = args
                return fn(q[n_dec:], k_cache, v_cache, table_, cu_q_, lens, **hint)

            self.attention.append(prefill)
            last = list(range(n_dec)) + [n_dec + (i + 1) * q_len - 1 for i in range(case.prefill_seqs)]
            self.last_token_index = on_device(last)


def graph_step(lm: LlamaModel, inputs: StepInputs):
    """A decode step from a captured CUDA graph (the forward) plus sampling; raises what capture raises."""
    torch = lm.torch
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture stream, as torch.cuda.graphs advises
        for _ in range(2):
            lm.forward(inputs)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        logits = lm.forward(inputs)

    def step():
        graph.replay()
        return step_ops.sample_greedy(logits)

    return step, graph


def sustained_s(lm: LlamaModel, step, num_steps: int) -> float:
    """The mean time of ``num_steps`` consecutive steps, queued back to back after one untimed step (so the GPU
    is busy while the host queues the rest)."""
    if lm.device == "cpu":
        start = time.perf_counter()
        for _ in range(num_steps):
            step()
        return (time.perf_counter() - start) / num_steps
    cuda = lm.torch.cuda
    begin, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
    step()
    begin.record()
    for _ in range(num_steps):
        step()
    end.record()
    cuda.synchronize()
    return begin.elapsed_time(end) * 1e-3 / num_steps


def measure(
    model: ModelSpec,
    device: str = "cuda",
    cases: tuple[StepCase, ...] | None = None,
    seed: int = 0,
    budget_s: float | None = None,
    sustained_steps: int = SUSTAINED_STEPS,
) -> tuple[list[dict], list[str]]:
    """One row per case (measured columns and ``note``), and the notes of what was skipped. Cases run in order
    until ``budget_s`` seconds have passed (then the rest are skipped, and said so)."""
    import torch

    smoke = device == "cpu"
    if not smoke and not torch.cuda.is_available():
        raise KvsimError(
            "no CUDA GPU is visible: validate a profile on the GPU it describes (or --device cpu)"
        )
    cases = cases or (CPU_CASES if smoke else GPU_CASES)
    started = time.perf_counter()
    timer = (
        Timer("cpu", target_s=0.0, min_reps=1, max_reps=1, warmup=1)
        if smoke
        else Timer(device, target_s=0.2, min_reps=5, max_reps=20, warmup=2)
    )
    pool_tokens = max(case_tokens(c) + BLOCK_SIZE * (c.decode_seqs + c.prefill_seqs) for c in cases)
    lm = LlamaModel(model, device, "reference" if smoke else "triton", pool_tokens, seed)
    rng = np.random.default_rng(seed)
    rows, skipped = [], []
    with torch.inference_mode():
        for case in cases:
            if budget_s is not None and time.perf_counter() - started > budget_s:
                skipped.append(f"{_label(case)}: not measured, the {budget_s:.0f} s budget was spent")
                continue
            inputs = StepInputs(lm, case, rng)
            mode, note, graph = "eager", "", None

            def eager_step(inputs=inputs):
                return step_ops.sample_greedy(lm.forward(inputs))

            step = eager_step
            if case.decode_seqs and not case.prefill_seqs:
                if smoke:
                    note = "no CUDA graphs on CPU: eager"
                else:
                    try:
                        step, graph = graph_step(lm, inputs)
                        mode = "graph"
                    except Exception as exc:  # this torch/Triton cannot capture the kernels: run eagerly
                        torch.cuda.synchronize()
                        note = f"CUDA graph capture failed ({type(exc).__name__}: {exc}); eager"
                        print(f"validate_model: {note}", file=sys.stderr)
            once = timer.time(step, flush_l2=True).median_s
            if smoke:
                steps = min(3, sustained_steps)
            elif mode == "graph" or not case.prefill_seqs:
                steps = sustained_steps
            else:
                steps = int(np.clip(SUSTAINED_TARGET_S / once, MIN_SUSTAINED_STEPS, sustained_steps))
            rows.append(
                {
                    **{name: getattr(case, name) for name in CASE_FIELDS},
                    "mode": mode,
                    "once_us": round(once * 1e6, 1),
                    "sustained_us": round(sustained_s(lm, step, steps) * 1e6, 1),
                    "sustained_steps": steps,
                    "note": note,
                }
            )
            del inputs, step, graph
            if not smoke:
                torch.cuda.empty_cache()
    return rows, skipped


def predict(rows: list[dict], profile: Profile, model: ModelSpec) -> list[dict]:
    """``rows`` with the profile's step (GPU time: step_overhead and allocator time left out) and its parts."""
    cost = ProfileCostModel(profile, model, 1, sampling="greedy")
    out = []
    for row in rows:
        case = StepCase(**{name: int(row[name]) for name in CASE_FIELDS})
        st = cost.step_time(case.batch("paged"))
        predicted_s = st.total_s - st.overhead_s - st.allocator_s
        parts = {
            "pred_gemm_us": st.gemm_s,
            "pred_attn_us": st.attn_prefill_s + st.attn_decode_s,
            "pred_small_kernels_us": st.elementwise_s + st.kv_write_s,
            "pred_lm_head_us": st.lm_head_s,
            "pred_sampling_us": st.sampling_s,
        }
        errors = {
            f"err_{kind}_pct": round((predicted_s / (float(row[f"{kind}_us"]) * 1e-6) - 1) * 100, 2)
            for kind in ("once", "sustained")
        }
        out.append(
            {
                **row,
                "predicted_us": round(predicted_s * 1e6, 1),
                **errors,
                **{k: round(v * 1e6, 1) for k, v in parts.items()},
            }
        )
    return out


def write_rows(rows: list[dict], path: Path) -> Path:
    """The rows as CSV, one per step case (COLUMNS)."""
    return validate_step.write_rows(rows, path, COLUMNS)


def table(rows: list[dict]) -> str:
    lines = [
        f"{'decode':>9} {'prefill':>11} {'mode':>5} {'once us':>9} {'sustained us':>12} {'steps':>5} "
        f"{'pred us':>9} {'err once %':>10} {'err sust %':>10}"
    ]
    for r in rows:
        lines.append(
            f"{_cell(r, 'decode'):>9} {_cell(r, 'prefill'):>11} {r['mode']:>5} {float(r['once_us']):>9.1f} "
            f"{float(r['sustained_us']):>12.1f} {int(r['sustained_steps']):>5} {float(r['predicted_us']):>9.1f} "
            f"{float(r['err_once_pct']):>10.1f} {float(r['err_sustained_pct']):>10.1f}"
            + (f"  ({r['note']})" if r.get("note") else "")
        )
    if rows:
        for kind in ("once", "sustained"):
            errors = np.abs([float(r[f"err_{kind}_pct"]) for r in rows])
            met = errors.mean() <= GOAL_MEAN_PCT and errors.max() <= GOAL_MAX_PCT
            lines.append(
                f"{kind}: mean |error| {errors.mean():.1f}% (max {errors.max():.1f}%) over {len(rows)} steps; "
                f"goal mean <= {GOAL_MEAN_PCT:.0f}%, max <= {GOAL_MAX_PCT:.0f}%: {'met' if met else 'NOT met'}"
            )
    return "\n".join(lines)


def _cell(row: dict, phase: str) -> str:
    if phase == "decode":
        return f"{row['decode_seqs']}x{row['decode_context']}" if int(row["decode_seqs"]) else "-"
    if not int(row["prefill_seqs"]):
        return "-"
    return f"{row['prefill_seqs']}x{row['prefill_q_len']}+{row['prefill_prefix']}"


def _label(case: StepCase) -> str:
    row = {name: getattr(case, name) for name in CASE_FIELDS}
    return f"decode {_cell(row, 'decode')}, prefill {_cell(row, 'prefill')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kvsim.calibrate.validate_model", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--profile", required=True, help="profile JSON to validate, or roofline:GPU")
    parser.add_argument("--model", default="llama-3-8b", help="model preset to build (on CPU: a tiny model)")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run on a tiny model")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write, one row per step")
    parser.add_argument(
        "--budget-s", type=float, default=None, help="stop starting new cases after this long"
    )
    parser.add_argument(
        "--steps", type=int, default=SUSTAINED_STEPS, help="consecutive steps per decode case"
    )
    parser.add_argument(
        "--from-csv",
        type=Path,
        help="re-predict the steps of an earlier --out CSV instead of measuring (no GPU)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from kvsim.calibrate.run import SMOKE_MODEL

    skipped: list[str] = []
    try:
        if args.steps < 1:
            raise KvsimError(f"--steps must be at least 1, got {args.steps}")
        model = (
            SMOKE_MODEL if args.device == "cpu" and args.from_csv is None else ModelSpec.from_name(args.model)
        )
        profile = profile_from_spec(args.profile)
        if args.from_csv is not None:
            with args.from_csv.open(newline="") as f:
                measured = list(csv.DictReader(f))
        else:
            measured, skipped = measure(
                model, args.device, seed=args.seed, budget_s=args.budget_s, sustained_steps=args.steps
            )
        rows = predict(measured, profile, model)
    except (KvsimError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    write_rows(rows, args.out)
    print(f"whole {model.name} steps ({model.num_layers} layers) against {args.profile}:")
    print(table(rows))
    for reason in skipped:
        print(f"skipped: {reason}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
