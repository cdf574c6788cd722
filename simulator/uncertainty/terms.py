"""``UncertainTerm``: a term the model cannot know exactly, its range, and where both come from.

Every cost-model and engine term that is not exact declares one: a measured term its held-out error, a cited
term the range its source gives, an assumed term a stated range with the reason. One *case* gives some terms
other values than their nominal ones: the ``SimConfig`` field ``term_values`` (``"name=value,name=value"``,
each in the term's own unit). The code that owns a term reads its case value once per run with
``term_value(config, name, nominal)``, never per step.

``all_terms(config, cost_model)`` collects the terms in force for a run: the cost model's
(``cost_model.uncertain_terms``) and the engine's (``ENGINE_TERM_SOURCES``).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from kvsim.errors import KvsimError

KINDS = ("measured", "cited", "fitted", "assumed")
_NAME = re.compile(r"^[a-z][a-z0-9_.]*$")
# Modules ("package.module:function") whose function(config) -> list[UncertainTerm] declares engine terms;
# a module that does not exist (yet) declares none.
ENGINE_TERM_SOURCES: tuple[str, ...] = ("kvsim.simulator.engine_overhead:uncertain_terms",)


@dataclass(frozen=True)
class UncertainTerm:
    """A term's nominal value and its range ``low <= nominal <= high``, in the term's own ``unit``; ``kind``
    says whether they were measured, cited, fitted or assumed, and ``basis`` where they come from."""

    name: str
    nominal: float
    low: float
    high: float
    unit: str
    kind: str
    basis: str

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise KvsimError(f"uncertain term name {self.name!r}: use lower-case letters, digits, _ and .")
        if self.kind not in KINDS:
            raise KvsimError(
                f"uncertain term {self.name}: kind {self.kind!r}, expected one of {', '.join(KINDS)}"
            )
        values = (self.low, self.nominal, self.high)
        if not all(math.isfinite(v) for v in values) or not self.low <= self.nominal <= self.high:
            raise KvsimError(
                f"uncertain term {self.name}: needs finite low <= nominal <= high, got {self.low}, "
                f"{self.nominal}, {self.high}"
            )

    @property
    def uncertain(self) -> bool:
        """Whether the range has any width (a term known exactly makes no case)."""
        return self.high > self.low

    def describe(self) -> str:
        """``paged_decode_factor 1.01 (0.96-1.07), measured: ...``"""
        return f"{self.name} {_fmt(self.nominal)} ({_fmt(self.low)}-{_fmt(self.high)} {self.unit}), {self.kind}: {self.basis}"

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "nominal": self.nominal,
            "low": self.low,
            "high": self.high,
            "unit": self.unit,
            "kind": self.kind,
            "basis": self.basis,
        }


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def parse_term_values(text: str | None, where: str = "term_values") -> dict[str, float]:
    """``"a=1.0,b=2e-3"`` -> {"a": 1.0, "b": 0.002}; None or "" -> {}. Names in the order given."""
    if text is None or not text.strip():
        return {}
    values: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        name = name.strip()
        if not sep or not _NAME.match(name):
            raise KvsimError(
                f"{where}: {item.strip()!r} is not NAME=VALUE (e.g. paged_decode_factor=1.23,step_overhead_s=2e-3)"
            )
        try:
            number = float(value)
        except ValueError:
            raise KvsimError(f"{where}: {name}={value.strip()!r} is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise KvsimError(f"{where}: {name}={value.strip()} must be a finite number >= 0")
        if name in values:
            raise KvsimError(f"{where}: {name} is given twice")
        values[name] = number
    return values


def format_term_values(values: dict[str, float]) -> str | None:
    """The inverse of ``parse_term_values``, names sorted (one spelling per case: its point id is stable)."""
    if not values:
        return None
    return ",".join(f"{name}={values[name]!r}" for name in sorted(values))


def term_value(config, name: str, nominal: float) -> float:
    """The case's value of term ``name`` under ``config`` (its ``term_values``), else ``nominal``."""
    return parse_term_values(getattr(config, "term_values", None)).get(name, nominal)


def engine_terms(config) -> list[UncertainTerm]:
    """The engine's uncertain terms under ``config`` (``ENGINE_TERM_SOURCES``)."""
    terms: list[UncertainTerm] = []
    for source in ENGINE_TERM_SOURCES:
        module_name, _, function = source.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # that module does not exist (yet): it declares nothing
            raise
        declare = getattr(module, function, None)  # not declared (yet): none
        if declare is not None:
            terms.extend(declare(config))
    return terms


def all_terms(config, cost_model) -> list[UncertainTerm]:
    """Every uncertain term in force for a run of ``config`` on ``cost_model``: the cost model's, then the
    engine's; a name declared twice is a bug of the declarations."""
    terms = [*getattr(cost_model, "uncertain_terms", ()), *engine_terms(config)]
    seen: set[str] = set()
    for term in terms:
        assert term.name not in seen, f"uncertain term {term.name} declared twice"
        seen.add(term.name)
    return terms


def check_term_values(config, terms: Iterable[UncertainTerm]) -> None:
    """Refuse a ``term_values`` name that no term in force declares (a typo would silently do nothing)."""
    given = parse_term_values(getattr(config, "term_values", None))
    known = {term.name for term in terms}
    unknown = [name for name in given if name not in known]
    if unknown:
        raise KvsimError(
            f"term_values: {', '.join(unknown)} not an uncertain term of this run; known: "
            f"{', '.join(sorted(known)) or 'none'}"
        )


def run_terms(config, cost_model) -> list[UncertainTerm]:
    """``all_terms`` plus the allocator's: vAttention's page-map time (its nominal: the profile's measurement
    at the page size, else the allocator's default; a map time the spec sets itself is exact)."""
    terms = all_terms(config, cost_model)
    vattention = _vattention_config(config.allocator)
    if vattention is not None:
        from kvsim.simulator.cost.uncertainty import vmm_map_term

        lookup = getattr(cost_model, "map_latency_s", None)
        measured_s = lookup(vattention.page_size) if callable(lookup) else None
        terms.append(
            vmm_map_term(
                measured_s if measured_s is not None else vattention.map_latency_s, measured_s is not None
            )
        )
    return terms


def _vattention_config(spec: str):
    """The VAttentionConfig of a ``vattention`` spec that leaves ``map_latency_s`` to kvsim, else None."""
    from kvsim.simulator.allocators import ALLOCATORS
    from kvsim.simulator.allocators.spec import config_from_options, split_spec

    name, _, options = split_spec(spec, list(ALLOCATORS))
    if name != "vattention" or "map_latency_s" in options:
        return None
    return config_from_options(ALLOCATORS[name].config_cls, name, options)


def vmm_map_case_s(config, resolved_s: float | None) -> float | None:
    """The page-map time a vAttention allocator of ``config`` gets: the case's ``vmm_map_latency_s`` where
    ``term_values`` sets it, else ``resolved_s`` (the profile's measurement, or None for the default)."""
    from kvsim.simulator.cost.uncertainty import VMM_MAP_TERM

    value = parse_term_values(getattr(config, "term_values", None)).get(VMM_MAP_TERM)
    return resolved_s if value is None else value
