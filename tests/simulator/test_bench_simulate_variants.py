"""benchmarks/bench_simulate.py --set: a variant of a benchmark case (the speed comparisons of
docs/performance.md), its own row in the results, and bad items refused before any run."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "bench_simulate.py"


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script(SCRIPT)


def test_values_are_json_where_they_parse_and_strings_otherwise(bench):
    import argparse

    changes = bench.config_changes(
        argparse.ArgumentParser(),
        ["engine_overhead=false", "max_num_seqs=64", "allocator=paged:enable_prefix_caching=false"],
    )
    assert changes == {
        "engine_overhead": False,
        "max_num_seqs": 64,
        "allocator": "paged:enable_prefix_caching=false",
    }


def test_a_variant_is_its_own_row_and_runs_with_its_change(bench):
    assert bench.case_name("synthetic", 200, {}) == "synthetic-200"
    assert (
        bench.case_name("azure-conv", 19366, {"engine_overhead": False}) == "azure-conv engine_overhead=false"
    )
    row = bench.run_case("synthetic", 200, {"scheduler": "vllm-v0"})
    assert row["case"] == 'synthetic-200 scheduler="vllm-v0"'
    assert row["config"]["scheduler"] == "vllm-v0" and row["num_finished"] == 200


@pytest.mark.parametrize(
    "item, message",
    [
        ("engine_overhead", "give FIELD=VALUE"),
        ("no_such_field=1", "no_such_field"),
        ("scheduler=bogus", "unknown scheduler 'bogus'"),
        ("allocator=bogus:x=1", "unknown allocator 'bogus'"),  # checked when the run builds it
    ],
)
@pytest.mark.parametrize("script", ["bench_simulate.py", "profile_simulate.py"])
def test_a_bad_item_is_refused_by_name_before_any_run(script, item, message):
    options = ["--no-write", "--set", item] if script == "bench_simulate.py" else ["--set", item]
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT.parent / script),
            "--case",
            "synthetic",
            "--num-requests",
            "10",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
