"""GPU prices, USD per GPU-hour, on-demand. Defaults are list prices with their source and the date they were
read; prices move, so ``--price GPU=USD`` replaces any of them (and is required for a GPU without one)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kvsim.errors import KvsimError

# GPU preset name -> (USD per GPU-hour, source)
DEFAULT_USD_PER_GPU_HOUR: dict[str, tuple[float, str]] = {
    "a100-40gb": (1.99, "Lambda on-demand, 8x A100 SXM 40 GB, lambda.ai/instances, read 2026-09-20"),
    "a100-80gb": (2.79, "Lambda on-demand, 8x A100 SXM 80 GB, lambda.ai/instances, read 2026-09-20"),
    "h100-sxm": (3.99, "Lambda on-demand, 8x H100 SXM, lambda.ai/instances, read 2026-09-20"),
    "h200": (3.99, "Hyperstack on-demand, H200 SXM, hyperstack.cloud/gpu-pricing, read 2026-08-26"),
    # l4: no default (neither source lists it); pass --price l4=USD
}


def parse_prices(options: Iterable[str]) -> dict[str, float]:
    """``--price h100-sxm=2.5`` options -> {gpu: usd_per_gpu_hour}."""
    prices = {}
    for option in options:
        gpu, sep, value = option.partition("=")
        try:
            usd = float(value)
        except ValueError:
            usd = -1.0
        if not sep or not gpu.strip() or not usd > 0:
            raise KvsimError(
                f"--price {option!r}: write GPU=USD_PER_GPU_HOUR with a positive price, e.g. h100-sxm=3.99"
            )
        prices[gpu.strip().lower()] = usd
    return prices


def price_per_gpu_hour(gpu: str, overrides: Mapping[str, float]) -> float:
    gpu = gpu.lower()
    if gpu in overrides:
        return overrides[gpu]
    if gpu in DEFAULT_USD_PER_GPU_HOUR:
        return DEFAULT_USD_PER_GPU_HOUR[gpu][0]
    raise KvsimError(f"no price for GPU {gpu!r}; pass --price {gpu}=USD_PER_GPU_HOUR")
