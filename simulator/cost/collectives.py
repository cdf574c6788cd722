"""Measured all-reduce times (NCCL, by message size and group size) per system, as fitted profile terms.

The fits ship in ``calibrate/profiles/vidur/allreduce-fits.json`` (written by ``python -m kvsim.calibrate.vidur
build`` from Vidur's published NCCL timings on DGX A100 and DGX H100; MIT, see that folder's README). Each GPU
preset names the system whose measurements stand for its NVLink/NVSwitch; the H200 and the A100-40GB have no
measurements of their own and borrow a system's, which the profile's notes say (carried over).
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from kvsim.simulator.cost.profile import FitQuality, Term

FITS_FILE = "allreduce-fits.json"
# GPU preset name -> (measured system, why its measurements stand for this GPU)
GPU_TO_SYSTEM = {
    "A100-80GB": ("a100_dgx", "measured on DGX A100 (8 GPUs, NVSwitch)"),
    "A100-40GB": (
        "a100_dgx",
        "carried over from DGX A100 (the A100-40GB SXM has the same NVLink 3 and NVSwitch)",
    ),
    "H100-SXM": ("h100_dgx", "measured on DGX H100 (8 GPUs, NVSwitch)"),
    "H200": (
        "h100_dgx",
        "carried over from DGX H100 (the H200 SXM has the H100's NVLink 4, 900 GB/s, and NVSwitch)",
    ),
}


def measured_allreduce(gpu_name: str) -> tuple[dict[str, Term], str] | None:
    """(``allreduce`` and ``allreduce.tp<N>`` terms, a note saying where they come from) for ``gpu_name``'s
    system, or None where no measurement stands for it (L4: PCIe, no NVLink)."""
    system = GPU_TO_SYSTEM.get(gpu_name)
    if system is None:
        return None
    fits = _load_fits()
    if fits is None or system[0] not in fits["systems"]:
        return None
    terms = {
        name: Term(t["form"], dict(t["params"]), FitQuality(**t["fit"]) if t.get("fit") else None, "measured")
        for name, t in fits["systems"][system[0]].items()
    }
    return terms, f"all-reduce {system[1]} by {fits['measured_by']}"


@lru_cache(maxsize=1)
def _load_fits() -> dict | None:
    spec = importlib.util.find_spec("kvsim.calibrate")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "profiles" / "vidur" / FITS_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
