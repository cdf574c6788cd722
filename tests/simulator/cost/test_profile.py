"""Profile files: round trip, validation errors that name file and field, and the cost model built on one."""

import json

import pytest

import kvsim.simulator.cost as cost_module
from kvsim.errors import KvsimError
from kvsim.simulator.batch import Batch
from kvsim.simulator.cost import ProfileCostModel, load_profile, make_cost_model, roofline_profile
from kvsim.simulator.cost.profile import FitQuality, Profile, Term
from kvsim.simulator.cost.work import kv_bytes_per_token_layer
from kvsim.simulator.specs import GPUS, MODELS


def measured_profile() -> Profile:
    """A hand-made 'measured' profile with round numbers, so predictions are checkable by hand."""
    base = roofline_profile(GPUS["h100-sxm"])
    terms = dict(base.terms)
    terms["attn_decode_paged"] = Term(
        "linear",
        {"const_s": 4e-6, "kv_bytes": 4e-13, "num_seqs": 1e-7, "num_blocks": 2e-9},
        FitQuality(n=40, mape_holdout_pct=2.5),
    )
    terms["gemm"] = Term("max", {"const_s": 3e-6, "s_per_flop": 2e-15, "s_per_byte": 4e-13}, FitQuality(n=30))
    terms["allreduce"] = Term("linear", dict(base.terms["allreduce"].params), source="roofline")
    terms["vmm_map"] = Term("table", {"65536": 20e-6, "2097152": 40e-6})
    terms["vmm_unmap"] = Term("table", {"65536": 10e-6, "2097152": 12e-6})
    return Profile(base.device, "measured", terms, notes="test", model="Llama-2-7B")


def test_profile_round_trips_through_json(tmp_path):
    profile = measured_profile()
    assert load_profile(profile.save(tmp_path / "p.json")) == profile
    assert load_profile(roofline_profile(GPUS["l4"]).save(tmp_path / "r.json")) == roofline_profile(
        GPUS["l4"]
    )


def test_cost_model_on_a_profile_gives_the_fitted_numbers(tmp_path):
    path = measured_profile().save(tmp_path / "h100-sxm-test.json")
    cost = make_cost_model("llama-2-7b", "h100-sxm", profile=path)
    step = cost.step_time(Batch(num_decode_seqs=10, decode_kv_tokens=5000, decode_kv_blocks=320))
    kv_bytes = 5000 * kv_bytes_per_token_layer(MODELS["llama-2-7b"])
    assert step.attn_decode_s == pytest.approx(32 * (4e-6 + 4e-13 * kv_bytes + 1e-7 * 10 + 2e-9 * 320))
    # qkv GEMM at 10 tokens: memory bound, k=4096, n=3*4096
    qkv_s = 3e-6 + 4e-13 * 2 * (4096 * 12288 + 10 * (4096 + 12288))
    assert (
        measured_profile()
        .terms["gemm"]
        .predict(flops=2 * 10 * 4096 * 12288, bytes=2 * (4096 * 12288 + 10 * (4096 + 12288)))
        == qkv_s
    )
    assert cost.source == "measured"
    assert "from the roofline: " in cost.description and "allreduce" in cost.description
    assert "used for" not in cost.description
    assert (
        "(a H100-SXM profile used for A100-80GB)"
        in make_cost_model("llama-2-7b", "a100-80gb", profile=path).description
    )


