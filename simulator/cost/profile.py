"""The profile file: what a cost model knows about one device, as fitted terms (DESIGN §5).

Pure JSON and dataclasses (no torch), so that ``kvsim.calibrate`` writes it on the GPU machine and the
simulator reads it anywhere. Every term is the cost of ONE kernel launch (one layer, one TP shard); the cost
model multiplies by the number of layers. A term has a model form, its parameters and, when fitted, the
quality of the fit on held-out points.

Forms (parameters in seconds, per unit of each feature):
- ``linear``: ``const_s + Σ_f params[f] · feature_f``, plus, for the terms in ``RAMP_FEATURES``, optional ramp
  parameters ``<f>_min_<K>`` that add ``params · min(feature_f, K)``. With non-negative parameters the sum is
  a concave, increasing, piecewise-linear function of the feature: the shape of a memory-bound kernel whose
  achieved bandwidth rises with its size until the GPU is saturated (decode attention: ``kv_bytes_min_<K>``).
- ``max``: ``const_s + max(s_per_flop · flops, s_per_byte · bytes)``, the roofline of a GEMM
- ``hinge``: ``const_s + s_per_byte · max(0, bytes − knee_bytes)``: flat (latency-bound) up to a knee, then
  linear (bandwidth-bound); the shape of a measured NCCL all-reduce (``allreduce.tp<N>``)
- ``table``: seconds per call by page size in bytes (keys are decimal strings), for ``vmm_map``/``vmm_unmap``
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kvsim.errors import KvsimError

SCHEMA_VERSION = 1
SOURCES = ("measured", "roofline", "cpu-smoke")
# A term's own source, where it differs from the profile's: also ``cited``, fitted by kvsim on another team's
# published measurements (the profile's ``extra["cited"]["provenance"]`` says whose, which GPU, which commit).
TERM_SOURCES = (*SOURCES, "cited")

# term -> (form, features). Every profile carries these; the cost model needs all of them.
REQUIRED_TERMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gemm": ("max", ("flops", "bytes")),
    "attn_decode_paged": ("linear", ("kv_bytes", "num_seqs", "num_blocks")),
    "attn_decode_contiguous": ("linear", ("kv_bytes", "num_seqs")),
    "attn_prefill_paged": ("linear", ("flops", "bytes", "num_seqs")),
    "attn_prefill_contiguous": ("linear", ("flops", "bytes", "num_seqs")),
    # ring all-reduce: ring_bytes = 2 (tp - 1) / tp × message bytes; const_s is the per-call latency
    "allreduce": ("linear", ("ring_bytes",)),
    "step_overhead": ("linear", ("num_seqs",)),
}
# Optional: per-op GEMMs of the profiled model (override ``gemm`` for that op), VMM page map/unmap cost.
GEMM_OPS = ("qkv", "o", "mlp_up", "mlp_down", "lm_head")
OPTIONAL_TERMS: dict[str, tuple[str, tuple[str, ...]]] = {
    **{f"gemm.{op}": ("max", ("flops", "bytes")) for op in GEMM_OPS},
    "vmm_map": ("table", ()),
    "vmm_unmap": ("table", ()),
    # What one kernel's own timing includes that a launch right behind another kernel does not pay (the
    # events', the launch's and the ramp's latency, hidden under the previous kernel's tail): measured as whole
    # decoder layers against the sum of their kernels timed alone (calibrate/validate_step.py). The cost model
    # takes it off each kernel term's constant.
    "launch_overlap": ("linear", ()),
    # Per-layer (embedding: per-step) elementwise kernels, each linear in the bytes of its output tensor on one
    # shard (LAYER_OPS says which tensor and how many launches a step makes). Added by the cost model when present.
    **{
        name: ("linear", ("bytes",))
        for name in ("rmsnorm", "rotary", "activation", "residual_add", "embedding")
    },
    # The KV-cache write of one layer: the step's new K and V copied into the cache (vLLM's reshape_and_cache),
    # linear in the bytes written (work.kv_write_bytes_per_token). Paged: scattered by slot mapping into
    # [num_blocks, block_size, num_kv_heads, head_dim]; contiguous: into each sequence's own region.
    "kv_write_paged": ("linear", ("bytes",)),
    "kv_write_contiguous": ("linear", ("bytes",)),
    # Sampling, once per step, linear in the bytes of the float32 logits [num_seqs, vocab] it samples from
    # (work.sampling_bytes_per_seq): ``sampling`` greedy (argmax: temperature 0, as benchmark clients ask),
    # ``sampling_top_p`` softmax, sort, cumsum, mask and multinomial (top-p). The cost model adds one of them.
    "sampling": ("linear", ("bytes",)),
    "sampling_top_p": ("linear", ("bytes",)),
    # All-reduce measured per TP group size (message bytes = the [tokens, hidden] activations); overrides
    # ``allreduce`` for that group size.
    **{f"allreduce.tp{n}": ("hinge", ("bytes",)) for n in (2, 4, 8)},
}
# Elementwise terms: (term, launches per layer, launches per step); the cost model's whole-step sum.
LAYER_OPS = (
    ("rmsnorm", 2, 1),  # input and post-attention norms; the final norm once per step
    ("rotary", 1, 0),  # rotary embedding of q and k
    ("activation", 1, 0),  # SiLU(gate) · up (GELU for an ungated MLP)
    ("residual_add", 2, 0),  # after attention and after the MLP
    ("embedding", 0, 1),  # token embedding lookup
)
# The whole-step terms (DESIGN §5's step sum beyond GEMMs, attention and all-reduce). A profile may lack them
# (measured before they existed); make_cost_model then borrows the GPU's roofline estimate, marked ``roofline``
# (roofline.with_roofline_whole_step_terms), so that no kernel of the step silently costs 0.
WHOLE_STEP_TERMS = (
    *(name for name, _, _ in LAYER_OPS),
    "kv_write_paged",
    "kv_write_contiguous",
    "sampling",
    "sampling_top_p",
)
FORM_PARAMS = {
    "max": ("const_s", "s_per_flop", "s_per_byte"),
    "hinge": ("const_s", "s_per_byte", "knee_bytes"),
}
RAMP_SEPARATOR = "_min_"
# The terms that may carry a ramp, and in which feature: the ones the cost model applies ramps to.
RAMP_FEATURES = {"attn_decode_paged": "kv_bytes", "attn_decode_contiguous": "kv_bytes"}


def ramp_param(feature: str, knee: int) -> str:
    """The name of the parameter of ``min(feature, knee)`` in a linear term."""
    return f"{feature}{RAMP_SEPARATOR}{knee}"


def split_ramp_param(name: str) -> tuple[str, int] | None:
    """(feature, knee) of a ramp parameter's name; None for any other name."""
    feature, sep, knee = name.rpartition(RAMP_SEPARATOR)
    return (feature, int(knee)) if sep and feature and knee.isdigit() and int(knee) > 0 else None


