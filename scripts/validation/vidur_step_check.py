"""One prefill-only step: kvsim's StepTime parts beside Vidur's measured operator times at the same token count.

    python scripts/validation/vidur_step_check.py              # the 70B A100 prefill-heavy row's full step
    python scripts/validation/vidur_step_check.py --model llama-3-8b --tp 1

kvsim: ``make_cost_model(model, gpu, tp)`` through the engine's ``gpu_time_only`` (the host term belongs to the
engine model, not to the GPU). Vidur: the copies kvsim ships in calibrate/profiles/vidur/, read with
calibrate/vidur.py: per-layer operator medians of the model's ``mlp.csv`` at this TP, linear in num_tokens
between Vidur's grid points (repeated measurements averaged), and the NCCL all-reduce of the GPU's DGX table
(num_workers = devices_per_node = TP) at the message of one [tokens, hidden] activation, linear between measured
sizes and, beyond the largest, the least-squares line of the measurements in the top half of the range. Vidur
timed no attention for these models, no final norm, LM head, KV-cache write or sampling: those parts show
kvsim's value in both columns, in brackets; parts kvsim's profile has no term for (the H100 profile's elementwise
kernels) show 0 and no ratio.

With ``--row WORKLOAD`` (default prefill-heavy) the vllm-blog row of the same model, GPU and TP is simulated as
``kvsim reproduce vllm-blog`` runs it at QPS inf, and the script prints the GPU time per step of this shape that
the row's published throughput leaves when the run's other steps keep kvsim's times.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, fields

import numpy as np

from kvsim.calibrate import vidur
from kvsim.cli import reproduce_blog
from kvsim.errors import KvsimError
from kvsim.simulator import simulate
from kvsim.simulator.batch import Batch, StepTime
from kvsim.simulator.cost import ProfileCostModel, make_cost_model
from kvsim.simulator.engine_overhead import gpu_time_only
from kvsim.simulator.specs import ModelSpec

MIB = 2**20
# kvsim GPU -> (Vidur's operator files -> kvsim preset, Vidur's all-reduce system)
VIDUR_GPUS = {
    "a100-80gb": (vidur.A100_MODELS, "a100_dgx"),
    "h100-sxm": (vidur.H100_MODELS, "h100_dgx"),
}
# Per layer, as kvsim launches them (profile.LAYER_OPS): StepTime part -> (label, Vidur operator -> launches)
LAYER_PARTS = {
    "rmsnorm_s": ("RMSNorm", {"input_layernorm": 1, "post_attention_layernorm": 1}),
    "rotary_s": ("rotary", {"attn_rope": 1}),
    "activation_s": ("activation", {"mlp_act": 1}),
    "residual_add_s": ("residual add", {"add": 2}),
}
NOT_TIMED = " (not timed by Vidur)"
NO_TERM = " (no term in kvsim's profile)"
SHOWN_PARTS = (
    "gemm_s",
    "allreduce_s",
    *LAYER_PARTS,
    "embedding_s",
    "attn_prefill_s",
    "lm_head_s",
    "kv_write_s",
    "sampling_s",
)


@dataclass(frozen=True)
class Part:
    """One row of the table: kvsim's seconds and Vidur's (None: Vidur did not time it)."""

    label: str
    kvsim_s: float
    vidur_s: float | None


@dataclass(frozen=True)
class StepCheck:
    """Both sides of one step: ``parts`` cover every non-zero part of ``step`` (their kvsim_s sum to its
    total_s); ``notes`` say where each side's numbers come from."""

    model_name: str
    gpu: str
    tp: int
    num_prompts: int
    prompt_len: int
    step: StepTime
    parts: list[Part]
    notes: list[str]

    @property
    def vidur_step_s(self) -> float:
        """Vidur's parts, with kvsim's value for those Vidur did not time."""
        return sum(p.kvsim_s if p.vidur_s is None else p.vidur_s for p in self.parts)


