"""One calibration run: measure on a device, write the raw CSV, fit, write the profile (DESIGN §5, §8).

The Python API behind ``kvsim calibrate`` and ``python -m kvsim.calibrate``. Needs torch (and the Triton
kernels on a GPU) but never simpy, plotly, tqdm or hypothesis: the GPU machine has none of them.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvsim.calibrate.fit import fit_profile
from kvsim.calibrate.measurements import Measurements, load_measurements
from kvsim.calibrate.step_sweeps import StepOpsGrid, StepOpsSweeper
from kvsim.calibrate.sweeps import Sweeper, SweepGrid
from kvsim.calibrate.timing import TIMING_METHOD, Timer
from kvsim.calibrate.vmm import measure_vmm
from kvsim.errors import KvsimError
from kvsim.simulator.cost.profile import Profile
from kvsim.simulator.cost.work import layer_gemm_shapes, lm_head_shape
from kvsim.simulator.specs import GPUS, GpuSpec, ModelSpec

# Share of the budget per sweep; the VMM measurement is quick and runs first, the fit after the budget.
BUDGET_SHARES = {
    "gemm": 0.3,
    "decode": 0.35,
    "prefill": 0.2,
    "elementwise": 0.06,
    "kv_write": 0.05,
    "sampling": 0.04,
}
FALLBACK_GPU = "a100-80gb"  # roofline for unmeasured terms when the device matches no preset (CPU smoke)
SMOKE_MODEL = ModelSpec(
    "smoke-tiny",
    num_layers=2,
    hidden_size=64,
    num_heads=4,
    num_kv_heads=2,
    head_dim=16,
    intermediate_size=128,
    vocab_size=256,
    max_model_len=512,
)


@dataclass(frozen=True)
class CalibrationResult:
    profile_path: Path
    measurements_path: Path
    profile: Profile
    skipped: tuple[str, ...]
    layers_path: Path | None = None  # step_validation-<gpu>.csv: whole layers against the profile
    layers_table: str | None = None


def gpu_grid(model: ModelSpec, tps: tuple[int, ...]) -> SweepGrid:
    """The grid for a real GPU: the model's attention and GEMM shapes per TP shard, serving-sized batches."""
    heads, kv_heads = model.num_heads // tps[0], max(1, model.num_kv_heads // tps[0])
    other_kv = heads if kv_heads != heads else max(1, heads // 4)  # an MHA (or GQA) twin to span the ratio
    gemms = tuple(s for tp in tps for s in (*layer_gemm_shapes(model, tp), lm_head_shape(model, tp)))
    return SweepGrid(
        dtype="float16" if model.dtype_bytes == 2 else "float32",
        attn_shapes=((heads, kv_heads, model.head_dim), (heads, other_kv, model.head_dim)),
        decode_batches=tuple(2**i for i in range(9)),  # 1 .. 256
        decode_contexts=tuple(2**i for i in range(7, 16)),  # 128 .. 32768
        block_sizes=(16, 32),
        prefill_q_lens=(16, 64, 128, 256, 512, 1024, 2048, 4096),
        prefill_prefixes=(0, 512, 4096),
        prefill_num_seqs=(1, 4, 16),
        gemm_shapes=gemms,
        gemm_tokens=tuple(2**i for i in range(15)),
        pool_tokens=2**20,
    )


def gpu_step_ops_grid() -> StepOpsGrid:
    """Serving-sized steps: 1 to 16,384 tokens (decode-pattern KV writes to 512 sequences), sampling for 1 to
    512 sequences."""
    return StepOpsGrid(
        tokens=tuple(2**i for i in range(15)),
        max_decode_seqs=512,
        sampling_seqs=tuple(2**i for i in range(10)),
    )


def smoke_step_ops_grid() -> StepOpsGrid:
    """Enough points per term (fit.MIN_POINTS) for the CPU smoke run to fit every term."""
    return StepOpsGrid(tokens=(1, 2, 4, 8, 16, 32, 64), max_decode_seqs=16, sampling_seqs=(1, 2, 3, 4, 6, 8))


def smoke_grid() -> SweepGrid:
    """Tiny shapes for a CPU run that exercises every code path in seconds; its numbers mean nothing."""
    gemms = (*layer_gemm_shapes(SMOKE_MODEL), lm_head_shape(SMOKE_MODEL))
    return SweepGrid(
        dtype="float32",
        attn_shapes=((4, 2, 16),),
        decode_batches=(1, 2, 4),
        decode_contexts=(8, 32, 64),
        block_sizes=(8, 16),
        prefill_q_lens=(4, 16, 32),
        prefill_prefixes=(0, 16),
        prefill_num_seqs=(1, 2),
        gemm_shapes=gemms,
        gemm_tokens=(1, 4, 16, 64),
        pool_tokens=1024,
    )


def calibrate(
    device: str = "cuda",
    model: ModelSpec | str = "llama-3-8b",
    out: str | Path = ".",
    budget_s: float = 240.0,
    tps: tuple[int, ...] = (1,),
    impl: str | None = None,
    show_progress: bool = True,
    seed: int = 0,
    layers: bool = True,
) -> CalibrationResult:
    """Profile ``model``'s shapes on ``device`` within about ``budget_s`` seconds of sweeping, then fit.
    ``layers``: then time whole decoder layers of the model against their kernels (calibrate/validate_step.py):
    they join the measurements, the profile is refitted with the launch overlap they show, and the layers are
    compared with its predictions."""
    import torch

    if budget_s <= 0:
        raise KvsimError(f"--budget-s must be positive, got {budget_s}")
    smoke = device == "cpu"
    if smoke:
        torch.set_num_threads(1)  # tiny shapes: threads only add contention on a shared CPU
    else:
        if not device.startswith("cuda"):
            raise KvsimError(f"--device must be 'cuda' (a GPU) or 'cpu' (a smoke run), got {device!r}")
        if not torch.cuda.is_available():
            raise KvsimError(
                "no CUDA GPU is visible (torch.cuda.is_available() is False). To refit measurements "
                "taken elsewhere: kvsim calibrate --fit-only measurements-<gpu>.csv; to exercise the "
                "pipeline here: --device cpu (a smoke run whose profile is marked not representative)"
            )
    model = ModelSpec.from_name(model) if isinstance(model, str) else model
    for tp in tps:
        model.check_tp(tp)
    impl = impl or ("triton" if not smoke or os.environ.get("TRITON_INTERPRET") == "1" else "reference")
    info = device_info(device)
    meta: dict[str, Any] = {
        "device": info["device"],
        "device_key": info["key"],
        "source": "cpu-smoke" if smoke else "measured",
        "representative": not smoke,
        "model": SMOKE_MODEL.name if smoke else model.name,
        "tp": tps[0],
        "tps": list(tps),
        "impl": impl,
        "budget_s": budget_s,
        "seed": seed,
        "timing": "wall clock (CPU smoke run)" if smoke else TIMING_METHOD,
    }
    measurements = Measurements(meta)
    timer = Timer(
        device,
        target_s=0.0 if smoke else 0.02,
        min_reps=3 if smoke else 5,
        max_reps=3 if smoke else 100,
        warmup=1 if smoke else 3,
    )
    grid = smoke_grid() if smoke else gpu_grid(model, tps)
    sweeper = Sweeper(grid, device, impl, timer, measurements, show_progress, seed)
    step_ops = StepOpsSweeper(
        sweeper,
        SMOKE_MODEL if smoke else model,
        tps[0],
        smoke_step_ops_grid() if smoke else gpu_step_ops_grid(),
    )
    skipped = ["VMM map cost not measured: CPU smoke run"] if smoke else measure_vmm(measurements)
    counts: dict[str, str] = {}
    meta["points_measured"], meta["skipped"] = counts, skipped
    out = Path(out)
    measurements_path = out / f"measurements-{info['key']}.csv"
    end = time.perf_counter() + budget_s
    sweeps = [
        ("gemm", sweeper.gemm_points(), sweeper.measure_gemm),
        ("decode", sweeper.decode_points(), sweeper.measure_decode),
        ("prefill", sweeper.prefill_points(), sweeper.measure_prefill),
        ("elementwise", step_ops.elementwise_points(), step_ops.measure_elementwise),
        ("kv_write", step_ops.kv_write_points(), step_ops.measure_kv_write),
        ("sampling", step_ops.sampling_points(), step_ops.measure_sampling),
    ]
    with _stop_on_sigterm(sweeper):
        for i, (name, points, measure) in enumerate(sweeps):
            # this sweep's share of what is left, so time one sweep does not use passes to the next
            share = BUDGET_SHARES[name] / sum(BUDGET_SHARES[later] for later, _, _ in sweeps[i:])
            deadline = time.perf_counter() + share * max(0.0, end - time.perf_counter())
            before = len(measurements.rows)
            try:
                counts[name] = f"{sweeper.run(name, points, measure, deadline)}/{len(points)}"
            except Exception as exc:
                if smoke:
                    raise
                # A kernel the GPU's compiler rejects, or a CUDA error: keep what the other sweeps measure; the
                # fit then takes this sweep's terms from the roofline and the profile says why.
                done = len(measurements.rows) - before
                counts[name] = f"{done}/{len(points)} (failed)"
                skipped.append(f"{name} sweep failed after {done} rows: {type(exc).__name__}: {exc}")
                print(f"calibrate: {skipped[-1]}", file=sys.stderr)
            finally:
                measurements.save(measurements_path)  # after every sweep: a failure keeps what was measured
            if device.startswith("cuda"):
                with contextlib.suppress(RuntimeError):  # after a CUDA error the context may refuse even this
                    torch.cuda.empty_cache()
    if sweeper.stop_requested:
        skipped.append("sweeps cut short by SIGTERM (an outer timeout?): the grid is coarser than planned")
        measurements.save(measurements_path)
    profile = fit_profile(meta, measurements.rows, _fallback_gpu(info["key"]), seed)
    profile_path = profile.save(out / f"profile-{info['key']}.json")
    layers_path = layers_table = None
    if layers and not sweeper.stop_requested:
        layer_model = SMOKE_MODEL if smoke else model
        layer_rows = _measure_layers(layer_model, device, seed, skipped)
        if layer_rows:
            from kvsim.calibrate import validate_step

            measurements.rows += validate_step.measurement_rows(layer_rows)
            meta["launch_overlap_rows"] = f"{len(layer_rows)} whole layers measured by kvsim calibrate"
            measurements.save(measurements_path)
            profile = fit_profile(meta, measurements.rows, _fallback_gpu(info["key"]), seed)
            profile_path = profile.save(profile_path)
            rows = validate_step.predict(layer_rows, profile, layer_model)
            layers_path = validate_step.write_rows(rows, out / f"step_validation-{info['key']}.csv")
            layers_table = validate_step.table(rows)
    return CalibrationResult(
        profile_path, measurements_path, profile, tuple(skipped), layers_path, layers_table
    )


def _measure_layers(model: ModelSpec, device: str, seed: int, skipped: list[str]) -> list[dict]:
    """Whole-layer rows (validate_step.measure); on a GPU a failure is recorded in ``skipped``, not raised, so
    the profile already written stands."""
    from kvsim.calibrate import validate_step

    try:
        return validate_step.measure(model, device, seed=seed)
    except Exception as exc:  # a kernel the GPU rejects at these shapes, a CUDA error
        if device == "cpu":
            raise
        skipped.append(f"whole-layer validation failed: {type(exc).__name__}: {exc}")
        print(f"calibrate: {skipped[-1]}", file=sys.stderr)
        return []


@contextlib.contextmanager
def _stop_on_sigterm(sweeper: Sweeper):
    """SIGTERM (e.g. from `timeout` in the GPU script) stops the sweeps at the next point; the run then fits and
    writes what it has instead of dying with nothing. Only the main thread can take signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame) -> None:
        sweeper.stop_requested = True

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fit_only(measurements_csv: str | Path, out: str | Path | None = None, seed: int = 0) -> CalibrationResult:
    """Refit a profile from a raw measurements CSV, without a GPU."""
    measurements = load_measurements(measurements_csv)
    meta = measurements.meta
    key = meta.get("device_key") or _slug(str(meta["device"].get("name", "device")))
    profile = fit_profile(meta, measurements.rows, _fallback_gpu(key), seed)
    out = Path(out) if out is not None else Path(measurements_csv).parent
    profile_path = profile.save(out / f"profile-{key}.json")
    return CalibrationResult(profile_path, Path(measurements_csv), profile, tuple(meta.get("skipped", ())))


def summary(result: CalibrationResult) -> str:
    """A table of each term's fit quality (held-out MAPE and R²), for the console and the GPU script's log."""
    profile = result.profile
    lines = [
        f"profile: {result.profile_path} ({profile.source}, {profile.device.name}, "
        f"representative={profile.representative})",
        f"measurements: {result.measurements_path}",
        f"{'term':26} {'n':>4} {'MAPE holdout %':>15} {'MAPE extrap %':>14} {'R2 holdout':>11}  source",
    ]
    for name, term in profile.terms.items():
        fit = term.fit
        cells = (
            ("", "", "", "")
            if fit is None
            else (
                fit.n,
                _fmt(fit.mape_holdout_pct),
                _fmt(fit.mape_extrapolation_pct),
                _fmt(fit.r2_holdout, 4),
            )
        )
        lines.append(
            f"{name:26} {cells[0]!s:>4} {cells[1]:>15} {cells[2]:>14} {cells[3]:>11}  "
            f"{term.source or profile.source}"
        )
    # The paged kernel's overhead at the kernels issue's reference shape: Llama-3-8B, batch 64 × 4,096 tokens.
    seqs, tokens, kv_bytes_per_token = 64, 64 * 4096, 2 * 8 * 128 * 2
    paged = profile.terms["attn_decode_paged"].predict(
        kv_bytes=tokens * kv_bytes_per_token, num_seqs=seqs, num_blocks=tokens // 16
    )
    contiguous = profile.terms["attn_decode_contiguous"].predict(
        kv_bytes=tokens * kv_bytes_per_token, num_seqs=seqs
    )
    lines.append(
        f"paged / contiguous decode latency at 64 x 4096 tokens (Llama-3-8B shapes, block 16): "
        f"{paged / contiguous:.3f}"
    )
    lines += [f"skipped: {reason}" for reason in result.skipped]
    if result.layers_table is not None:
        lines += [f"whole layers against the profile ({result.layers_path}):", result.layers_table]
    return "\n".join(lines)


def device_info(device: str) -> dict[str, Any]:
    """The profile's ``device`` fields and the file-name key (a GPU preset name when the device is one)."""
    import torch

    versions = {
        "torch": torch.__version__,
        "triton": _version("triton"),
        "date": datetime.date.today().isoformat(),
    }
    if device == "cpu":
        device_fields = {
            "name": "cpu",
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "num_sms": os.cpu_count() or 1,
            "cuda": None,
            "driver": None,
            **versions,
        }
        return {"device": device_fields, "key": "cpu"}
    props = torch.cuda.get_device_properties(torch.device(device))
    key = gpu_key(props.name, props.total_memory)
    device_fields = {
        "name": GPUS[key].name if key in GPUS else props.name,
        "memory_bytes": int(props.total_memory),
        "num_sms": int(props.multi_processor_count),
        "cuda": torch.version.cuda,
        "driver": nvidia_driver_version(),
        **versions,
    }
    return {"device": device_fields, "key": key}


def gpu_key(raw_name: str, memory_bytes: int) -> str:
    """A preset key for a CUDA device name ('NVIDIA H100 80GB HBM3' -> 'h100-sxm'), else a slug of the name."""
    name = raw_name.upper()
    if "H200" in name:
        return "h200"
    if "H100" in name and ("SXM" in name or "HBM3" in name):
        return "h100-sxm"
    if "A100" in name:
        return "a100-80gb" if memory_bytes > 60 * 2**30 else "a100-40gb"
    if re.search(r"\bL4\b", name):
        return "l4"
    return _slug(raw_name)


def _fallback_gpu(key: str) -> GpuSpec:
    return GPUS.get(key, GPUS[FALLBACK_GPU])


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def nvidia_driver_version() -> str | None:
    """The NVIDIA driver's version as nvidia-smi prints it (e.g. 580.159.04); None without nvidia-smi."""
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else None
