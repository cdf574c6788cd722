"""Datasheet peaks of the GPUs the benchmark knows, matched by `torch.cuda.get_device_name()`.

Bandwidth is HBM (or GDDR) peak in GB/s (10^9 bytes/s); FLOP/s are dense FP16/BF16 tensor-core peaks (NVIDIA's
datasheets quote twice these "with sparsity"). Achieved fractions are against these numbers; a device not
listed needs `--peak-gbps` / `--peak-tflops`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DevicePeak:
    """Peaks of one GPU model; `match` is a substring of its CUDA device name."""

    match: str
    hbm_gbps: float
    fp16_tflops: float
    source: str


# Most specific names first: the first entry whose `match` is in the device name wins.
DEVICE_PEAKS = [
    DevicePeak(
        "H200",
        4800.0,
        989.0,
        "NVIDIA H200 Tensor Core GPU datasheet (2024): 4.8 TB/s, FP16 1,979 TFLOPS sparse",
    ),
    DevicePeak(
        "H100 NVL",
        3900.0,
        835.0,
        "NVIDIA H100 datasheet (2023), H100 NVL: 3.9 TB/s, FP16 1,671 TFLOPS sparse",
    ),
    DevicePeak(
        "H100 PCIe",
        2000.0,
        756.0,
        "NVIDIA H100 datasheet (2023), H100 PCIe: 2 TB/s, FP16 1,513 TFLOPS sparse",
    ),
    DevicePeak(
        "H100", 3350.0, 989.0, "NVIDIA H100 datasheet (2023), H100 SXM: 3.35 TB/s, FP16 1,979 TFLOPS sparse"
    ),
    DevicePeak(
        "A100 80GB PCIe",
        1935.0,
        312.0,
        "NVIDIA A100 datasheet (2021), 80GB PCIe: 1,935 GB/s, FP16 312 TFLOPS",
    ),
    DevicePeak(
        "A100-SXM4-80GB", 2039.0, 312.0, "NVIDIA A100 datasheet (2021), 80GB SXM: 2,039 GB/s, FP16 312 TFLOPS"
    ),
    DevicePeak("A100", 1555.0, 312.0, "NVIDIA A100 datasheet (2021), 40GB: 1,555 GB/s, FP16 312 TFLOPS"),
    DevicePeak("L40S", 864.0, 362.0, "NVIDIA L40S datasheet (2023): 864 GB/s, FP16 733 TFLOPS sparse"),
    DevicePeak("L4", 300.0, 121.0, "NVIDIA L4 datasheet (2023): 300 GB/s, FP16 242 TFLOPS sparse"),
]


def peak_for(device_name: str) -> DevicePeak | None:
    """The first table entry matching the device name, or None for an unlisted device (or the CPU)."""
    for peak in DEVICE_PEAKS:
        if peak.match in device_name:
            return peak
    return None
