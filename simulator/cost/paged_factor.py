"""The paged decode factor: how much more the paged decode kernel costs per KV byte than a contiguous one.

It belongs to the kernel being modelled, not to the GPU (issue 23):

- ``kvsim`` (the default, every GPU): kvsim's own Triton kernels (``kernels/``), measured on the GPU by
  ``scripts/gpu_session.sh``: paged / contiguous latency at the headline shape (Llama-3-8B, batch 64 x 4096,
  block 16; ``benchmarks/results/kernel_bench_summary-*.txt``) 1.01 on the H100 (three loans: 1.009-1.011) and
  0.99 on the H200; the range is the spread over every decode shape that reads at least 1 GiB (where a per-byte
  factor is what matters: bandwidth-bound; ``benchmarks/results/kernel_bench-*.csv``). A GPU kvsim has not
  measured carries over the mean of the measured ones, with the union of their ranges, and says so.
- ``vllm-2023``: the vLLM paper's 2023 kernel (Kwon et al., SOSP'23, §7.1, Fig. 18a: 20-26% higher attention
  latency than FasterTransformer's contiguous kernel), 1.23, the middle of that range. The vLLM-paper
  reproductions (``kvsim reproduce vllm-*``) model that system and use it.
- a number: that factor, exactly as given (no range).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvsim.errors import KvsimError

# GPU preset -> (nominal at the headline shape, low, high over the shapes reading >= 1 GiB)
KVSIM_KERNEL_MEASURED = {
    "h100-sxm": (1.01, 0.962, 1.068),  # kernel_bench_summary-h100-sxm{,-loan3,-loan4}.txt: 1.011, 1.009, 1.01
    "h200": (0.99, 0.901, 1.146),  # kernel_bench_summary-h200.txt: 0.992
}
VLLM_2023 = (1.23, 1.20, 1.26)
KERNELS = ("kvsim", "vllm-2023")


@dataclass(frozen=True)
class PagedDecodeFactor:
    """The factor in force: ``nominal`` with its range ``low``-``high``, and where they come from."""

    nominal: float
    low: float
    high: float
    kind: str  # measured | cited | assumed (UncertainTerm's kinds)
    basis: str


def paged_decode_factor(gpu_name: str, setting: str | float | None = None) -> PagedDecodeFactor:
    """The factor for ``setting`` (None or ``kvsim``: kvsim's kernels; ``vllm-2023``; a number) on the GPU
    preset ``gpu_name``."""
    if setting is None or setting == "kvsim":
        key = gpu_name.lower()
        if key in KVSIM_KERNEL_MEASURED:
            nominal, low, high = KVSIM_KERNEL_MEASURED[key]
            return PagedDecodeFactor(
                nominal,
                low,
                high,
                "measured",
                f"kvsim's paged decode kernel measured on the {gpu_name}: {nominal} at batch 64 x 4096, "
                f"{low}-{high} over shapes reading >= 1 GiB (benchmarks/results/kernel_bench-*)",
            )
        measured = list(KVSIM_KERNEL_MEASURED.values())
        nominal = round(sum(v[0] for v in measured) / len(measured), 3)
        low, high = min(v[1] for v in measured), max(v[2] for v in measured)
        return PagedDecodeFactor(
            nominal,
            low,
            high,
            "measured",
            f"kvsim's paged decode kernel, not measured on the {gpu_name}: carried over from the H100 (1.01) "
            f"and H200 (0.99), their shapes' spread {low}-{high}",
        )
    if setting == "vllm-2023":
        nominal, low, high = VLLM_2023
        return PagedDecodeFactor(
            nominal,
            low,
            high,
            "cited",
            "vLLM's 2023 paged kernel: 20-26% over a contiguous one (vLLM paper §7.1)",
        )
    try:
        value = float(setting)
    except (TypeError, ValueError):
        raise KvsimError(
            f"paged_decode_factor {setting!r}: give a number (e.g. 1.23), 'kvsim' (kvsim's kernels, the "
            "default) or 'vllm-2023' (the vLLM paper's kernel)"
        ) from None
    if not 0.5 <= value <= 4.0:
        raise KvsimError(f"paged_decode_factor {value}: expected a ratio of kernel times between 0.5 and 4")
    return PagedDecodeFactor(value, value, value, "assumed", "set by paged_decode_factor")