def test_map_latency_interpolates_between_measured_page_sizes():
    cost = make_cost_model("llama-2-7b", "h100-sxm", profile="roofline")
    assert cost.map_latency_s(65536) is None  # roofline: no measurement
    cost = ProfileCostModel(measured_profile(), MODELS["llama-2-7b"])
    assert cost.map_latency_s(65536) == 20e-6
    assert cost.map_latency_s((65536 + 2097152) // 2) == pytest.approx(30e-6)
    assert cost.map_latency_s(4 * 2097152) == pytest.approx(160e-6)  # beyond: proportional to size
    assert cost.unmap_latency_s(2097152) == 12e-6


def _broken(tmp_path, edit) -> str:
    data = measured_profile().to_dict()
    edit(data)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(schema_version=99), "field 'schema_version' is 99"),
        (lambda d: d.update(source="guessed"), "field 'source' is 'guessed'"),
        (lambda d: d.pop("representative"), "field 'representative' must be true or false"),
        (lambda d: d["device"].pop("num_sms"), "field 'device.num_sms' is missing"),
        (lambda d: d.update(tp=0), "field 'tp' must be a positive integer"),
        (lambda d: d["device"].update(memory_bytes="80GB"), "field 'device.memory_bytes' must be a positive"),
        (lambda d: d["device"].update(gpu="h100"), "field 'device.gpu' is unknown"),
        (lambda d: d.update(model=7), "field 'model' must be a model name or null"),
        (lambda d: d["terms"].pop("allreduce"), "field 'terms.allreduce' is missing"),
        (lambda d: d["terms"].update(flash={}), "field 'terms.flash' is not a known term"),
        (lambda d: d["terms"]["gemm"].update(form="linear"), "field 'terms.gemm.form' is 'linear'"),
        (lambda d: d["terms"]["gemm"]["params"].pop("s_per_byte"), "field 'terms.gemm.params' has keys"),
        (
            lambda d: d["terms"]["gemm"]["params"].update(const_s=-1),
            "'terms.gemm.params.const_s' must be a finite",
        ),
        (
            lambda d: d["terms"]["vmm_map"]["params"].update(big=1e-5),
            "'terms.vmm_map.params.big' must be a page",
        ),
        (lambda d: d["terms"]["gemm"].update(fit={"mape": 3}), "field 'terms.gemm.fit' must be an object"),
        (  # ramps: only in a linear term's own features, with a positive knee
            lambda d: d["terms"]["attn_decode_paged"]["params"].update(kv_bytes_min_0=1e-12),
            "field 'terms.attn_decode_paged.params' has keys",
        ),
        (
            lambda d: d["terms"]["attn_decode_paged"]["params"].update(flops_min_1024=1e-12),
            "field 'terms.attn_decode_paged.params' has keys",
        ),
        (
            lambda d: d["terms"]["gemm"]["params"].update(flops_min_1024=1e-12),
            "field 'terms.gemm.params' has keys",
        ),
        (  # a ramp the cost model would not apply (it applies decode's kv_bytes ramps only)
            lambda d: d["terms"]["attn_prefill_paged"]["params"].update(flops_min_1024=1e-12),
            "field 'terms.attn_prefill_paged.params' has keys",
        ),
        (
            lambda d: d["terms"]["attn_decode_paged"]["params"].update(num_seqs_min_4=1e-7),
            "field 'terms.attn_decode_paged.params' has keys",
        ),
    ],
)
def test_a_malformed_profile_is_an_error_naming_file_and_field(tmp_path, edit, message):
    path = _broken(tmp_path, edit)
    with pytest.raises(KvsimError, match=r"profile .*broken\.json: ") as error:
        load_profile(path)
    assert message in str(error.value)


def test_unreadable_profiles_are_errors(tmp_path):
    with pytest.raises(KvsimError, match="cannot read profile"):
        load_profile(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(KvsimError, match="not valid JSON"):
        load_profile(tmp_path / "bad.json")
    with pytest.raises(KvsimError, match="cannot read profile"):
        make_cost_model("llama-2-7b", "h100-sxm", profile=tmp_path / "absent.json")


def test_make_cost_model_picks_the_shipped_measured_profile_of_the_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(cost_module, "_profiles_dir", lambda: tmp_path)
    assert make_cost_model("llama-2-7b", "h100-sxm").source == "roofline"  # nothing shipped
    smoke = measured_profile()
    smoke = Profile(smoke.device, "cpu-smoke", smoke.terms, representative=False)
    smoke.save(tmp_path / "h100-sxm-smoke.json")
    assert make_cost_model("llama-2-7b", "h100-sxm").source == "roofline"  # smoke runs never count
    measured_profile().save(tmp_path / "h100-sxm.json")
    measured_profile().save(tmp_path / "a100-80gb.json")
    assert cost_module.shipped_profile_path("H100-SXM") == tmp_path / "h100-sxm.json"
    assert make_cost_model("llama-2-7b", "h100-sxm").source == "measured"
    assert make_cost_model("llama-2-7b", "l4").source == "roofline"
    measured_profile().save(tmp_path / "profile-l4.json")  # as `kvsim calibrate` names it
    assert cost_module.shipped_profile_path("L4") == tmp_path / "profile-l4.json"


def test_per_op_gemm_fits_apply_only_to_the_profiled_model():
    profile = measured_profile()  # model="Llama-2-7B"
    terms = dict(profile.terms)
    terms["gemm.qkv"] = Term("max", {"const_s": 1e-3, "s_per_flop": 0.0, "s_per_byte": 0.0})
    batch = Batch(num_decode_seqs=1, decode_kv_tokens=10)
    own = ProfileCostModel(
        Profile(profile.device, "measured", terms, model="Llama-2-7B"), MODELS["llama-2-7b"]
    )
    pooled = ProfileCostModel(Profile(profile.device, "measured", terms), MODELS["llama-2-7b"])
    other = ProfileCostModel(
        Profile(profile.device, "measured", terms, model="Llama-2-7B"), MODELS["llama-2-13b"]
    )
    assert own.per_op_gemms and not pooled.per_op_gemms and not other.per_op_gemms
    assert own.step_time(batch).gemm_s > pooled.step_time(batch).gemm_s + 32 * 0.9e-3
    # The one rule, as Profile.gemm_term states it (the cost model and calibrate.crosscheck both use it).
    own_profile = Profile(profile.device, "measured", terms, model="Llama-2-7B")
    assert own_profile.gemm_term("qkv", "llama-2-7b") is terms["gemm.qkv"]  # names compare case-blind
    assert own_profile.gemm_term("o", "llama-2-7b") is terms["gemm"]  # no per-op fit of its own
    assert own_profile.gemm_term("qkv", "llama-2-13b") is terms["gemm"]
    assert own_profile.gemm_term("qkv", None) is terms["gemm"]
    assert Profile(profile.device, "measured", terms).gemm_term("qkv", "llama-2-7b") is terms["gemm"]
