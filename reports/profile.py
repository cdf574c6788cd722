"""A calibration profile (DESIGN §5) and its raw measurements as report rows.

The profile JSON holds each term's fitted parameters and its held-out quality (MAPE and R² on a random 20% split
and on an extrapolation split); the measurements CSV (``measurements-<gpu>.csv`` beside it, written by
``kvsim calibrate``) holds every timed point. The shipped parameters were refitted on ALL points, so every
measured point here is in-sample (``held_out`` false) against them; the held-out quality shown comes from the
profile, where calibration recorded it. Read with kvsim's own profile and measurements readers (no torch).
"""

from pathlib import Path

from kvsim.calibrate.fit import layer_with_overlap_s
from kvsim.calibrate.measurements import FEATURE_COLUMNS, load_measurements
from kvsim.errors import KvsimError
from kvsim.simulator.cost.profile import GEMM_OPS, Profile, load_profile


def measurements_beside(profile_path: Path) -> Path | None:
    """The raw CSV of a profile, when it sits beside it: ``profile-<key>.json`` -> ``measurements-<key>.csv``
    (what ``kvsim calibrate`` writes), or ``<key>.json`` -> ``measurements-<key>.csv`` / ``<key>.csv``."""
    stem = profile_path.stem
    key = stem[len("profile-") :] if stem.startswith("profile-") else stem
    for name in (f"measurements-{key}.csv", f"{stem}.csv"):
        candidate = profile_path.with_name(name)
        if candidate.is_file():
            return candidate
    return None


def quality_in_words(profile: Profile) -> dict[str, str]:
    """term -> its recorded held-out quality as a short line, for fitted terms only. Per-op GEMMs without a fit
    of their own show the pooled ``gemm`` fit's quality, saying so."""
    words = {}
    for name, term in profile.terms.items():
        fit = term.fit
        if fit is None or fit.mape_holdout_pct is None:
            continue
        line = f"held-out MAPE {fit.mape_holdout_pct:.2f}% (n={fit.n_holdout})"
        if fit.mape_extrapolation_pct is not None:
            line += f", extrapolation {fit.mape_extrapolation_pct:.2f}%"
        words[name] = line
    if "gemm" in words:
        for op in GEMM_OPS:
            words.setdefault(f"gemm.{op}", "pooled gemm fit: " + words["gemm"])
    return words


def quality_table(profile: Profile) -> tuple[list[str], list[list]]:
    """One row per term: form, where its numbers come from, and its held-out fit quality."""
    header = [
        "Term",
        "Form",
        "Source",
        "Points",
        "Held-out MAPE (%)",
        "Held-out R²",
        "Extrapolation MAPE (%)",
        "Extrapolation R²",
    ]
    body = []
    for name, term in profile.terms.items():
        fit = term.fit
        body.append(
            [
                name,
                term.form,
                term.source or profile.source,
                fit.n if fit else None,
                fit.mape_holdout_pct if fit else None,
                fit.r2_holdout if fit else None,
                fit.mape_extrapolation_pct if fit else None,
                fit.r2_extrapolation if fit else None,
            ]
        )
    return header, body


def calibration_rows(profile: Profile, measurements_path: Path) -> list[dict]:
    """Measured median against the profile's prediction for every point of a fitted (non-table) term."""
    rows = []
    for m in load_measurements(measurements_path).rows:
        term = profile.terms.get(m["term"])
        if term is None and m["term"].startswith("gemm."):
            term = profile.terms.get(
                "gemm"
            )  # per-op GEMM rows pool into the generic term when not fitted alone
        if term is None or term.form == "table" or term.fit is None or term.source == "roofline":
            continue
        features = {k: float(m[k]) for k in FEATURE_COLUMNS if m.get(k) not in (None, "")}
        try:
            if m["term"] == "launch_overlap":  # a whole layer: its kernels timed alone, less the overlap
                predicted_s = layer_with_overlap_s(
                    features["parts_s"], features["launches"], term.params["const_s"]
                )
            else:
                predicted_s = term.predict(**features)
        except KeyError as exc:
            raise KvsimError(
                f"{measurements_path}: a {m['term']} row lacks feature {exc}; remeasure or refit"
            ) from exc
        rows.append(
            {
                "op": m["term"],
                "measured_s": float(m["median_s"]),
                "predicted_s": predicted_s,
                "held_out": False,
            }
        )
    return rows


def read_profile(path: Path) -> Profile:
    """The profile at ``path``, validated by kvsim's reader (a bad file is a KvsimError naming it)."""
    return load_profile(path)