def _mean_by_x(points: dict[float, list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted x, mean y at each x): repeated measurements averaged."""
    xs = sorted(points)
    return np.array(xs, dtype=float), np.array([np.mean(points[x]) for x in xs])


def measured_operators(relative: str, preset: str, tp: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Vidur operator -> (num_tokens grid, median seconds per layer), from one mlp.csv at TP ``tp``."""
    rows = vidur.operator_rows(relative, preset)
    measured_tps = sorted({r["tp"] for r in rows})
    if tp not in measured_tps:
        raise KvsimError(f"Vidur measured {preset} at TP {measured_tps}, not at TP {tp}")
    points: dict[str, dict[float, list[float]]] = {}
    for r in rows:
        if r["tp"] == tp:
            points.setdefault(r["operator"], {}).setdefault(r["t"], []).append(r["median_s"])
    return {operator: _mean_by_x(by_tokens) for operator, by_tokens in points.items()}


def measured_allreduce(system: str, tp: int) -> tuple[np.ndarray, np.ndarray]:
    """(message bytes, median seconds) of Vidur's NCCL all-reduce among ``tp`` GPUs of one node."""
    points: dict[float, list[float]] = {}
    for r in vidur.allreduce_rows(system):
        if r["term"] == f"allreduce.tp{tp}":
            points.setdefault(r["bytes"], []).append(r["median_s"])
    if not points:
        raise KvsimError(f"Vidur measured no all-reduce among {tp} GPUs on {system}")
    return _mean_by_x(points)


def allreduce_at(sizes: np.ndarray, seconds: np.ndarray, message_bytes: int) -> tuple[float, str]:
    """Vidur's all-reduce time at ``message_bytes``, and how it was read off the table."""
    top = sizes[-1]
    if message_bytes <= top:
        return float(np.interp(message_bytes, sizes, seconds)), "interpolated between measured sizes"
    upper = sizes >= top / 2
    s_per_byte, const_s = np.polyfit(sizes[upper], seconds[upper], 1)
    how = (
        f"BEYOND Vidur's measured range (largest message {top / MIB:.1f} MiB), extrapolated with the "
        f"least-squares line of its {upper.sum()} measurements at {top / 2 / MIB:.0f}-{top / MIB:.0f} MiB: "
        f"{const_s * 1e6:.1f} us + bytes / {1 / s_per_byte / 1e9:.1f} GB/s"
    )
    return float(const_s + s_per_byte * message_bytes), how


def allreduce_part(
    cost: ProfileCostModel, system: str, num_tokens: int, kvsim_s: float
) -> tuple[Part, list[str]]:
    """The step's all-reduces (two per layer, of one [tokens, hidden] activation each) on both sides."""
    model, tp = cost.model, cost.tp
    message_bytes = num_tokens * model.hidden_size * model.dtype_bytes
    sizes, seconds = measured_allreduce(system, tp)
    vidur_s, how = allreduce_at(sizes, seconds, message_bytes)
    size = f"{message_bytes / MIB:.1f} MiB"
    part = Part(f"all-reduce 2 x {model.num_layers}, {size} each", kvsim_s, 2 * model.num_layers * vidur_s)
    notes = [f"all-reduce: {vidur.ALLREDUCE_FILES[system]}, {tp} GPUs in one node; {size}: {how}"]
    fit = cost.profile.terms.get(f"allreduce.tp{tp}")
    if fit is not None:  # else the pooled ring line, which the cost description names
        p = fit.params
        notes.append(
            f"kvsim's all-reduce: the profile's allreduce.tp{tp} fit to those {sizes[0]:.0f} B-"
            f"{sizes[-1] / MIB:.1f} MiB measurements, {p['const_s'] * 1e6:.1f} us + bytes / "
            f"{1 / p['s_per_byte'] / 1e9:.1f} GB/s past a knee at {p['knee_bytes']:.0f} B"
        )
    return part, notes


def step_check(model_name: str, gpu: str, tp: int, num_prompts: int, prompt_len: int) -> StepCheck:
    """kvsim's and Vidur's times of one step that prefills ``num_prompts`` prompts of ``prompt_len`` tokens.
    Raises KvsimError for a GPU, model, TP or token count that Vidur did not measure."""
    if gpu not in VIDUR_GPUS:
        raise KvsimError(f"Vidur measured no operators on {gpu}; it measured {', '.join(VIDUR_GPUS)}")
    files, system = VIDUR_GPUS[gpu]
    preset_to_file = {preset: relative for relative, preset in files.items()}
    if model_name not in preset_to_file:
        raise KvsimError(f"Vidur measured no {model_name} on {gpu}; it measured {', '.join(preset_to_file)}")
    model = ModelSpec.from_name(model_name)
    operators = measured_operators(preset_to_file[model_name], model_name, tp)
    t, num_layers = num_prompts * prompt_len, model.num_layers
    grid = operators["attn_pre_proj"][0]
    if not grid[0] <= t <= grid[-1]:
        raise KvsimError(f"{t} tokens is outside Vidur's measured {grid[0]:.0f}-{grid[-1]:.0f} tokens")

    def vidur_s(launches: dict[str, int]) -> float:  # Vidur operator -> launches
        return sum(n * float(np.interp(t, *operators[op])) for op, n in launches.items())

    cost = gpu_time_only(make_cost_model(model, gpu, tp))
    lens = (prompt_len,) * num_prompts
    step = cost.step_time(Batch(prefill_q_lens=lens, prefill_kv_lens=lens))
    below, above = grid[grid <= t][-1], grid[grid >= t][0]
    notes = [
        f"kvsim: {cost.description}",
        f"Vidur: {preset_to_file[model_name]}, TP {tp}, medians at {t:,} tokens, "
        + ("on its grid" if below == above else f"linear between its {below:.0f} and {above:.0f}"),
    ]
    parts = [
        Part(
            f"GEMMs (QKV, O, MLP up, MLP down) x {num_layers}",
            step.gemm_s,
            num_layers * vidur_s(dict.fromkeys(vidur.GEMM_OPERATORS, 1)),
        )
    ]
    if tp > 1:
        part, allreduce_notes = allreduce_part(cost, system, t, step.allreduce_s)
        parts.append(part)
        notes += allreduce_notes
    final_norm_s = step.rmsnorm_s / (2 * num_layers + 1)  # kvsim's RMSNorms: 2 per layer and the final one
    for name, (label, launches) in LAYER_PARTS.items():
        kvsim_s = getattr(step, name) - (final_norm_s if name == "rmsnorm_s" else 0.0)
        parts.append(
            Part(f"{label} {sum(launches.values())} x {num_layers}", kvsim_s, num_layers * vidur_s(launches))
        )
    parts += [
        Part("embedding", step.embedding_s, vidur_s({"emb": 1})),  # once per step
        Part(f"prefill attention x {num_layers}{NOT_TIMED}", step.attn_prefill_s, None),
        Part(f"final RMSNorm{NOT_TIMED}", final_norm_s, None),
        Part(f"LM head{NOT_TIMED}", step.lm_head_s, None),
        Part(f"KV-cache write{NOT_TIMED}", step.kv_write_s, None),
        Part(f"sampling{NOT_TIMED}", step.sampling_s, None),
    ]
    assert not any(getattr(step, f.name) for f in fields(StepTime) if f.name not in SHOWN_PARTS), step
    parts = [p for p in parts if p.kvsim_s or p.vidur_s]
    parts = [Part(p.label + NO_TERM, 0.0, p.vidur_s) if p.vidur_s and not p.kvsim_s else p for p in parts]
    assert math.isclose(sum(p.kvsim_s for p in parts), step.total_s, rel_tol=1e-9), (parts, step)
    return StepCheck(model_name, gpu, tp, num_prompts, prompt_len, step, parts, notes)


def table(check: StepCheck) -> list[str]:
    """The comparison in ms: one line per part, then the whole GPU step."""
    width = max(len(p.label) for p in check.parts)
    lines = [f"{'part':{width}}  {'kvsim ms':>9}  {'Vidur ms':>9}  {'kvsim/Vidur':>11}"]
    for p in check.parts:
        if p.vidur_s is None:
            vidur_ms, ratio = f"({p.kvsim_s * 1e3:.1f})", "-"
        elif not p.kvsim_s:
            vidur_ms, ratio = f"{p.vidur_s * 1e3:.1f}", "-"
        else:
            vidur_ms, ratio = f"{p.vidur_s * 1e3:.1f}", f"{p.kvsim_s / p.vidur_s:.3f}"
        lines.append(f"{p.label:{width}}  {p.kvsim_s * 1e3:9.1f}  {vidur_ms:>9}  {ratio:>11}")
    kvsim_s, vidur_s = check.step.total_s, check.vidur_step_s
    lines.append(
        f"{'step (GPU)':{width}}  {kvsim_s * 1e3:9.1f}  {vidur_s * 1e3:9.1f}  {kvsim_s / vidur_s:11.3f}"
    )
    return lines


def budget(check: StepCheck, workload: str) -> list[str]:
    """The GPU time per step of this shape that the published throughput of the vllm-blog row (same model, GPU,
    TP; ``workload``) leaves, the run's other steps and the engine's host time kept as kvsim has them."""
    key = (check.model_name, check.gpu, check.tp, workload)
    row = next(
        (
            r
            for r in reproduce_blog.load_rows()["rows"]
            if (r["model"], r["gpu"], int(r["tp"]), r["workload"]) == key
        ),
        None,
    )
    if row is None:
        return [
            f"budget: no vllm-blog row for {check.model_name} on {check.gpu} at TP {check.tp}, {workload}"
        ]
    prompt, output = reproduce_blog.workload_lengths(workload, 0)
    config = reproduce_blog.row_config(row, 0, reproduce_blog.scheduler_name())
    run = simulate(config, reproduce_blog.make_trace(prompt, output, math.inf, 0))
    columns = dict(zip(run.recorder.timeline_column_names, run.recorder.timeline_columns()))
    # A timeline row holds until the next; the end of each prefill writes one, so a row of this shape is one step.
    time_s, tokens, seqs = columns["time_s"], columns["num_batched_tokens"], columns["num_batched_seqs"]
    is_step = (tokens[:-1] == check.num_prompts * check.prompt_len) & (seqs[:-1] == check.num_prompts)
    num_steps = int(is_step.sum())
    if not num_steps:
        return [
            f"budget: the {workload} row's run has no step of {check.num_prompts} x {check.prompt_len} tokens"
        ]
    wall_s = np.diff(time_s)[is_step]
    assert np.ptp(wall_s) < 1e-9, wall_s  # the same step each time
    step_wall_s, gpu_s = float(wall_s[0]), check.step.total_s
    duration_s, published = run.summary["duration_s"], row["throughput_req_s_at_qps_inf"]
    published_s = run.summary["num_finished"] / published
    other_s = duration_s - num_steps * step_wall_s
    needed_gpu_s = (published_s - other_s) / num_steps - (step_wall_s - gpu_s)
    return [
        f"budget: the {workload} row at QPS inf, as `kvsim reproduce vllm-blog` runs it, takes {duration_s:.2f} s: "
        f"{num_steps} steps of this shape at {step_wall_s * 1e3:.1f} ms ({gpu_s * 1e3:.1f} GPU + "
        f"{(step_wall_s - gpu_s) * 1e3:.1f} host) and {other_s:.2f} s of everything else.",
        f"The published {published} req/s is a {published_s:.2f} s run: with everything else unchanged, a step of "
        f"this shape may take {needed_gpu_s * 1e3:.1f} ms of GPU time (kvsim {gpu_s * 1e3:.1f}, Vidur's operators "
        f"{check.vidur_step_s * 1e3:.1f}).",
    ]


def _prefill(text: str) -> tuple[int, int]:
    num_prompts, sep, prompt_len = text.partition("x")
    if not (sep and num_prompts.isdigit() and prompt_len.isdigit() and int(num_prompts) and int(prompt_len)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NUM_PROMPTSxPROMPT_LEN, e.g. 17x462")
    return int(num_prompts), int(prompt_len)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="llama-3-70b", help="kvsim model preset")
    parser.add_argument("--gpu", default="a100-80gb", help=f"one of {', '.join(VIDUR_GPUS)}")
    parser.add_argument("--tp", type=int, default=4)
    parser.add_argument("--prefill", type=_prefill, default=(17, 462), help="NUM_PROMPTSxPROMPT_LEN (17x462)")
    parser.add_argument(
        "--row", default="prefill-heavy", help="vllm-blog workload of the budget ('' for none)"
    )
    args = parser.parse_args(argv)
    try:
        check = step_check(args.model, args.gpu, args.tp, *args.prefill)
    except KvsimError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    t = check.num_prompts * check.prompt_len
    print(
        f"{args.model} on {args.gpu}, TP {args.tp}: one prefill-only step of {args.prefill[0]} x {args.prefill[1]} = {t:,} tokens"
    )
    print("\n".join([*check.notes, "", *table(check)]))
    if args.row:
        print("\n" + "\n".join(budget(check, args.row)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