def ramp_knees(params: dict[str, float], feature: str) -> list[tuple[int, float]]:
    """[(knee, seconds per unit below the knee)] of ``feature``'s ramp parameters, by knee."""
    knees = []
    for name, value in params.items():
        ramp = split_ramp_param(name)
        if ramp is not None and ramp[0] == feature:
            knees.append((ramp[1], value))
    return sorted(knees)


@dataclass(frozen=True)
class FitQuality:
    """Held-out quality of a fitted term: a random 20% split, and an extrapolation split (fit on the smaller
    shapes, test on the largest). MAPE in percent; None where a split had too few points."""

    n: int  # points in the fit
    mape_holdout_pct: float | None = None
    r2_holdout: float | None = None
    mape_extrapolation_pct: float | None = None
    r2_extrapolation: float | None = None
    n_holdout: int = 0
    n_extrapolation: int = 0


@dataclass(frozen=True)
class Term:
    """One cost term: ``form`` with ``params``; ``source`` set when it differs from the profile's (a measured
    profile fills what it could not measure, e.g. all-reduce on one GPU, from the roofline)."""

    form: str
    params: dict[str, float]
    fit: FitQuality | None = None
    source: str | None = None
    # optional (older profiles lack it): the term's time as a range of multipliers, {"low": 0.93, "high": 1.07,
    # "kind": "measured", "basis": "..."}; absent, a fitted term's is its held-out MAPE (cost/uncertainty.py)
    uncertainty: dict[str, Any] | None = None

    def predict(self, **features: float) -> float:
        """Seconds for one launch with the given features (not the hot path: the cost model precomputes)."""
        p = self.params
        if self.form == "max":
            return p["const_s"] + max(
                p["s_per_flop"] * features["flops"], p["s_per_byte"] * features["bytes"]
            )
        if self.form == "hinge":
            return p["const_s"] + p["s_per_byte"] * max(0.0, features["bytes"] - p["knee_bytes"])
        if self.form == "linear":
            total = p["const_s"]
            for name, value in p.items():
                ramp = split_ramp_param(name)
                if ramp is not None:
                    total += value * min(features[ramp[0]], ramp[1])
                elif name != "const_s":
                    total += value * features[name]
            return total
        raise AssertionError(f"predict() does not apply to form {self.form!r}")


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    memory_bytes: int
    num_sms: int
    driver: str | None = None
    torch: str | None = None
    triton: str | None = None
    cuda: str | None = None
    date: str | None = None  # ISO date of the measurement; None for a roofline


