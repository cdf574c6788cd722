"""The cost model's uncertain terms (issue 23): what each profile term's time could be, and one case applied.

A *knob* is an ``UncertainTerm`` plus the profile parameters it scales. Applying a case value multiplies
those parameters by ``value / nominal`` (``nominal / value`` for an efficiency, which divides time): the
profile changes before the cost model folds it into coefficients, so a case costs nothing per step.

- measured terms (a fit with held-out MAPE): the term's time × (1 ± MAPE), one knob per family of fits that
  share a kernel (the per-op GEMMs; the five elementwise kernels; a term carried over from another moves with
  it), at the family's largest MAPE;
- roofline terms: the efficiency factors and constants of ``kvsim.simulator.cost.roofline``, each a stated
  range with its reason (``ROOFLINE_RANGES``);
- the paged decode factor (``paged_factor``), where one decode kernel is derived from the other: the roofline
  (paged = contiguous × factor) and measured profiles that carry the contiguous kernel over from the paged one
  (Vidur's A100: contiguous = paged ÷ factor). Where both kernels are measured, each has its own fit's error;
- the VMM page-map time of vAttention: the spread measured across loans (``VMM_MAP_RANGE_S``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kvsim.errors import KvsimError
from kvsim.simulator.cost import roofline
from kvsim.simulator.cost.paged_factor import PagedDecodeFactor
from kvsim.simulator.cost.profile import Profile, Term
from kvsim.simulator.uncertainty.terms import UncertainTerm

# (name, roofline constant, low, high, inverse, kind, basis): the roofline's stated ranges
ROOFLINE_RANGES = (
    (
        "gemm_flops_efficiency",
        roofline.GEMM_FLOPS_EFFICIENCY,
        0.6,
        0.8,
        "assumed: cuBLAS sustains ~70-80% of the fp16 peak on large GEMMs, serving GEMMs are skinnier",
    ),
    (
        "hbm_bw_efficiency",
        roofline.HBM_BW_EFFICIENCY,
        0.7,
        0.9,
        "assumed: stream-like copies reach 80-90% of the datasheet bandwidth; 0.7 for kernels that do not",
    ),
    (
        "decode_attn_bw_efficiency",
        roofline.DECODE_ATTN_BW_EFFICIENCY,
        0.7,
        0.9,
        "assumed: kvsim's decode kernels reached 0.84-0.85 of the HBM peak (kernel_bench_summary-*.txt)",
    ),
    (
        "prefill_attn_flops_efficiency",
        roofline.PREFILL_ATTN_FLOPS_EFFICIENCY,
        0.45,
        0.73,
        "cited: FlashAttention-2 reports 50-73% of the A100 peak; kvsim's prefill kernel reached 0.46 on H100",
    ),
)
ROOFLINE_TIMES = (  # (name, constant, low, high, basis): seconds, scaling time directly
    (
        "kernel_launch_s",
        roofline.KERNEL_LAUNCH_S,
        2.5e-6,
        10e-6,
        "assumed: order of magnitude, a factor 2 either way",
    ),
    (
        "step_overhead_s",
        roofline.STEP_OVERHEAD_S,
        0.5e-3,
        2e-3,
        "assumed: order of magnitude, a factor 2 either way",
    ),
    (
        "allreduce_latency_s",
        roofline.ALLREDUCE_LATENCY_S,
        5e-6,
        20e-6,
        "assumed: order of NCCL's small-message latency, a factor 2 either way",
    ),
)
# vAttention's page map (cuMemMap + cuMemSetAccess), p50 per run, idle and beside a kernel, over the loans'
# benchmarks/results/vmm_overlap*.json: 33.24 to 51.75 µs (docs/validation.md "A map takes 33 to 51 µs").
VMM_MAP_RANGE_S = (33.24e-6, 51.75e-6)
VMM_MAP_TERM = "vmm_map_latency_s"

ELEMENTWISE = ("rmsnorm", "rotary", "activation", "residual_add", "embedding")
# which roofline knob scales which (term family, parameter prefix)
_ROOFLINE_TARGETS = {
    "gemm_flops_efficiency": (("gemm", "s_per_flop"),),
    "hbm_bw_efficiency": (
        ("gemm", "s_per_byte"),
        *((name, "bytes") for name in ELEMENTWISE),
        ("kv_write_paged", "bytes"),
        ("kv_write_contiguous", "bytes"),
        ("sampling", "bytes"),
        ("sampling_top_p", "bytes"),
    ),
    "decode_attn_bw_efficiency": (("attn_decode_paged", "kv_bytes"), ("attn_decode_contiguous", "kv_bytes")),
    "prefill_attn_flops_efficiency": (("attn_prefill_paged", "flops"), ("attn_prefill_contiguous", "flops")),
    "kernel_launch_s": tuple(
        (name, "const_s")
        for name in (
            "gemm",
            "attn_decode_paged",
            "attn_decode_contiguous",
            "attn_prefill_paged",
            "attn_prefill_contiguous",
            *ELEMENTWISE,
            "kv_write_paged",
            "kv_write_contiguous",
            "sampling",
            "sampling_top_p",
        )
    ),
    "step_overhead_s": (("step_overhead", "const_s"),),
    "allreduce_latency_s": (("allreduce", "const_s"),),
}
# measured families: knob name -> term families it scales (a family: the term and its ``name.*`` variants)
_MEASURED_FAMILIES = (
    ("gemm_scale", ("gemm",)),
    ("attn_decode_paged_scale", ("attn_decode_paged",)),
    ("attn_decode_contiguous_scale", ("attn_decode_contiguous",)),
    ("attn_prefill_paged_scale", ("attn_prefill_paged",)),
    ("attn_prefill_contiguous_scale", ("attn_prefill_contiguous",)),
    ("elementwise_scale", ELEMENTWISE),
    ("kv_write_paged_scale", ("kv_write_paged",)),
    ("kv_write_contiguous_scale", ("kv_write_contiguous",)),
    ("sampling_scale", ("sampling", "sampling_top_p")),
    ("allreduce_scale", ("allreduce",)),
)


@dataclass(frozen=True)
class Knob:
    """An uncertain term and the profile parameters it scales: ``targets`` are (term, parameter prefix or
    None for every parameter but a hinge's knee); ``inverse``: time ∝ nominal / value (an efficiency)."""

    term: UncertainTerm
    targets: tuple[tuple[str, str | None], ...]
    inverse: bool = False

    def scale(self, value: float) -> float:
        if value <= 0:
            raise KvsimError(f"term_values: {self.term.name}={value} must be > 0")
        return self.term.nominal / value if self.inverse else value / self.term.nominal


def _family(profile: Profile, family: str) -> list[str]:
    return [name for name in profile.terms if name == family or name.startswith(f"{family}.")]


def _term_range(name: str, term: Term) -> tuple[float, float, str, str] | None:
    """(low, high multipliers of the term's time, kind, basis): the profile's own ``uncertainty`` field where it
    has one, else ±(held-out MAPE) of its fit; None for a term with neither."""
    if term.uncertainty is not None:
        u = term.uncertainty
        return float(u["low"]), float(u["high"]), u["kind"], f"{name}: {u['basis']}"
    if term.fit is None or term.fit.mape_holdout_pct is None:
        return None
    mape = term.fit.mape_holdout_pct / 100
    kind = "cited" if term.source == "cited" else "measured"  # fitted on another team's measurements
    return 1 - mape, 1 + mape, kind, f"{name} held-out MAPE {100 * mape:.1f}% (n={term.fit.n})"


def cost_knobs(
    profile: Profile, tp: int, factor: PagedDecodeFactor | None, *, derived_decode: str | None
) -> list[Knob]:
    """The knobs of ``profile`` used at TP degree ``tp``. ``derived_decode``: which decode kernel is derived from
    the other by ``factor`` (``paged`` on the roofline, ``contiguous`` where a measured profile carries it
    over), None where both are measured."""
    knobs: list[Knob] = []
    carried = set(profile.extra.get("carried_over", ())) if profile.source == "measured" else set()
    roofline_terms = {
        name for name, term in profile.terms.items() if (term.source or profile.source) == "roofline"
    }
    used = _used_terms(profile, tp)

    def targets_in(pairs, allowed) -> tuple[tuple[str, str | None], ...]:
        return tuple(
            (name, param) for family, param in pairs for name in _family(profile, family) if name in allowed
        )

    for name, nominal, low, high, basis in ROOFLINE_RANGES:
        targets = targets_in(_ROOFLINE_TARGETS[name], roofline_terms & used)
        if targets:
            knobs.append(
                Knob(
                    UncertainTerm(name, nominal, low, high, "fraction of peak", *basis.split(": ", 1)),
                    targets,
                    inverse=True,
                )
            )
    for name, nominal, low, high, basis in ROOFLINE_TIMES:
        targets = targets_in(_ROOFLINE_TARGETS[name], roofline_terms & used)
        if targets:
            knobs.append(Knob(UncertainTerm(name, nominal, low, high, "s", *basis.split(": ", 1)), targets))
    if "allreduce" in roofline_terms & used:
        knobs.append(
            Knob(
                UncertainTerm(
                    "allreduce_bw_efficiency",
                    roofline.ALLREDUCE_BW_EFFICIENCY,
                    0.5,
                    0.9,
                    "fraction of peak",
                    "assumed",
                    "a ring all-reduce's share of the per-direction link bandwidth",
                ),
                (("allreduce", "ring_bytes"),),
                inverse=True,
            )
        )
    measured = {name for name in profile.terms if name not in roofline_terms and name in used}
    for knob_name, families in _MEASURED_FAMILIES:
        members = [n for family in families for n in _family(profile, family) if n in measured]
        own = [n for n in members if n not in carried]
        ranges = [r for n in own if (r := _term_range(n, profile.terms[n])) is not None]
        if not ranges:
            continue
        # a carried-over term moves with the term it was carried from (one fit, one error)
        followers = [c for c in carried if c in measured and c.replace("contiguous", "paged") in own]
        low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
        kinds = [r[2] for r in ranges]
        kind = next((k for k in ("assumed", "cited", "fitted") if k in kinds), "measured")
        basis = (
            "; ".join(r[3] for r in ranges)
            if len(ranges) <= 2
            else (
                f"widest of {len(ranges)} fits ({', '.join(own)}): {max(ranges, key=lambda r: r[1] - r[0])[3]}"
            )
        )
        if followers:
            basis += f"; {', '.join(followers)} carried over from it, moves with it"
        targets = tuple((n, None) for n in [*own, *followers])
        knobs.append(Knob(UncertainTerm(knob_name, 1.0, low, high, "x", kind, basis), targets))
    if factor is not None and derived_decode is not None and factor.high > factor.low:
        derived = f"attn_decode_{derived_decode}"
        knobs.append(
            Knob(
                UncertainTerm(
                    "paged_decode_factor",
                    factor.nominal,
                    factor.low,
                    factor.high,
                    "x",
                    factor.kind,
                    factor.basis,
                ),
                ((derived, "kv_bytes"),),
                inverse=derived_decode == "contiguous",
            )
        )
    return knobs


def _used_terms(profile: Profile, tp: int) -> set[str]:
    """The terms a run at TP ``tp`` reads (all-reduce only above TP 1; sampling: the greedy sampler)."""
    used = set(profile.terms) - {"launch_overlap", "vmm_map", "vmm_unmap", "sampling_top_p"}
    if tp == 1:
        used -= {name for name in profile.terms if name.startswith("allreduce")}
    elif f"allreduce.tp{tp}" in profile.terms:
        used -= {
            name for name in profile.terms if name.startswith("allreduce") and name != f"allreduce.tp{tp}"
        }
    return used


def apply_values(profile: Profile, knobs: list[Knob], values: dict[str, float]) -> Profile:
    """``profile`` with each knob named in ``values`` set to that value (its parameters scaled); names of
    other terms (the engine's, the allocator's) are left to their owners."""
    scales: dict[str, dict[str | None, float]] = {}
    for knob in knobs:
        if knob.term.name not in values:
            continue
        factor = knob.scale(values[knob.term.name])
        for term_name, param in knob.targets:
            per_param = scales.setdefault(term_name, {})
            per_param[param] = per_param.get(param, 1.0) * factor
    return scale_params(profile, scales)


def scale_params(profile: Profile, scales: dict[str, dict[str | None, float]]) -> Profile:
    """``profile`` with term -> {parameter prefix (None: all but a hinge's knee) -> factor} applied."""
    if not scales:
        return profile
    terms = dict(profile.terms)
    for term_name, per_param in scales.items():
        term = terms[term_name]
        params = {}
        for key, value in term.params.items():
            scale = 1.0
            for prefix, factor in per_param.items():
                if (prefix is None and key != "knee_bytes") or (
                    prefix is not None and key.startswith(prefix)
                ):
                    scale *= factor
            params[key] = value * scale
        terms[term_name] = dataclasses.replace(term, params=params)
    return dataclasses.replace(profile, terms=terms)


def vmm_map_term(nominal_s: float, measured: bool) -> UncertainTerm:
    """vAttention's page-map time: ``nominal_s`` (the profile's measurement, else the allocator's default),
    ranging over what the loans measured."""
    low, high = min(VMM_MAP_RANGE_S[0], nominal_s), max(VMM_MAP_RANGE_S[1], nominal_s)
    source = "this profile's measurement" if measured else "kvsim's default (not measured on this GPU)"
    return UncertainTerm(
        VMM_MAP_TERM,
        nominal_s,
        low,
        high,
        "s",
        "measured",
        f"{source}; p50 over the H100 and H200 loans' vmm_overlap runs 33.2-51.8 µs",
    )


def resolve_uncertainty(
    loaded: Profile | None,
    gpu,
    tp: int,
    paged_decode_factor: str | float | None,
    values: dict[str, float],
) -> tuple[Profile, list[Knob], str]:
    """(the profile a run uses, its knobs, a note on the paged decode factor for the description).

    ``loaded``: a profile file's contents, or None for ``gpu``'s roofline. The paged decode factor applies
    where one decode kernel is derived from the other; a factor asked for where both are measured is refused
    (the measurement is what a measured profile is for). ``values``: one case (knob name -> value)."""
    from kvsim.simulator.cost.paged_factor import paged_decode_factor as factor_for
    from kvsim.simulator.cost.roofline import (
        roofline_profile,
        with_measured_allreduce,
        with_roofline_whole_step_terms,
    )

    factor = factor_for(gpu.name, paged_decode_factor)
    if loaded is None:
        profile, derived = roofline_profile(gpu, factor.nominal), "paged"
    else:
        profile = loaded
        carried = set(profile.extra.get("carried_over", ())) if profile.source == "measured" else set()
        derived = None
        if profile.source == "roofline" or (profile.terms["attn_decode_paged"].source == "roofline"):
            derived = "paged"  # a saved roofline profile: its factor is baked in, left as it is
            factor = None if paged_decode_factor is None else factor
            if factor is not None:
                raise KvsimError(
                    "paged_decode_factor: this profile file's paged decode term was written with its own factor; "
                    "use --profile roofline (the GPU's roofline, built with the factor asked for) instead"
                )
        elif "attn_decode_contiguous" in carried:
            derived = "contiguous"
            if factor.nominal != 1.0:  # the file carries it over at 1.0: contiguous = paged ÷ factor
                profile = scale_params(
                    profile, {"attn_decode_contiguous": {"kv_bytes": 1.0 / factor.nominal}}
                )
        elif paged_decode_factor is not None:
            raise KvsimError(
                f"paged_decode_factor {paged_decode_factor!r}: this profile ({profile.device.name}, "
                f"{profile.source}) measures both the paged and the contiguous decode kernel, so the factor is "
                "its measurement; use --profile roofline to model another kernel's factor"
            )
        else:
            factor = None
    profile = with_roofline_whole_step_terms(with_measured_allreduce(profile, gpu), gpu)
    knobs = cost_knobs(profile, tp, factor, derived_decode=derived)
    profile = apply_values(profile, knobs, values)
    note = ""
    if factor is not None and derived == "contiguous":
        note = (
            f"contiguous decode = this profile's paged kernel ÷ paged decode factor {factor.nominal:g} "
            f"({factor.basis})"
        )
    elif factor is not None and derived is not None:
        note = f"paged decode factor {factor.nominal:g} ({factor.basis})"
    return profile, knobs, note
