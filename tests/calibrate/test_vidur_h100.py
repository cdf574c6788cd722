"""The H100 profile's elementwise terms are fitted on Vidur's H100 operator times by the shipped command, marked
as cited, with their held-out error; re-running the command changes nothing."""

import dataclasses

from fitted_json import differences

from kvsim.calibrate import vidur
from kvsim.calibrate.vidur_h100 import (
    ELEMENTWISE_TERMS,
    H100_PROFILE_FILE,
    NOTES_MARK,
    build_h100_elementwise_terms,
    merge_h100_elementwise,
)
from kvsim.simulator.cost import load_profile, make_cost_model

SHIPPED = vidur.PROFILES_DIR / H100_PROFILE_FILE


def test_the_shipped_h100_elementwise_terms_are_what_the_build_fits_on_vidurs_h100_files():
    terms, num_rows = build_h100_elementwise_terms()
    shipped = load_profile(SHIPPED)
    # Llama-2-7B and CodeLlama-34B, TP 1-8, 261 token counts each: 1,044 rows per operator per model
    assert num_rows == 2 * 6 * 1044
    for name in ELEMENTWISE_TERMS:
        assert (
            differences(dataclasses.asdict(terms[name]), dataclasses.asdict(shipped.terms[name]), rel=1e-6)
            == []
        )
        assert terms[name].source == "cited"
        fit = terms[name].fit
        assert fit.n >= 2 * 1044 and fit.mape_holdout_pct is not None and fit.r2_holdout > 0.9


def test_the_cited_terms_say_whose_measurements_they_are():
    cited = load_profile(SHIPPED).extra["cited"]
    assert cited["terms"] == list(ELEMENTWISE_TERMS)
    assert cited["vidur_commit"] == vidur.VIDUR_COMMIT and "not measured by kvsim" in cited["provenance"]
    assert cited["data"] == [f"calibrate/profiles/vidur/{rel}" for rel in vidur.H100_MODELS]
    description = make_cost_model("llama-3-8b", "h100-sxm").description
    assert f"cited ({cited['provenance']}): {', '.join(ELEMENTWISE_TERMS)}" in description


def test_merging_into_the_measured_profile_reproduces_the_shipped_file_and_is_idempotent():
    shipped = load_profile(SHIPPED)
    assert differences(merge_h100_elementwise(shipped).to_dict(), shipped.to_dict(), rel=1e-6) == []
    # kvsim's own measured profile as `kvsim calibrate --fit-only` writes it: no elementwise terms
    measured = dataclasses.replace(
        shipped,
        terms={k: t for k, t in shipped.terms.items() if k not in ELEMENTWISE_TERMS},
        notes=shipped.notes.split(NOTES_MARK)[0],
        extra={k: v for k, v in shipped.extra.items() if k != "cited"},
    )
    assert differences(merge_h100_elementwise(measured).to_dict(), shipped.to_dict(), rel=1e-6) == []
