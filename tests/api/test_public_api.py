"""The top-level ``kvsim`` API: cheap to import, and every advertised name resolves and works."""

import subprocess
import sys

import pytest

import kvsim


def test_importing_kvsim_loads_no_heavy_dependency():
    code = "import sys, kvsim; print(sorted(m for m in ('torch', 'triton', 'simpy', 'plotly') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", sorted(kvsim._LAZY))
def test_every_public_name_resolves(name):
    assert getattr(kvsim, name) is not None


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'simulat'"):
        kvsim.simulat  # noqa: B018


def test_the_docstring_example_runs(tmp_path):
    trace = kvsim.load_trace("azure-conv", rate=8.0)
    trace = trace.take(range(50), trace.provenance)
    result = kvsim.simulate(kvsim.SimConfig(model="llama-3-8b", gpu="h100-sxm", allocator="paged"), trace)
    assert result.summary["num_requests"] == 50
    result.write(tmp_path / "run")
    out = kvsim.write_report([tmp_path / "run"], tmp_path / "report.html")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
