"""Run conformance cases on both sides and compare them (the API under ``kvsim conformance vllm``)."""

from __future__ import annotations

import time
from pathlib import Path

from kvsim.conformance.cases import case_names, make_case
from kvsim.conformance.compare import CaseReport, compare
from kvsim.conformance.kvsim_side import run_kvsim
from kvsim.conformance.vllm_side import run_vllm


def run_cases(names: list[str] | None, python: Path) -> tuple[list[CaseReport], dict]:
    """Reports for the named cases (all when None), and timings: ``vllm_s`` (the driver's wall time, vLLM's
    import included) and ``kvsim_s``."""
    names = names or case_names()
    cases = [make_case(name) for name in names]
    t0 = time.perf_counter()
    kvsim_results = [
        run_kvsim(case) for case in cases
    ]  # first: a kvsim error shows before vLLM's 10 s import
    t1 = time.perf_counter()
    vllm_results = run_vllm(cases, python)
    t2 = time.perf_counter()
    reports = [compare(case["name"], v, k) for case, v, k in zip(cases, vllm_results, kvsim_results)]
    version = vllm_results[0].get("vllm_version") if vllm_results else None
    return reports, {"vllm_s": t2 - t1, "kvsim_s": t1 - t0, "vllm_version": version}
