"""The cost model's uncertain terms: where their numbers come from, and what one case changes."""

import csv
import dataclasses
import glob
import json
from pathlib import Path

import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.batch import Batch
from kvsim.simulator.config import SimConfig
from kvsim.simulator.cost import make_cost_model
from kvsim.simulator.cost.paged_factor import KVSIM_KERNEL_MEASURED, paged_decode_factor
from kvsim.simulator.cost.profile import Profile, load_profile
from kvsim.simulator.cost.uncertainty import VMM_MAP_RANGE_S

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "benchmarks" / "results"
DECODE = Batch(num_decode_seqs=32, decode_kv_tokens=32 * 1000, decode_kv_blocks=32 * 63)


@pytest.mark.parametrize("gpu", sorted(KVSIM_KERNEL_MEASURED))
def test_kvsim_kernel_factor_is_what_the_gpu_sessions_measured(gpu):
    nominal, low, high = KVSIM_KERNEL_MEASURED[gpu]
    headline = []  # paged/contiguous at the summary's headline shape, one per loan
    for path in sorted(RESULTS.glob(f"kernel_bench_summary-{gpu}*.txt")):
        line = next(x for x in path.read_text().splitlines() if x.startswith("paged decode,"))
        headline.append(float(line.split("paged/contiguous ")[1].split()[0]))
    assert headline and round(sum(headline) / len(headline), 2) == nominal
    with (RESULTS / f"kernel_bench-{gpu}.csv").open() as f:
        ratios = [
            float(r["paged_over_contiguous"])
            for r in csv.DictReader(f)
            if r["kind"] == "decode" and r["paged_over_contiguous"] and int(r["bytes"]) >= 2**30
        ]
    assert (min(ratios), max(ratios)) == (low, high)


def test_vmm_map_range_is_the_loans_spread():
    p50s = []
    for path in glob.glob(str(RESULTS / "vmm_overlap*.json")):
        for workload in json.loads(Path(path).read_text())["workloads"].values():
            p50s += [workload["map_idle_us"]["p50"], workload["map_busy_us"]["p50"]]
    assert (min(p50s) * 1e-6, max(p50s) * 1e-6) == pytest.approx(VMM_MAP_RANGE_S)


def test_an_unmeasured_gpu_carries_the_measured_ratio_over_and_says_so():
    factor = paged_decode_factor("A100-40GB")
    assert (factor.nominal, factor.low, factor.high) == (1.0, 0.901, 1.146)
    assert "not measured on the A100-40GB: carried over" in factor.basis
    assert paged_decode_factor("A100-40GB", "vllm-2023").nominal == 1.23


def _decode_per_byte(cost, kernel: str) -> float:
    """The decode kernel's seconds per KV token of one layer (its line's slope past every ramp knee)."""
    return (cost._decode_paged if kernel == "paged" else cost._decode_contiguous)[5][-1][1]


def test_vidur_a100_keeps_its_measured_paged_kernel_and_derives_the_contiguous_one():
    nominal = make_cost_model("llama-2-7b", "a100-80gb")
    assert nominal.profile.extra["carried_over"] == ["attn_decode_contiguous", "attn_prefill_contiguous"]
    # the default factor, 1.0: the file's carried-over contiguous kernel as it is
    assert _decode_per_byte(nominal, "contiguous") == _decode_per_byte(nominal, "paged")
    old = make_cost_model("llama-2-7b", "a100-80gb", paged_decode_factor="vllm-2023")
    assert _decode_per_byte(old, "paged") == _decode_per_byte(nominal, "paged")  # measured stays measured
    assert _decode_per_byte(old, "contiguous") == pytest.approx(_decode_per_byte(nominal, "paged") / 1.23)


def test_a_factor_is_refused_where_both_decode_kernels_are_measured():
    with pytest.raises(KvsimError, match="measures both the paged and the contiguous decode kernel"):
        make_cost_model("llama-3-8b", "h100-sxm", paged_decode_factor="vllm-2023")
    assert "paged_decode_factor" not in {
        t.name for t in make_cost_model("llama-3-8b", "h100-sxm").uncertain_terms
    }


