"""No kernel of a step costs 0 silently: the cost model of every shipped measured profile has every whole-step
term (norms, rotary, activation, residual adds, embedding, KV-cache write, sampling), the profile's own, cited or
borrowed from the GPU's roofline, and its description says which."""

import dataclasses
import json

import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.batch import Batch
from kvsim.simulator.cost import load_profile, make_cost_model, roofline_profile, shipped_profile_path
from kvsim.simulator.cost.profile import WHOLE_STEP_TERMS, Profile
from kvsim.simulator.cost.roofline import with_roofline_whole_step_terms
from kvsim.simulator.specs import GPUS, GpuSpec

SHIPPED = {name: path for name in GPUS if (path := shipped_profile_path(name)) is not None}
PARTS = ("rmsnorm_s", "rotary_s", "activation_s", "residual_add_s", "embedding_s", "kv_write_s", "sampling_s")


def _borrowed(description: str) -> list[str]:
    """The term names a cost model's description lists as "from the roofline: a, b (note), c"."""
    if "; from the roofline: " not in description:
        return []
    listed = description.split("; from the roofline: ", 1)[1].split(";")[0]
    return [name.split(" (")[0] for name in listed.split(", ")]


def _cited(description: str) -> list[str]:
    """The term names a cost model's description lists as "cited (whose measurements): a, b"."""
    if "; cited (" not in description:
        return []
    return description.split("; cited (", 1)[1].split("): ", 1)[1].split(";")[0].split(", ")


def test_the_measured_profiles_shipped_are_the_h100_h200_and_vidurs_a100():
    assert {path.name for path in SHIPPED.values()} == {
        "profile-h100-sxm.json",
        "profile-h200.json",
        "profile-a100-80gb-vidur.json",
    }


@pytest.mark.parametrize("gpu", sorted(SHIPPED))
def test_every_whole_step_term_is_the_profiles_own_cited_or_borrowed_and_said_so(gpu):
    own = load_profile(SHIPPED[gpu]).terms
    cost = make_cost_model("llama-3-8b", gpu)
    roofline = roofline_profile(GpuSpec.from_name(gpu)).terms
    borrowed, cited = _borrowed(cost.description), _cited(cost.description)
    for name in WHOLE_STEP_TERMS:
        term = cost.profile.terms[name]
        if name not in own:  # measured before the term existed: the roofline's estimate, marked and listed
            assert term.source == "roofline" and term.params == roofline[name].params
            assert name in borrowed and name not in cited
        else:
            assert term == own[name] and name not in borrowed
            assert (name in cited) is (term.source == "cited")
    step = cost.step_time(
        Batch(prefill_q_lens=(512,), prefill_kv_lens=(512,), num_decode_seqs=8, decode_kv_tokens=8000)
    )
    assert all(getattr(step, part) > 0 for part in PARTS), step


def test_which_terms_each_shipped_profile_borrows():
    borrowed = {
        gpu: [
            n
            for n in WHOLE_STEP_TERMS
            if make_cost_model("llama-3-8b", gpu).profile.terms[n].source == "roofline"
        ]
        for gpu in SHIPPED
    }
    assert borrowed["h200"] == list(WHOLE_STEP_TERMS)  # measured before any of them existed
    kv_write_sampling = ["kv_write_paged", "kv_write_contiguous", "sampling", "sampling_top_p"]
    assert borrowed["h100-sxm"] == kv_write_sampling  # elementwise cited from Vidur's H100
    assert borrowed["a100-80gb"] == kv_write_sampling  # Vidur timed no KV write or sampling


def test_a_cited_term_must_say_whose_measurements_it_was_fitted_on(tmp_path):
    data = json.loads(SHIPPED["h100-sxm"].read_text())
    assert data["terms"]["rmsnorm"]["source"] == "cited"
    del data["extra"]["cited"]
    with pytest.raises(KvsimError, match=r"extra\.cited\.provenance.*rmsnorm"):
        Profile.from_dict(data)
    data["terms"]["rmsnorm"]["source"] = "quoted"
    with pytest.raises(KvsimError, match=r"terms\.rmsnorm\.source.*cited"):
        Profile.from_dict(data)


def test_a_profile_with_every_term_borrows_nothing():
    gpu = GpuSpec.from_name("h100-sxm")
    profile = dataclasses.replace(roofline_profile(gpu), source="measured")
    assert with_roofline_whole_step_terms(profile, gpu) is profile
