"""Profiles from another team's GPU measurements: Vidur's published operator and NCCL timings.

``calibrate/profiles/vidur/`` holds gzipped byte-for-byte copies of the Vidur files kvsim uses (MIT; Agrawal et
al., "Vidur", MLSys 2024; github.com/microsoft/vidur at 7d47513; see that folder's README). From them:

    python -m kvsim.calibrate.vidur build        # profile-a100-80gb-vidur.json + vidur/allreduce-fits.json
    python -m kvsim.calibrate.vidur crosscheck   # kvsim's H100 kernels and profile against Vidur's H100 times
    python -m kvsim.calibrate.vidur h100-elementwise   # the H100 profile's elementwise terms (vidur_h100.py)

The A100 profile's terms are fitted with kvsim's own fit code (``calibrate/fit.py``: relative-error fits,
held-out MAPE and R² per term) on features computed from each model's shapes (``simulator/cost/work.py``):
GEMMs from ``attn_pre_proj`` / ``attn_post_proj`` / ``mlp_up_proj`` / ``mlp_down_proj``, the elementwise
terms from ``input_layernorm`` and ``post_attention_layernorm`` (rmsnorm), ``attn_rope`` (rotary), ``mlp_act``
(activation), ``add`` (residual_add) and ``emb`` (embedding), decode and prefill attention from the one
attention table (A100, CodeLlama-34B at TP 2, FlashAttention, block size 16), all-reduce from DGX A100's NCCL
times. Vidur measured no engine overhead: ``step_overhead`` stays the roofline's assumed value, marked so.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from kvsim.calibrate.fit import fit_term, mape_pct
from kvsim.errors import KvsimError
from kvsim.simulator.cost.profile import DeviceInfo, Profile, Term, load_profile
from kvsim.simulator.cost.roofline import roofline_profile
from kvsim.simulator.cost.work import (
    elementwise_bytes_per_token,
    gemm_bytes,
    gemm_flops,
    layer_gemm_shapes,
    prefill_attn_bytes,
    prefill_attn_flops,
    ring_allreduce_bytes,
)
from kvsim.simulator.specs import GpuSpec, ModelSpec

PROFILES_DIR = Path(__file__).parent / "profiles"
DATA_DIR = PROFILES_DIR / "vidur"
PROFILE_FILE = "profile-a100-80gb-vidur.json"
FITS_FILE = "allreduce-fits.json"  # read by kvsim.simulator.cost.collectives
VIDUR_COMMIT = "7d47513363ec447a741ac5e47241580b47724fbf"
MEASURED_BY = "Vidur (Agrawal et al., MLSys 2024; github.com/microsoft/vidur@7d47513)"
PROVENANCE = "Vidur, A100 80GB, microsoft/vidur@7d47513, 2024; cited, not measured by kvsim"
MS = 1e-3  # Vidur's times are in milliseconds

# Vidur's model folders -> kvsim presets (shapes checked against the CSV's columns on load)
A100_MODELS = {
    "compute/a100/meta-llama/Meta-Llama-3-8B/mlp.csv.gz": "llama-3-8b",
    "compute/a100/meta-llama/Meta-Llama-3-70B/mlp.csv.gz": "llama-3-70b",
}
H100_MODELS = {
    "compute/h100/meta-llama/Llama-2-7b-hf/mlp.csv.gz": "llama-2-7b",
    "compute/h100/codellama/CodeLlama-34b-Instruct-hf/mlp.csv.gz": "codellama-34b",
}
ATTENTION_FILE = "compute/a100/codellama/CodeLlama-34b-Instruct-hf/attention.csv.gz"
# The attention table's set-up (Vidur's columns say so; checked on load): CodeLlama-34B at TP 2
ATTENTION_MODEL, ATTENTION_TP, ATTENTION_BLOCK_SIZE = "codellama-34b", 2, 16
ALLREDUCE_FILES = {
    "a100_dgx": "network/a100_dgx/all_reduce.csv.gz",
    "h100_dgx": "network/h100_dgx/all_reduce.csv.gz",
}
PROFILED_MODEL = "llama-3-8b"  # the per-op GEMM terms are this model's (the others use the pooled fit)
GEMM_OPERATORS = {  # Vidur operator -> kvsim GEMM op
    "attn_pre_proj": "qkv",
    "attn_post_proj": "o",
    "mlp_up_proj": "mlp_up",
    "mlp_down_proj": "mlp_down",
}
ELEMENTWISE_OPERATORS = {  # Vidur operator -> kvsim term (profile.LAYER_OPS)
    "input_layernorm": "rmsnorm",
    "post_attention_layernorm": "rmsnorm",
    "attn_rope": "rotary",
    "mlp_act": "activation",
    "add": "residual_add",
    "emb": "embedding",
}


def read_csv(relative: str, data_dir: Path = DATA_DIR) -> list[dict[str, str]]:
    """One shipped Vidur CSV (gzipped copy) as rows; a missing or unreadable file is a KvsimError."""
    path = data_dir / relative
    try:
        with gzip.open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as exc:
        raise KvsimError(f"cannot read Vidur data {path}: {exc}; reinstall kvsim or pass --data") from None
    return list(csv.DictReader(io.StringIO(text)))


def _median_s(row: dict[str, str], op: str) -> float | None:
    value = row.get(f"time_stats.{op}.median", "")
    return float(value) * MS if value not in ("", None) and float(value) > 0 else None


def _check_shapes(model: ModelSpec, row: dict[str, str], where: str) -> None:
    shapes = {
        "n_head": model.num_heads,
        "n_kv_head": model.num_kv_heads,
        "n_embd": model.hidden_size,
        "n_expanded_embd": model.intermediate_size,
    }
    for column, expected in shapes.items():
        if int(row[column]) != expected:
            raise KvsimError(
                f"{where}: column {column} is {row[column]}, kvsim's {model.name} has {expected}"
            )


def operator_rows(relative: str, preset: str, data_dir: Path = DATA_DIR) -> list[dict[str, Any]]:
    """Measurement rows (``term``, features, ``median_s``; plus ``model``, ``tp``, ``t``, ``operator``) of
    every GEMM and elementwise operator in one Vidur ``mlp.csv``, features from ``preset``'s shapes."""
    model = ModelSpec.from_name(preset)
    rows = []
    for i, raw in enumerate(read_csv(relative, data_dir)):
        if i == 0:
            _check_shapes(model, raw, relative)
        t, tp = int(raw["num_tokens"]), int(raw["num_tensor_parallel_workers"])
        shapes = {s.op: s for s in layer_gemm_shapes(model, tp)}
        base = {"model": model.name, "tp": tp, "t": t}
        for operator, op in GEMM_OPERATORS.items():
            seconds = _median_s(raw, operator)
            if seconds is not None:
                shape = shapes[op]
                features = {"flops": gemm_flops(t, shape), "bytes": gemm_bytes(t, shape, model.dtype_bytes)}
                rows.append(
                    {**base, "term": f"gemm.{op}", "operator": operator, **features, "median_s": seconds}
                )
        for operator, term in ELEMENTWISE_OPERATORS.items():
            seconds = _median_s(raw, operator)
            if seconds is not None:
                nbytes = t * elementwise_bytes_per_token(model, tp, term)
                rows.append(
                    {**base, "term": term, "operator": operator, "bytes": nbytes, "median_s": seconds}
                )
    return rows


