"""The CUDA virtual-memory cost vAttention pays per page: map (cuMemCreate + cuMemMap + cuMemSetAccess) and
unmap (cuMemUnmap + cuMemRelease), timed on the host per page, through cuda-python's ``cuda.bindings.driver``.

Page sizes below the driver's allocation granularity (2 MiB on current data-center GPUs with the stock
driver; vAttention's 64-256 KiB pages need its patched driver) are skipped with that reason recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from kvsim.calibrate.measurements import Measurements
from kvsim.calibrate.timing import Timing

PAGE_SIZES_BYTES = (64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20)
PAGES_PER_SIZE = 32


def measure_vmm(
    measurements: Measurements,
    device_index: int = 0,
    page_sizes: tuple[int, ...] = PAGE_SIZES_BYTES,
    pages: int = PAGES_PER_SIZE,
) -> list[str]:
    """Adds ``vmm_map`` / ``vmm_unmap`` rows (seconds per page); returns the reasons for what was skipped."""
    try:
        driver, prop, access, granularity = open_driver(device_index)
    except Exception as exc:
        return [f"VMM map cost not measured: {type(exc).__name__}: {exc}"]
    skipped = []
    for size in page_sizes:
        if size % granularity:
            skipped.append(
                f"page size {size} B skipped: below the driver's allocation granularity ({granularity} B)"
            )
            continue
        try:
            map_s, unmap_s, _ = time_pages(driver, prop, access, size, pages)
        except Exception as exc:
            skipped.append(f"page size {size} B failed: {type(exc).__name__}: {exc}")
            continue
        for term, samples in (("vmm_map", map_s), ("vmm_unmap", unmap_s)):
            p10, median, p90 = np.percentile(samples, [10, 50, 90])
            measurements.add(
                term,
                {"page_size_bytes": size},
                Timing(float(median), float(p10), float(p90), len(samples)),
                impl="cuda-driver",
            )
    return skipped


def open_driver(device_index: int = 0) -> tuple[Any, Any, Any, int]:
    """cuda-python's driver module, a pinned-device allocation property, a read-write access descriptor, and
    the allocation granularity in bytes, on torch's primary context. ImportError without cuda-python."""
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            from cuda import cuda as driver  # cuda-python < 12.6
        except ImportError:
            raise ImportError("cuda-python (cuda.bindings.driver) is not installed") from None
    import torch

    torch.zeros(1, device=f"cuda:{device_index}")  # makes torch's primary context current on this thread
    cuda_check(driver, driver.cuInit(0), "cuInit")
    prop = driver.CUmemAllocationProp()
    prop.type = driver.CUmemAllocationType.CU_MEM_ALLOCATION_TYPE_PINNED
    prop.location.type = driver.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
    prop.location.id = device_index
    access = driver.CUmemAccessDesc()
    access.location.type = driver.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
    access.location.id = device_index
    access.flags = driver.CUmemAccess_flags.CU_MEM_ACCESS_FLAGS_PROT_READWRITE
    granularity = cuda_check(
        driver,
        driver.cuMemGetAllocationGranularity(
            prop, driver.CUmemAllocationGranularity_flags.CU_MEM_ALLOC_GRANULARITY_MINIMUM
        ),
        "granularity",
    )
    return driver, prop, access, int(granularity)


def time_pages(
    driver: Any, prop: Any, access: Any, size: int, pages: int, busy: Callable[[], bool] | None = None
) -> tuple[list[float], list[float], list[bool]]:
    """Reserve ``pages`` pages of virtual space, then map each (timed), then unmap each (timed). With ``busy``
    (is the GPU still working?), asked after each call: its answers, maps then unmaps (else an empty list)."""
    base = cuda_check(driver, driver.cuMemAddressReserve(size * pages, size, 0, 0), "cuMemAddressReserve")
    handles, map_s, unmap_s, busy_after = [], [], [], []
    try:
        for i in range(pages):
            ptr = driver.CUdeviceptr(int(base) + i * size)
            start = time.perf_counter()
            handle = cuda_check(driver, driver.cuMemCreate(size, prop, 0), "cuMemCreate")
            cuda_check(driver, driver.cuMemMap(ptr, size, 0, handle, 0), "cuMemMap")
            cuda_check(driver, driver.cuMemSetAccess(ptr, size, [access], 1), "cuMemSetAccess")
            map_s.append(time.perf_counter() - start)
            handles.append((ptr, handle))
            if busy is not None:
                busy_after.append(busy())
        while handles:
            ptr, handle = handles.pop()
            start = time.perf_counter()
            cuda_check(driver, driver.cuMemUnmap(ptr, size), "cuMemUnmap")
            cuda_check(driver, driver.cuMemRelease(handle), "cuMemRelease")
            unmap_s.append(time.perf_counter() - start)
            if busy is not None:
                busy_after.append(busy())
    finally:
        for ptr, handle in handles:  # only after a failure
            driver.cuMemUnmap(ptr, size)
            driver.cuMemRelease(handle)
        driver.cuMemAddressFree(base, size * pages)
    return map_s, unmap_s, busy_after


def cuda_check(driver: Any, result: Any, what: str) -> Any:
    """cuda-python returns (CUresult, value...) tuples; raise on an error, return the value."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != driver.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"{what} failed with {err}")
    return values[0] if len(values) == 1 else values or None