def test_a_case_scales_the_terms_it_names_and_nothing_else():
    nominal = make_cost_model("llama-2-7b", "a100-80gb")
    case = make_cost_model("llama-2-7b", "a100-80gb", term_values={"gemm_scale": 1.07})
    a, b = nominal.step_time(DECODE), case.step_time(DECODE)
    assert b.gemm_s == pytest.approx(1.07 * a.gemm_s, rel=1e-12)
    assert (b.attn_decode_s, b.overhead_s) == (a.attn_decode_s, a.overhead_s)
    slow = make_cost_model(
        "llama-2-7b", "a100-80gb", profile="roofline", term_values={"decode_attn_bw_efficiency": 0.4}
    )
    fast = make_cost_model("llama-2-7b", "a100-80gb", profile="roofline")
    launches_s = 32 * 5e-6
    ratio = (slow.step_time(DECODE).attn_decode_s - launches_s) / (
        fast.step_time(DECODE).attn_decode_s - launches_s
    )
    assert ratio == pytest.approx(2.0)  # half the efficiency (0.8 -> 0.4): twice the time per byte


def test_a_run_records_its_uncertain_terms_and_refuses_unknown_names():
    from kvsim.simulator.run import simulate
    from kvsim.traces import load_trace, take_first

    trace = take_first(load_trace("azure-conv"), 20)
    result = simulate(SimConfig(allocator="vattention", term_values="vmm_map_latency_s=5e-05"), trace)
    recorded = result.resolved["cost_model"]
    assert recorded["term_values"] == {"vmm_map_latency_s": 5e-05}
    names = [t["name"] for t in recorded["uncertain_terms"] if not t["name"].startswith("engine.")]
    assert names[-2:] == ["paged_decode_factor", "vmm_map_latency_s"]
    assert result.resolved["allocator_config"]["map_latency_s"] == 5e-05
    with pytest.raises(KvsimError, match="vmm_map_latency_s not an uncertain term of this run"):
        simulate(SimConfig(allocator="paged", term_values="vmm_map_latency_s=5e-05"), trace)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"paged_decode_factor": "vllm-2024"}, "give a number"),
        ({"paged_decode_factor": 9.0}, "between 0.5 and 4"),
        ({"term_values": "gemm_scale"}, "is not NAME=VALUE"),
        ({"term_values": "gemm_scale=fast"}, "is not a number"),
        ({"term_values": "gemm_scale=1,gemm_scale=2"}, "given twice"),
    ],
)
def test_bad_uncertainty_fields_are_refused_by_name(fields, message):
    with pytest.raises(KvsimError, match=message):
        SimConfig(**fields)


def test_a_profile_terms_uncertainty_field_is_optional_and_used_when_given(tmp_path):
    data = json.loads((ROOT / "calibrate" / "profiles" / "profile-h100-sxm.json").read_text())
    assert "uncertainty" not in data["terms"]["gemm"]  # an older profile: still loads, range from its MAPE
    data["terms"]["attn_decode_paged"]["uncertainty"] = {
        "low": 0.8,
        "high": 1.3,
        "kind": "cited",
        "basis": "a paper",
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    profile = load_profile(path)
    assert Profile.from_dict(profile.to_dict()) == profile
    terms = {t.name: t for t in make_cost_model("llama-3-8b", "h100-sxm", profile=path).uncertain_terms}
    decode = terms["attn_decode_paged_scale"]
    assert (decode.low, decode.high, decode.kind) == (0.8, 1.3, "cited")
    data["terms"]["gemm"]["uncertainty"] = {"low": 1.2, "high": 1.3, "kind": "measured", "basis": "x"}
    path.write_text(json.dumps(data))
    with pytest.raises(KvsimError, match="0 < low <= 1 <= high"):
        load_profile(path)


def test_roofline_profile_saved_and_loaded_is_unchanged(tmp_path):
    from kvsim.simulator.cost import roofline_profile
    from kvsim.simulator.specs import GPUS

    profile = roofline_profile(GPUS["l4"])
    assert load_profile(profile.save(tmp_path / "r.json")) == profile
    assert dataclasses.replace(profile).terms["attn_decode_paged"].uncertainty is None
