"""The H100-SXM profile's elementwise terms, fitted on Vidur's H100 operator times (cited, not measured by kvsim).

kvsim's own H100 profile (``profile-h100-sxm.json``, measured 2026-11-26) predates the cost model's RMSNorm,
rotary, activation, residual-add and embedding terms. Vidur published those operators on its H100 (a DGX H100,
as its paper states) for Llama-2-7B and CodeLlama-34B at TP 1, 2, 4, 8 and 1 to 4,096 tokens
(``vidur/compute/h100/``, the files the cross-check reads). They are fitted here exactly as the A100's are
(``vidur.build_a100_profile``: features from ``vidur.operator_rows``, one relative-error fit per term pooled over
both models and every TP, held-out MAPE and R² from ``calibrate/fit.py``) and written into the H100 profile, each
marked ``"source": "cited"`` with the provenance in the profile's ``extra["cited"]``:

    python -m kvsim.calibrate.vidur h100-elementwise    # rewrites those five terms of profile-h100-sxm.json

Re-run it after refitting the H100 profile from its raw measurements (``kvsim calibrate --fit-only``), which
knows nothing of Vidur. Vidur measured no KV-cache write or sampling on its own: those stay the roofline's,
borrowed when the profile is loaded (``roofline.with_roofline_whole_step_terms``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kvsim.calibrate.vidur import (
    DATA_DIR,
    ELEMENTWISE_OPERATORS,
    H100_MODELS,
    MEASURED_BY,
    PROFILES_DIR,
    VIDUR_COMMIT,
    _by_term,
    _fit,
    operator_rows,
)
from kvsim.simulator.cost.profile import Profile, Term, load_profile

H100_PROFILE_FILE = "profile-h100-sxm.json"
H100_PROVENANCE = (
    "Vidur, H100 (DGX H100), microsoft/vidur@7d47513, 2024; Llama-2-7B and CodeLlama-34B operators at TP 1-8, "
    "1-4,096 tokens; cited, not measured by kvsim"
)
NOTES_MARK = "; cited from Vidur's H100: "  # what the notes gain (replaced, not repeated, on a re-run)
ELEMENTWISE_TERMS = tuple(dict.fromkeys(ELEMENTWISE_OPERATORS.values()))


def build_h100_elementwise_terms(seed: int = 0, data_dir: Path = DATA_DIR) -> tuple[dict[str, Term], int]:
    """({term: fit marked ``cited``} for the five elementwise terms, number of Vidur rows fitted on)."""
    rows = [
        row
        for rel, preset in H100_MODELS.items()
        for row in operator_rows(rel, preset, data_dir)
        if row["term"] in ELEMENTWISE_TERMS
    ]
    groups = _by_term(rows)
    terms = {
        name: dataclasses.replace(_fit(name, groups[name], seed), source="cited")
        for name in ELEMENTWISE_TERMS
    }
    return terms, len(rows)


def merge_h100_elementwise(profile: Profile, seed: int = 0, data_dir: Path = DATA_DIR) -> Profile:
    """``profile`` (kvsim's H100) with the five elementwise terms from Vidur's H100 replacing any it had."""
    terms, num_rows = build_h100_elementwise_terms(seed, data_dir)
    notes = profile.notes.split(NOTES_MARK)[0] + (
        f"{NOTES_MARK}{', '.join(terms)} fitted by kvsim on {num_rows} operator measurements published by "
        f"Vidur (microsoft/vidur@7d47513)"
    )
    cited = {
        "provenance": H100_PROVENANCE,
        "terms": list(terms),
        "measured_by": MEASURED_BY,
        "vidur_commit": VIDUR_COMMIT,
        "license": "MIT (calibrate/profiles/vidur/LICENSE)",
        "data": [f"calibrate/profiles/vidur/{rel}" for rel in H100_MODELS],
        "operators": ELEMENTWISE_OPERATORS,
        "n": num_rows,
        "seed": seed,
        "command": "python -m kvsim.calibrate.vidur h100-elementwise",
    }
    return dataclasses.replace(
        profile, terms={**profile.terms, **terms}, notes=notes, extra={**profile.extra, "cited": cited}
    )


def merge_into(
    path: Path = PROFILES_DIR / H100_PROFILE_FILE, seed: int = 0, data_dir: Path = DATA_DIR
) -> Path:
    """Rewrite the profile file at ``path`` with the merged terms; returns its path."""
    return merge_h100_elementwise(load_profile(path), seed, data_dir).save(path)
