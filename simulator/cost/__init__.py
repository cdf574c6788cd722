"""Cost models: the ``CostModel`` Protocol and its profile-backed implementation (DESIGN §5).

``make_cost_model(model, gpu, tp)`` is the one entry point: a profile given by path, else a measured profile
shipped in ``calibrate/profiles/<gpu>*.json``, else the GPU's roofline. ``cost.source`` says which.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from kvsim.simulator.cost.base import CostModel
from kvsim.simulator.cost.profile import Profile, load_profile
from kvsim.simulator.cost.profile_model import ProfileCostModel
from kvsim.simulator.cost.roofline import roofline_profile
from kvsim.simulator.specs import GpuSpec, ModelSpec

__all__ = [
    "CostModel",
    "Profile",
    "ProfileCostModel",
    "load_profile",
    "make_cost_model",
    "profile_from_spec",
    "roofline_profile",
    "shipped_profile_path",
]


ROOFLINE = "roofline"  # the `profile` value that asks for the datasheet roofline


def profile_from_spec(spec: str | Path) -> Profile:
    """A profile file, or ``roofline:GPU`` (e.g. ``roofline:h100-sxm``): that GPU's datasheet roofline, for the
    calibration tools that score a profile against measurements (how far is the roofline from the GPU?)."""
    text = str(spec)
    if text.startswith(f"{ROOFLINE}:"):
        return roofline_profile(GpuSpec.from_name(text[len(ROOFLINE) + 1 :]))
    return load_profile(spec)


def make_cost_model(
    model: ModelSpec | str,
    gpu: GpuSpec | str,
    tp: int = 1,
    *,
    profile: str | Path | None = None,
    paged_decode_factor: str | float | None = None,
    term_values: dict[str, float] | None = None,
) -> ProfileCostModel:
    """The cost model of ``model`` on ``gpu`` with TP degree ``tp``. ``profile``: a profile file to use
    instead of the shipped measured one (or the roofline when none ships for this GPU); ``"roofline"``: the
    GPU's datasheet roofline even where a measured profile ships (how much does calibration change this?).
    ``paged_decode_factor``: the paged decode kernel modelled (``cost.paged_factor``: None or ``kvsim``,
    ``vllm-2023``, a number); ``term_values``: one uncertainty case's values of the cost model's uncertain
    terms (``cost.uncertainty``), which ``cost.uncertain_terms`` lists."""
    from kvsim.simulator.cost.uncertainty import resolve_uncertainty

    model = ModelSpec.from_name(model) if isinstance(model, str) else model
    gpu = GpuSpec.from_name(gpu) if isinstance(gpu, str) else gpu
    if profile is None:
        profile = shipped_profile_path(gpu)
    if str(profile) == ROOFLINE:
        profile = None
    resolved, knobs, factor_note = resolve_uncertainty(
        load_profile(profile) if profile is not None else None,
        gpu,
        tp,
        paged_decode_factor,
        term_values or {},
    )
    cost = ProfileCostModel(resolved, model, tp)
    cited = [name for name, term in resolved.terms.items() if term.source == "cited"]
    if cited:  # fitted by kvsim on another team's published measurements (profile.TERM_SOURCES)
        cost.description += f"; cited ({resolved.extra['cited']['provenance']}): {', '.join(cited)}"
    if resolved.representative and resolved.device.name.lower() != gpu.name.lower():
        cost.description += f" (a {resolved.device.name} profile used for {gpu.name})"
    if factor_note:
        cost.description += f"; {factor_note}"
    cost.uncertain_terms = tuple(knob.term for knob in knobs)
    return cost


def shipped_profile_path(gpu: GpuSpec | str) -> Path | None:
    """The measured, representative profile shipped for ``gpu`` (``calibrate/profiles/<name>*.json`` or
    ``profile-<name>*.json`` as calibration writes it; the last in name order, so a later date wins), or None."""
    name = (gpu if isinstance(gpu, str) else gpu.name).lower()
    found = []
    paths = {*_profiles_dir().glob(f"{name}*.json"), *_profiles_dir().glob(f"profile-{name}*.json")}
    for path in sorted(paths):
        candidate = load_profile(path)
        if candidate.source == "measured" and candidate.representative:
            found.append(path)
    return found[-1] if found else None


def _profiles_dir() -> Path:
    # Located without importing kvsim.calibrate (which is light anyway, but is the GPU machine's package).
    spec = importlib.util.find_spec("kvsim.calibrate")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "profiles"
