"""The kernels compile for an H100 (sm_90) without a GPU, and the fp16 decode/prefill builds neither spill
registers nor leave their loads unpipelined. The interpreter accepts code the GPU compiler rejects (DESIGN §8),
so this is the CPU-side guard for the GPU build; it runs Triton's real compiler in a subprocess (this test
process has TRITON_INTERPRET=1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_planned_launches_compile_for_sm90_without_spills(device):
    if device == "cuda":
        pytest.skip("on a GPU the other tests compile and run the kernels for real")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-m", "kvsim.kernels.compile_check", "--arch", "90", "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if "regs=" in line]
    assert len(lines) == 7  # decode paged/contiguous x splits 1/2 (+ one reduction), prefill paged/contiguous
    for line in lines:
        assert re.search(r"stack=0\b", line), f"register spills: {line}"
        if "reduce" not in line:
            assert not re.search(r"async_copies=0\b", line), f"loads not pipelined: {line}"
