"""Can vAttention's page mapping hide behind the GPU's work? The check behind ``vattention:mapping=overlapped``.

vAttention (Prabhu et al., ASPLOS'25, §6.2 "overlapping memory allocation with compute") maps the pages the
next step needs on a background thread while the current step runs. That only hides the mapping if the CUDA
virtual-memory calls neither wait for the GPU's queued work (an implicit synchronization would make a call
last as long as the rest of the queue) nor slow that work down (TLB invalidations, driver locks).

This measures both on a GPU. Per workload (a bandwidth-bound copy, which reads and writes HBM through the TLB,
and a compute-bound GEMM), each repeat:
- ``alone``: a queue of the workload's kernels, about ``gpu_ms`` of GPU time, timed with CUDA events;
- ``idle``: ``pages`` pages mapped then unmapped with the GPU idle (cuMemCreate + cuMemMap + cuMemSetAccess,
  cuMemUnmap + cuMemRelease: ``vmm.py``'s calls), each call timed on the host;
- ``busy``: the same queue launched, then the same mapping and unmapping while it runs; after each call the
  end event is queried, so the result says whether the calls really ran while the GPU was busy.
The launches are asynchronous, so the host maps while the GPU works, as vAttention's background thread does.

A second check (``launch_contention``) puts the mapping on a thread of its own, as vAttention does, while the
main thread launches small kernels as fast as it can (a launch-bound loop, an engine without CUDA graphs): if
the driver serializes the VMM calls with kernel launches, the launches slow down while the thread maps.

    python -m kvsim.calibrate.vmm_overlap --out benchmarks/results/vmm_overlap-h200.json

``summarize`` (pure; tested on CPU) turns the samples into the figures and the verdict.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kvsim.calibrate.run import nvidia_driver_version
from kvsim.calibrate.vmm import cuda_check, open_driver, time_pages

PAGE_SIZE_BYTES = 2 << 20  # the stock driver's granularity on data-center GPUs
PAGES = 64  # one page group of a 32-layer model: a K and a V page per layer
REPEATS = 8
GPU_MS = 40.0  # each queue's GPU time: well over the mapping's few milliseconds
# The verdict. A call that waited for the queue would last about as long as the rest of the queue (tens of
# milliseconds against tens of microseconds): one that takes this fraction of the queue's time counts as a wait.
WAIT_FRACTION = 0.25
# The queue with mapping beside it, against alone (or the spread of its repeats alone).
MAX_GPU_SLOWDOWN = 1.02
# Of the calls, those that must have returned while the queue still ran (else no overlap was seen).
MIN_BUSY_FRACTION = 0.95


def summarize(samples: dict[str, list[float] | list[bool]]) -> dict[str, Any]:
    """One workload's figures from its samples: ``gpu_alone_s`` and ``gpu_busy_s`` (queue GPU times, one per
    repeat), ``map_idle_s``, ``unmap_idle_s``, ``map_busy_s``, ``unmap_busy_s`` (per call) and ``busy_after``
    (the GPU still worked when the call returned). Medians and 90th percentiles in microseconds (queues in
    milliseconds, with each repeat's). ``map_ratio`` and ``unmap_ratio``: how much longer a call takes beside
    the work (median against median). ``hides_mapping`` is true when enough calls returned mid-queue, none
    waited for the queue (took ``WAIT_FRACTION`` of its time), and the queue's median with mapping stayed
    within ``MAX_GPU_SLOWDOWN`` of its median alone, or within the spread of its repeats alone
    (``gpu_alone_spread``, (max - min) / median: a GEMM's clocks move its time by a few percent)."""
    for key in ("gpu_alone_s", "gpu_busy_s", "map_idle_s", "unmap_idle_s", "map_busy_s", "unmap_busy_s"):
        if not samples.get(key):
            raise ValueError(f"vmm_overlap: no {key} samples")
    out: dict[str, Any] = {}
    for key in ("map_idle_s", "map_busy_s", "unmap_idle_s", "unmap_busy_s"):
        p50, p90 = np.percentile(samples[key], [50, 90])
        out[key.replace("_s", "_us")] = {
            "p50": round(p50 * 1e6, 2),
            "p90": round(p90 * 1e6, 2),
            "max": round(max(samples[key]) * 1e6, 2),
        }
    alone_s, busy_s = samples["gpu_alone_s"], samples["gpu_busy_s"]
    gpu_alone, gpu_busy = float(np.median(alone_s)), float(np.median(busy_s))
    out["gpu_alone_ms"] = round(gpu_alone * 1e3, 3)
    out["gpu_busy_ms"] = round(gpu_busy * 1e3, 3)
    out["gpu_alone_ms_runs"] = [round(s * 1e3, 3) for s in alone_s]
    out["gpu_busy_ms_runs"] = [round(s * 1e3, 3) for s in busy_s]
    out["gpu_slowdown"] = round(gpu_busy / gpu_alone, 4)
    # how far the queue's own repeats spread, alone: a slowdown within it is not told apart from noise
    out["gpu_alone_spread"] = round((max(alone_s) - min(alone_s)) / gpu_alone, 4)
    busy_after = samples["busy_after"]
    out["busy_fraction"] = round(sum(busy_after) / len(busy_after), 4) if busy_after else 0.0
    out["map_ratio"] = round(float(np.median(samples["map_busy_s"]) / np.median(samples["map_idle_s"])), 3)
    out["unmap_ratio"] = round(
        float(np.median(samples["unmap_busy_s"]) / np.median(samples["unmap_idle_s"])), 3
    )
    longest_s = max(max(samples["map_busy_s"]), max(samples["unmap_busy_s"]))
    out["longest_busy_call_of_queue"] = round(longest_s / gpu_busy, 5)
    out["hides_mapping"] = bool(
        out["busy_fraction"] >= MIN_BUSY_FRACTION
        and out["longest_busy_call_of_queue"] < WAIT_FRACTION
        and out["gpu_slowdown"] <= max(MAX_GPU_SLOWDOWN, 1.0 + out["gpu_alone_spread"])
    )
    return out


def measure(
    device_index: int = 0,
    page_size: int = PAGE_SIZE_BYTES,
    pages: int = PAGES,
    repeats: int = REPEATS,
    gpu_ms: float = GPU_MS,
) -> dict[str, Any]:
    """The samples and figures of every workload, with the device and versions (see the module's doc)."""
    import torch

    driver, prop, access, granularity = open_driver(device_index)
    if page_size % granularity:
        raise ValueError(
            f"page size {page_size} B is not a multiple of the driver's allocation granularity ({granularity} B)"
        )
    device = torch.device("cuda", device_index)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "nvidia_driver": nvidia_driver_version(),
        "cuda_driver_api": _driver_api_version(driver),
        "date": datetime.date.today().isoformat(),
        "page_size_bytes": page_size,
        "pages": pages,
        "repeats": repeats,
        "workloads": {},
    }
    for name, op in _workloads(torch, device).items():
        count = _ops_for(torch, op, gpu_ms)
        samples: dict[str, list] = {
            k: []
            for k in (
                "gpu_alone_s",
                "gpu_busy_s",
                "map_idle_s",
                "unmap_idle_s",
                "map_busy_s",
                "unmap_busy_s",
                "busy_after",
            )
        }
        for _ in range(repeats):
            samples["gpu_alone_s"].append(_queue(torch, op, count)[0])
            torch.cuda.synchronize(device)
            map_s, unmap_s, _ = time_pages(driver, prop, access, page_size, pages)
            samples["map_idle_s"] += map_s
            samples["unmap_idle_s"] += unmap_s
            gpu_s, (map_s, unmap_s, busy_after) = _queue(
                torch,
                op,
                count,
                lambda end: time_pages(driver, prop, access, page_size, pages, end_busy(end)),
            )
            samples["gpu_busy_s"].append(gpu_s)
            samples["map_busy_s"] += map_s
            samples["unmap_busy_s"] += unmap_s
            samples["busy_after"] += busy_after
        result["workloads"][name] = {"kernels_per_queue": count, **summarize(samples)}
    result["hides_mapping"] = all(w["hides_mapping"] for w in result["workloads"].values())
    result["launch_contention"] = launch_contention(
        torch, device, driver, prop, access, page_size, pages, repeats
    )
    return result


LAUNCHES = 4000  # of a 1 MiB copy: a loop bound by the host's launches (a few ms of GPU work)


def summarize_contention(samples: dict[str, list[float]]) -> dict[str, Any]:
    """``launch_alone_s``, ``launch_busy_s`` and ``launch_control_s`` (one launch loop per repeat: alone, with a
    thread mapping beside it, with a thread that only sleeps and wakes), ``map_thread_s`` and ``map_idle_s``
    (per call): microseconds per launch, and the ratios."""
    for key in ("launch_alone_s", "launch_busy_s", "launch_control_s", "map_thread_s", "map_idle_s"):
        if not samples.get(key):
            raise ValueError(f"vmm_overlap: no {key} samples")
    alone, busy = float(np.median(samples["launch_alone_s"])), float(np.median(samples["launch_busy_s"]))
    map_thread, map_idle = float(np.median(samples["map_thread_s"])), float(np.median(samples["map_idle_s"]))
    return {
        "launches_per_loop": LAUNCHES,
        "launch_us_alone": round(alone / LAUNCHES * 1e6, 3),
        "launch_us_with_mapping_thread": round(busy / LAUNCHES * 1e6, 3),
        "launch_slowdown": round(busy / alone, 4),
        # the same loop beside a Python thread that only sleeps and wakes: what the interpreter's lock costs
        "launch_slowdown_control": round(float(np.median(samples["launch_control_s"])) / alone, 4),
        "launch_alone_ms_runs": [round(x * 1e3, 3) for x in samples["launch_alone_s"]],
        "launch_busy_ms_runs": [round(x * 1e3, 3) for x in samples["launch_busy_s"]],
        "map_us_thread": round(map_thread * 1e6, 2),
        "map_us_idle": round(map_idle * 1e6, 2),
        "map_thread_ratio": round(map_thread / map_idle, 3),
        "map_calls_beside_launches": len(samples["map_thread_s"]),
    }


def launch_contention(
    torch: Any, device: Any, driver: Any, prop: Any, access: Any, page_size: int, pages: int, repeats: int
) -> dict[str, Any]:
    """Launch-bound loops alone and with a thread mapping and unmapping pages until the loop ends (see the
    module's doc). The loop and the thread are Python: the figures include contention for the interpreter's
    lock, so they bound from above what a native mapping thread (vAttention's) costs the launches."""
    src = torch.empty(1 << 19, dtype=torch.float16, device=device)
    dst = torch.empty_like(src)

    def loop() -> float:
        start = time.perf_counter()
        for _ in range(LAUNCHES):
            dst.copy_(src)
        return time.perf_counter() - start

    loop()  # warm-up
    torch.cuda.synchronize(device)
    ctx = cuda_check(driver, driver.cuCtxGetCurrent(), "cuCtxGetCurrent")
    samples: dict[str, list] = {
        "launch_alone_s": [],
        "launch_busy_s": [],
        "launch_control_s": [],
        "map_thread_s": [],
        "map_idle_s": [],
    }

    def mapper(stop: threading.Event, errors: list) -> None:
        try:
            cuda_check(driver, driver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")  # the calls need it current
            while not stop.is_set():
                # only the maps that returned while the loop still ran
                map_s, _, running = time_pages(
                    driver, prop, access, page_size, pages, lambda: not stop.is_set()
                )
                samples["map_thread_s"].extend(m for m, r in zip(map_s, running[:pages]) if r)
        except Exception as exc:  # reported on the main thread
            errors.append(exc)

    def sleeper(stop: threading.Event, errors: list) -> None:
        """The control: a Python thread that wakes as often as the mapper's calls return, and maps nothing."""
        while not stop.is_set():
            time.sleep(35e-6)

    for _ in range(repeats):
        samples["launch_alone_s"].append(loop())
        torch.cuda.synchronize(device)
        samples["map_idle_s"] += time_pages(driver, prop, access, page_size, pages)[0]
        for key, target in (("launch_busy_s", mapper), ("launch_control_s", sleeper)):
            stop, errors = threading.Event(), []
            thread = threading.Thread(target=target, args=(stop, errors))
            thread.start()
            time.sleep(0.002)  # the thread is at work before the loop starts
            samples[key].append(loop())
            stop.set()
            thread.join()
            torch.cuda.synchronize(device)
            if errors:
                raise RuntimeError(f"mapping thread failed: {errors[0]}")
    return summarize_contention(samples)


def end_busy(end_event: Any) -> Callable[[], bool]:
    """Is the GPU still short of ``end_event`` (the queue's last kernel not done)?"""
    return lambda: not end_event.query()


def _workloads(torch: Any, device: Any) -> dict[str, Callable[[], object]]:
    """One kernel each: a 1 GiB device-to-device copy (bandwidth-bound) and an 8192³ bf16 GEMM
    (compute-bound)."""
    src = torch.empty(1 << 29, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device=device)
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device=device)
    c = torch.empty(8192, 8192, dtype=torch.bfloat16, device=device)
    return {"copy": lambda: dst.copy_(src), "gemm": lambda: torch.matmul(a, b, out=c)}


def _ops_for(torch: Any, op: Callable[[], object], gpu_ms: float) -> int:
    """How many of ``op`` make about ``gpu_ms`` of GPU time (after a warm-up)."""
    _queue(torch, op, 3)
    per_op_s = _queue(torch, op, 10)[0] / 10
    return max(1, math.ceil(gpu_ms / 1e3 / per_op_s))


def _queue(torch: Any, op: Callable[[], object], count: int, during: Callable[[Any], Any] | None = None):
    """Launch ``count`` ops between two CUDA events, run ``during(end_event)`` on the host while they run,
    then wait: (the queue's GPU seconds, what ``during`` returned)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(count):
        op()
    end.record()
    out = during(end) if during is not None else None
    end.synchronize()
    return start.elapsed_time(end) / 1e3, out


def _driver_api_version(driver: Any) -> int | None:
    """cuDriverGetVersion: the CUDA version the driver supports, as 1000 × major + 10 × minor."""
    try:
        err, version = driver.cuDriverGetVersion()
    except Exception:
        return None
    return int(version) if err == driver.CUresult.CUDA_SUCCESS else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kvsim.calibrate.vmm_overlap",
        description="Measure whether CUDA VMM page mapping runs alongside GPU work without stalling it "
        "(vAttention's overlapped mapping). Needs a CUDA GPU and cuda-python.",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the samples' figures")
    parser.add_argument("--pages", type=int, default=PAGES, help=f"pages mapped per repeat (default {PAGES})")
    parser.add_argument("--repeats", type=int, default=REPEATS, help=f"default {REPEATS}")
    parser.add_argument("--gpu-ms", type=float, default=GPU_MS, help=f"GPU time per queue (default {GPU_MS})")
    args = parser.parse_args(argv)
    for flag, value in (("--pages", args.pages), ("--repeats", args.repeats), ("--gpu-ms", args.gpu_ms)):
        if not value > 0:
            print(f"Error: {flag} must be positive, got {value}", file=sys.stderr)
            return 2
    try:
        import torch
    except ImportError:
        print("Error: vmm_overlap needs torch with CUDA", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("Error: vmm_overlap needs a CUDA GPU; torch sees none", file=sys.stderr)
        return 2
    try:
        result = measure(pages=args.pages, repeats=args.repeats, gpu_ms=args.gpu_ms)
    except ImportError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, ValueError) as exc:  # a driver call that failed (out of memory, say)
        print(f"Error: vmm_overlap: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, w in result["workloads"].items():
        print(
            f"{name}: map {w['map_idle_us']['p50']} µs idle, {w['map_busy_us']['p50']} µs with the GPU busy; "
            f"unmap {w['unmap_idle_us']['p50']} / {w['unmap_busy_us']['p50']} µs; queue "
            f"{w['gpu_alone_ms']} ms alone, {w['gpu_busy_ms']} ms with mapping (x{w['gpu_slowdown']}); "
            f"{w['busy_fraction']:.0%} of calls returned mid-queue; hides mapping: {w['hides_mapping']}"
        )
    c = result["launch_contention"]
    print(
        f"launches: {c['launch_us_alone']} µs each alone, {c['launch_us_with_mapping_thread']} µs with a thread "
        f"mapping beside them (x{c['launch_slowdown']}; beside a thread that only sleeps and wakes: "
        f"x{c['launch_slowdown_control']}); that thread's maps {c['map_us_thread']} µs "
        f"(idle {c['map_us_idle']} µs)"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