def attention_rows(data_dir: Path = DATA_DIR) -> list[dict[str, Any]]:
    """``attn_decode_paged`` and ``attn_prefill_paged`` rows from the attention table (per-GPU heads at TP 2).
    Vidur's reshape operators (KV-cache write, output reshape) are separate kernels, left out of both."""
    model, tp = ModelSpec.from_name(ATTENTION_MODEL), ATTENTION_TP
    heads, kv_heads, head_dim = model.num_heads // tp, max(1, model.num_kv_heads // tp), model.head_dim
    kv_bytes_per_token = 2 * kv_heads * head_dim * model.dtype_bytes
    rows = []
    for i, raw in enumerate(read_csv(ATTENTION_FILE, data_dir)):
        if i == 0 and (
            int(raw["n_q_head"]) != model.num_heads
            or int(raw["n_kv_head"]) != model.num_kv_heads
            or int(raw["num_tensor_parallel_workers"]) != tp
            or int(raw["block_size"]) != ATTENTION_BLOCK_SIZE
        ):
            raise KvsimError(f"{ATTENTION_FILE}: not the CodeLlama-34B TP 2 block-16 table kvsim expects")
        batch, context = int(raw["batch_size"]), int(raw["kv_cache_size"])
        if raw["is_prefill"] == "True":
            seconds = _median_s(raw, "attn_prefill")
            q_len = int(raw["prefill_chunk_size"])
            kv_len = context + q_len
            if seconds is None:
                continue
            rows.append(
                {
                    "term": "attn_prefill_paged",
                    "flops": batch * prefill_attn_flops(q_len, kv_len, heads, head_dim),
                    "bytes": batch
                    * prefill_attn_bytes(q_len, kv_len, heads, kv_heads, head_dim, model.dtype_bytes),
                    "num_seqs": batch,
                    "median_s": seconds,
                }
            )
        else:
            seconds = _median_s(raw, "attn_decode")
            if seconds is None:
                continue
            rows.append(
                {
                    "term": "attn_decode_paged",
                    "kv_bytes": batch * context * kv_bytes_per_token,
                    "num_seqs": batch,
                    "num_blocks": batch * -(-context // ATTENTION_BLOCK_SIZE),
                    "median_s": seconds,
                }
            )
    return rows


def allreduce_rows(system: str, data_dir: Path = DATA_DIR) -> list[dict[str, Any]]:
    """NCCL all-reduce rows of one system, within one node (``devices_per_node`` = ``num_workers``: the
    NVSwitch case TP uses): ``allreduce.tp<N>`` rows (message ``bytes``) and pooled ``allreduce`` rows
    (``ring_bytes``)."""
    rows = []
    for raw in read_csv(ALLREDUCE_FILES[system], data_dir):
        workers = int(raw["num_workers"])
        if int(raw["devices_per_node"]) != workers or workers not in (2, 4, 8):
            continue
        seconds, size = _median_s(raw, "all_reduce"), int(raw["size"])
        if seconds is None:
            continue
        rows.append({"term": f"allreduce.tp{workers}", "bytes": size, "median_s": seconds})
        rows.append(
            {"term": "allreduce", "ring_bytes": ring_allreduce_bytes(size, workers), "median_s": seconds}
        )
    return rows


def _by_term(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["term"], []).append(row)
    return groups


def _fit(name: str, rows: list[dict[str, Any]], seed: int) -> Term:
    term = fit_term(name, rows, seed)
    if term is None:
        raise KvsimError(f"too few Vidur points to fit {name} ({len(rows)})")
    return term


def build_allreduce_fits(seed: int = 0, data_dir: Path = DATA_DIR) -> dict[str, Any]:
    """{measured_by, ..., systems: {system: {term: {form, params, fit}}}}: the file collectives.py reads."""
    systems = {}
    for system in ALLREDUCE_FILES:
        groups = _by_term(allreduce_rows(system, data_dir))
        systems[system] = {
            name: _term_dict(_fit(name, groups[name], seed)) for name in sorted(groups, key=_allreduce_order)
        }
    return {
        "measured_by": MEASURED_BY,
        "what": "NCCL all-reduce within one node (devices_per_node = num_workers), fp16 messages of 2 KiB to "
        "64 MiB; allreduce.tp<N>: hinge in message bytes per group size; allreduce: one line in ring bytes "
        "over all group sizes (for group sizes without their own fit)",
        "files": ALLREDUCE_FILES,
        "systems": systems,
    }


def _allreduce_order(name: str) -> tuple[int, str]:
    return (0 if name == "allreduce" else 1, name)


def _term_dict(term: Term) -> dict[str, Any]:
    from dataclasses import asdict

    return {"form": term.form, "params": term.params, "fit": asdict(term.fit) if term.fit else None}


def build_a100_profile(seed: int = 0, data_dir: Path = DATA_DIR) -> Profile:
    """The A100-80GB profile from Vidur's measurements (module docstring)."""
    op_rows = [row for rel, preset in A100_MODELS.items() for row in operator_rows(rel, preset, data_dir)]
    groups = _by_term(op_rows)
    profiled = ModelSpec.from_name(PROFILED_MODEL).name
    terms: dict[str, Term] = {}
    gemm_rows = [row for name, rows in groups.items() if name.startswith("gemm.") for row in rows]
    terms["gemm"] = _fit("gemm", gemm_rows, seed)  # pooled over ops, both models, TP 1-8
    for op in GEMM_OPERATORS.values():
        terms[f"gemm.{op}"] = _fit(
            f"gemm.{op}", [r for r in groups[f"gemm.{op}"] if r["model"] == profiled], seed
        )
    for term in dict.fromkeys(ELEMENTWISE_OPERATORS.values()):
        terms[term] = _fit(term, groups[term], seed)
    attention = _by_term(attention_rows(data_dir))
    terms["attn_decode_paged"] = _fit("attn_decode_paged", attention["attn_decode_paged"], seed)
    terms["attn_prefill_paged"] = _fit("attn_prefill_paged", attention["attn_prefill_paged"], seed)
    # Carried over: Vidur measured only the paged (FlashAttention, block 16) kernels; the contiguous terms
    # are fitted on the same points (decode without the per-block feature). kvsim's own kernels measured
    # paged / contiguous at 1.01 on the H100 (docs/validation.md).
    terms["attn_decode_contiguous"] = _fit("attn_decode_contiguous", attention["attn_decode_paged"], seed)
    terms["attn_prefill_contiguous"] = _fit("attn_prefill_contiguous", attention["attn_prefill_paged"], seed)
    allreduce = _by_term(allreduce_rows("a100_dgx", data_dir))
    for name in sorted(allreduce, key=_allreduce_order):
        terms[name] = _fit(name, allreduce[name], seed)
    roofline = roofline_profile(GpuSpec.from_name("a100-80gb"))
    step = roofline.terms["step_overhead"]
    terms["step_overhead"] = Term(step.form, dict(step.params), None, "roofline")
    gpu = GpuSpec.from_name("a100-80gb")
    return Profile(
        device=DeviceInfo(gpu.name, gpu.memory_bytes, gpu.num_sms, date="2024"),
        source="measured",
        terms=terms,
        representative=True,
        notes=f"fitted by kvsim on {len(op_rows)} operator, "
        f"{sum(map(len, attention.values()))} attention and {len(allreduce['allreduce'])} all-reduce "
        "measurements published by Vidur (GPU A100 80GB; drivers and library versions not recorded); "
        "attn_*_contiguous carried over from Vidur's paged (FlashAttention) table; step_overhead from the "
        "A100-80GB roofline (Vidur measured no engine overhead)",
        model=profiled,
        tp=1,
        extra={
            "measured_by": MEASURED_BY,
            "vidur_commit": VIDUR_COMMIT,
            "license": "MIT (calibrate/profiles/vidur/LICENSE)",
            "data": "calibrate/profiles/vidur/ (gzipped byte-for-byte copies; README.md there)",
            "gemm_models": sorted({r["model"] for r in gemm_rows}),
            "per_op_gemm_model": profiled,
            "tps": sorted({r["tp"] for r in op_rows}),
            "attention": "A100, CodeLlama-34B at TP 2 (32 query / 4 KV heads per GPU, head_dim 128), "
            "FlashAttention, block size 16, Kineto; reshapes (KV-cache write) left out",
            "carried_over": ["attn_decode_contiguous", "attn_prefill_contiguous"],
            "not_measured_by_vidur": ["gemm.lm_head (the pooled gemm fit stands in)", "step_overhead"],
        },
        provenance=PROVENANCE,
    )


def build(out_dir: Path = PROFILES_DIR, seed: int = 0, data_dir: Path = DATA_DIR) -> tuple[Path, Path]:
    """Write the A100 profile and the all-reduce fits; returns their paths."""
    fits = build_allreduce_fits(seed, data_dir)
    fits_path = out_dir / "vidur" / FITS_FILE
    fits_path.parent.mkdir(parents=True, exist_ok=True)
    fits_path.write_text(json.dumps(fits, indent=1) + "\n", encoding="utf-8")
    profile_path = build_a100_profile(seed, data_dir).save(out_dir / PROFILE_FILE)
    return profile_path, fits_path


def fit_table(profile: Profile) -> list[tuple[str, ...]]:
    """(term, form, n, held-out MAPE %, R², extrapolation MAPE %, source) per term of ``profile``."""
    rows = []
    for name, term in profile.terms.items():
        fit = term.fit
        cells = (
            (
                str(fit.n),
                _num(fit.mape_holdout_pct),
                _num(fit.r2_holdout, 3),
                _num(fit.mape_extrapolation_pct),
            )
            if fit
            else ("-", "-", "-", "-")
        )
        rows.append((name, term.form, *cells, term.source or profile.source))
    return rows


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# --- cross-check: kvsim's H100 against Vidur's H100 ---------------------------------------------------------


def crosscheck(
    profile: Profile, kvsim_measurements: dict[str, Path], data_dir: Path = DATA_DIR
) -> dict[str, list[tuple[str, ...]]]:
    """Two tables, per operator of Vidur's H100 data (Llama-2-7B and CodeLlama-34B at TP 1-8):
    ``kernels``: kvsim's own measured kernel times (``kvsim_measurements``: model preset -> measurements CSV
    on that model's shapes) ÷ Vidur's at the same shape, TP and token count;
    ``profile``: ``profile``'s prediction (the term the cost model uses for that model) ÷ Vidur's, over every
    Vidur token count; elementwise operators from the profile where it has the term, else the H100 roofline's
    estimate (marked)."""
    from kvsim.calibrate.measurements import load_measurements

    roofline = roofline_profile(GpuSpec.from_name("h100-sxm"))
    kernels, predicted = [], []
    for rel, preset in H100_MODELS.items():
        model = ModelSpec.from_name(preset)
        vidur = operator_rows(rel, preset, data_dir)
        by_key = {(r["term"], r["tp"], r["t"]): r["median_s"] for r in vidur if r["term"].startswith("gemm.")}
        ratios: dict[str, list[float]] = {}
        path = kvsim_measurements.get(preset)
        if path is not None:
            shape_to_tp = {
                (s.op, s.k, s.n): tp
                for tp in (1, 2, 4, 8)
                for s in layer_gemm_shapes(model, tp)
                if model.num_heads % tp == 0
            }
            for row in load_measurements(path).rows:
                name = row["term"]
                if not name.startswith("gemm.") or name == "gemm.lm_head":
                    continue
                tp = shape_to_tp.get((name[5:], int(float(row["k"])), int(float(row["n"]))))
                vidur_s = by_key.get((name, tp, int(float(row["t"]))))
                if tp is not None and vidur_s is not None:
                    ratios.setdefault(name, []).append(float(row["median_s"]) / vidur_s)
        for name, values in sorted(ratios.items()):
            kernels.append((model.name, _operator_of(name), *_ratio_cells(np.array(values))))
        by_term = {}
        for row in vidur:
            by_term.setdefault((row["term"], row["operator"]), []).append(row)
        for (name, operator), rows in by_term.items():
            if name.startswith("gemm."):
                term, label = (
                    profile.gemm_term(name[5:], model.name),
                    name if profile.profiled(model.name) else "gemm",
                )
            elif name in profile.terms:
                term = profile.terms[name]
                label = f"{name} (fitted on these)" if term.source == "cited" else name
            else:
                term, label = roofline.terms[name], f"{name} (roofline)"
            features = ("flops", "bytes") if term.form == "max" else ("bytes",)
            pred = np.array([term.predict(**{f: float(r[f]) for f in features}) for r in rows])
            meas = np.array([r["median_s"] for r in rows])
            predicted.append(
                (
                    model.name,
                    operator,
                    label,
                    str(len(rows)),
                    f"{mape_pct(pred, meas):.1f}",
                    *_ratio_cells(pred / meas)[1:],
                )
            )
    return {"kernels": kernels, "profile": predicted}


def _operator_of(term: str) -> str:
    return next(op for op, name in GEMM_OPERATORS.items() if f"gemm.{name}" == term)


def _ratio_cells(ratios: np.ndarray) -> tuple[str, str, str]:
    """(n, median, p10-p90) of a set of ratios."""
    p10, p50, p90 = np.percentile(ratios, [10, 50, 90])
    return str(len(ratios)), f"{p50:.2f}", f"{p10:.2f}-{p90:.2f}"


def markdown(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kvsim.calibrate.vidur", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="folder of the gzipped Vidur copies")
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="write the A100-80GB profile and the all-reduce fits")
    build_cmd.add_argument("--out", type=Path, default=PROFILES_DIR, help="profiles folder to write into")
    build_cmd.add_argument("--seed", type=int, default=0)
    merge = commands.add_parser(
        "h100-elementwise",
        help="fit the elementwise terms on Vidur's H100 and write them into the H100 profile",
    )
    merge.add_argument("--profile", type=Path, default=PROFILES_DIR / "profile-h100-sxm.json")
    merge.add_argument("--seed", type=int, default=0)
    check = commands.add_parser("crosscheck", help="kvsim's H100 kernels and profile against Vidur's H100")
    check.add_argument("--profile", type=Path, default=PROFILES_DIR / "profile-h100-sxm.json")
    check.add_argument(
        "--measurements",
        nargs="*",
        default=[
            f"{m}={PROFILES_DIR / 'validation' / f'measurements-h100-sxm-{m}.csv'}"
            for m in H100_MODELS.values()
        ],
        help="PRESET=CSV of kvsim's own H100 kernel measurements on that model's shapes",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            profile_path, fits_path = build(args.out, args.seed, args.data)
            print(f"wrote {profile_path} and {fits_path}")
            print(
                markdown(
                    ("term", "form", "n", "held-out MAPE %", "held-out R²", "extrapolation MAPE %", "source"),
                    fit_table(load_profile(profile_path)),
                )
            )
            fits = json.loads(fits_path.read_text(encoding="utf-8"))
            rows = []
            for system, terms in fits["systems"].items():
                for name, t in terms.items():
                    p, f = t["params"], t["fit"]
                    form = (
                        f"{p['const_s'] * 1e6:.1f} us + max(0, bytes - {p['knee_bytes'] / 2**20:.2f} MiB) / "
                        f"{1 / p['s_per_byte'] / 1e9:.0f} GB/s"
                        if t["form"] == "hinge"
                        else f"{p['const_s'] * 1e6:.1f} us + ring_bytes / {1 / p['ring_bytes'] / 1e9:.0f} GB/s"
                    )
                    rows.append(
                        (
                            system,
                            name,
                            form,
                            str(f["n"]),
                            _num(f["mape_holdout_pct"]),
                            _num(f["r2_holdout"], 3),
                            _num(f["mape_extrapolation_pct"]),
                        )
                    )
            print()
            print(
                markdown(
                    ("system", "term", "fit", "n", "held-out MAPE %", "held-out R²", "extrapolation MAPE %"),
                    rows,
                )
            )
        elif args.command == "h100-elementwise":
            from kvsim.calibrate.vidur_h100 import ELEMENTWISE_TERMS, merge_into

            path = merge_into(args.profile, args.seed, args.data)
            print(f"wrote {', '.join(ELEMENTWISE_TERMS)} into {path}")
            rows = [row for row in fit_table(load_profile(path)) if row[0] in ELEMENTWISE_TERMS]
            print(
                markdown(
                    ("term", "form", "n", "held-out MAPE %", "held-out R²", "extrapolation MAPE %", "source"),
                    rows,
                )
            )
        else:
            measurements = {}
            for item in args.measurements:
                preset, sep, path = item.partition("=")
                if not sep:
                    raise KvsimError(f"--measurements {item!r}: expected PRESET=CSV, e.g. llama-2-7b=m.csv")
                measurements[preset] = Path(path)
            tables = crosscheck(load_profile(args.profile), measurements, args.data)
            print(
                "kvsim's own H100 kernels (torch GEMMs, calibrate/profiles/validation) ÷ Vidur's H100, same "
                "shape, TP and token count:"
            )
            print(
                markdown(
                    ("model", "Vidur operator", "n", "median kvsim ÷ Vidur", "p10-p90"), tables["kernels"]
                )
            )
            print()
            print(
                f"{args.profile.name} predictions ÷ Vidur's H100 times, every Vidur token count (1-4096), TP 1-8:"
            )
            print(
                markdown(
                    (
                        "model",
                        "Vidur operator",
                        "kvsim term",
                        "n",
                        "MAPE %",
                        "median predicted ÷ Vidur",
                        "p10-p90",
                    ),
                    tables["profile"],
                )
            )
    except KvsimError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