@dataclass(frozen=True)
class Profile:
    """A validated profile. ``representative`` is false for CPU smoke runs, whose numbers mean nothing."""

    device: DeviceInfo
    source: str
    terms: dict[str, Term]
    representative: bool = True
    notes: str = ""
    model: str | None = None  # the model whose GEMM shapes were profiled (per-op ``gemm.*`` terms)
    tp: int = 1
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # free-form provenance (sweep sizes, skipped parts)
    # Who measured it, where it is published, when, when not kvsim itself (e.g. Vidur's A100 operator times)
    provenance: str | None = None

    def __post_init__(self) -> None:
        _validate(_to_dict(self), "<profile>")

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    def profiled(self, model_name: str | None) -> bool:
        """Whether this profile's per-op GEMM terms were measured on ``model_name``'s shapes."""
        return model_name is not None and (self.model or "").lower() == model_name.lower()

    def gemm_term(self, op: str, model_name: str | None) -> Term:
        """The GEMM term that times ``op`` (one of ``GEMM_OPS``) of ``model_name``: its per-op fit where this
        profile measured that model's shapes and has one, else the fit pooled over all ops (``gemm``)."""
        if self.profiled(model_name):
            return self.terms.get(f"gemm.{op}", self.terms["gemm"])
        return self.terms["gemm"]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: Any, where: str = "<profile>") -> Profile:
        _validate(data, where)
        terms = {
            name: Term(
                t["form"],
                {k: float(v) for k, v in t["params"].items()},
                FitQuality(**t["fit"]) if t.get("fit") is not None else None,
                t.get("source"),
                t.get("uncertainty"),
            )
            for name, t in data["terms"].items()
        }
        return cls(
            DeviceInfo(**data["device"]),
            data["source"],
            terms,
            data["representative"],
            data.get("notes", ""),
            data.get("model"),
            data.get("tp", 1),
            data["schema_version"],
            data.get("extra", {}),
            data.get("provenance"),
        )


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile file; any problem is a KvsimError naming the file and the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KvsimError(f"cannot read profile {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise KvsimError(f"profile {path} is not valid JSON: {exc}") from None
    return Profile.from_dict(data, str(path))


def _to_dict(profile: Profile) -> dict[str, Any]:
    data = asdict(profile)
    if data["provenance"] is None:
        del data["provenance"]
    for term in data["terms"].values():
        for key in ("source", "uncertainty"):  # optional: absent rather than null (older readers)
            if term[key] is None:
                del term[key]
    return data


def _validate(data: Any, where: str) -> None:
    def fail(field_name: str, problem: str) -> None:
        raise KvsimError(f"profile {where}: field {field_name!r} {problem}")

    if not isinstance(data, dict):
        fail("<root>", "must be a JSON object")
    if data.get("schema_version") != SCHEMA_VERSION:
        fail(
            "schema_version",
            f"is {data.get('schema_version')!r}, this kvsim reads {SCHEMA_VERSION}; "
            "re-run `kvsim calibrate` (or --fit-only on the raw CSV) to rewrite it",
        )
    if data.get("source") not in SOURCES:
        fail("source", f"is {data.get('source')!r}, expected one of {', '.join(SOURCES)}")
    if not isinstance(data.get("representative"), bool):
        fail("representative", "must be true or false")
    tp = data.get("tp", 1)
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        fail("tp", f"must be a positive integer, got {tp!r}")
    if data.get("provenance") is not None and not isinstance(data["provenance"], str):
        fail("provenance", f"must be a string or null, got {data['provenance']!r}")
    if data.get("model") is not None and not isinstance(data["model"], str):
        fail("model", f"must be a model name or null, got {data['model']!r}")
    device = data.get("device")
    if not isinstance(device, dict):
        fail("device", "must be an object with name, memory_bytes, num_sms, ...")
    known = DeviceInfo.__dataclass_fields__
    for key in device:
        if key not in known:
            fail(f"device.{key}", f"is unknown; expected {', '.join(known)}")
    for key in ("name", "memory_bytes", "num_sms"):
        if key not in device:
            fail(f"device.{key}", "is missing")
    if not isinstance(device["name"], str) or not device["name"]:
        fail("device.name", f"must be a non-empty string, got {device['name']!r}")
    for key in ("memory_bytes", "num_sms"):
        if isinstance(device[key], bool) or not isinstance(device[key], int) or device[key] <= 0:
            fail(f"device.{key}", f"must be a positive integer, got {device[key]!r}")
    for key in ("driver", "torch", "triton", "cuda", "date"):
        if device.get(key) is not None and not isinstance(device[key], str):
            fail(f"device.{key}", f"must be a string or null, got {device[key]!r}")
    terms = data.get("terms")
    if not isinstance(terms, dict):
        fail("terms", "must be an object mapping term name to {form, params, fit}")
    for name in REQUIRED_TERMS:
        if name not in terms:
            fail(f"terms.{name}", "is missing (every profile needs " + ", ".join(REQUIRED_TERMS) + ")")
    for name, term in terms.items():
        _validate_term(name, term, fail)
    cited = sorted(name for name, term in terms.items() if term.get("source") == "cited")
    provenance = (data.get("extra") or {}).get("cited", {})
    if cited and not (isinstance(provenance, dict) and isinstance(provenance.get("provenance"), str)):
        fail(
            "extra.cited.provenance",
            f"must say whose measurements the cited terms ({', '.join(cited)}) were fitted on",
        )


def _validate_term(name: str, term: Any, fail) -> None:
    spec = REQUIRED_TERMS.get(name) or OPTIONAL_TERMS.get(name)
    if spec is None:
        fail(f"terms.{name}", f"is not a known term; known: {', '.join([*REQUIRED_TERMS, *OPTIONAL_TERMS])}")
    if not isinstance(term, dict) or not isinstance(term.get("params"), dict):
        fail(f"terms.{name}", "must be an object with form and params")
    form, features = spec
    if term.get("form") != form:
        fail(f"terms.{name}.form", f"is {term.get('form')!r}, expected {form!r}")
    params = term["params"]
    expected = FORM_PARAMS.get(form, ("const_s", *features)) if form != "table" else tuple(params)
    ramp_feature = RAMP_FEATURES.get(name)
    ramps = {key for key in params if ramp_feature and (split_ramp_param(key) or ("",))[0] == ramp_feature}
    if set(params) - ramps != set(expected):
        ramp_note = f" (and optional ramps {ramp_feature}{RAMP_SEPARATOR}<K>)" if ramp_feature else ""
        fail(
            f"terms.{name}.params",
            f"has keys {sorted(params)}, expected {sorted(expected)}{ramp_note}",
        )
    for key, value in params.items():
        if form == "table" and not (key.isdigit() and int(key) > 0):
            fail(f"terms.{name}.params.{key}", "must be a page size in bytes (a positive integer string)")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            fail(f"terms.{name}.params.{key}", f"must be a finite non-negative number, got {value!r}")
    if term.get("source") is not None and term["source"] not in TERM_SOURCES:
        fail(f"terms.{name}.source", f"is {term['source']!r}, expected one of {', '.join(TERM_SOURCES)}")
    _validate_uncertainty(name, term.get("uncertainty"), fail)
    fit = term.get("fit")
    fields = FitQuality.__dataclass_fields__
    if fit is not None and (not isinstance(fit, dict) or "n" not in fit or set(fit) - set(fields)):
        fail(f"terms.{name}.fit", f"must be an object with n and keys among {', '.join(fields)}")


UNCERTAINTY_KINDS = ("measured", "cited", "fitted", "assumed")


def _validate_uncertainty(name: str, value: Any, fail) -> None:
    """A term's optional ``uncertainty``: multipliers ``0 < low <= 1 <= high`` of its time, a kind, a basis."""
    if value is None:
        return
    where = f"terms.{name}.uncertainty"
    if not isinstance(value, dict) or set(value) != {"low", "high", "kind", "basis"}:
        fail(where, "must be an object with low, high, kind and basis")
    low, high = value["low"], value["high"]
    numbers = all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)
    )
    if not numbers or not 0 < low <= 1 <= high:
        fail(where, f"needs multipliers 0 < low <= 1 <= high, got {low!r}, {high!r}")
    if value["kind"] not in UNCERTAINTY_KINDS:
        fail(f"{where}.kind", f"is {value['kind']!r}, expected one of {', '.join(UNCERTAINTY_KINDS)}")
    if not isinstance(value["basis"], str) or not value["basis"]:
        fail(f"{where}.basis", "must say where the range comes from")
