"""The Python API: lazy exports, config validation, prefix caching through the scheduler."""

from __future__ import annotations

import subprocess
import sys

import pytest
from simtools import make_trace, run

from kvsim.errors import KvsimError
from kvsim.simulator import SimConfig


def test_importing_kvsim_simulator_does_not_import_simpy():
    code = "import sys, kvsim.simulator, kvsim.simulator.specs; assert 'simpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("scheduler", "fifo", "unknown scheduler"),
        ("router", "random", "unknown router"),
        ("max_num_seqs", 0, "max_num_seqs"),
        ("gpu_memory_utilization", 1.5, "gpu_memory_utilization"),
        ("preemption_mode", "drop", "preemption_mode"),
        ("tp", True, "config key tp must be an integer, got True"),
        ("seed", "7", "config key seed must be an integer, got '7' .str.; write it without quotes"),
        ("watermark", "0.01", "config key watermark must be a number \\(or leave it unset\\), got '0.01'"),
        ("allocator", 3, "config key allocator must be a string"),
    ],
)
def test_bad_config_field_is_named(field, value, message):
    with pytest.raises(KvsimError, match=message):
        SimConfig(**{field: value})


def test_config_takes_numpy_scalars_and_integers_for_numbers():
    import numpy as np

    config = SimConfig(
        scheduler="vllm-v0", kv_capacity_bytes=np.int64(1 << 30), swap_space_gib=4, watermark=np.float64(0.02)
    )
    assert config.kv_capacity_bytes == 1 << 30 and config.swap_space_gib == 4 and config.watermark == 0.02
    assert (
        SimConfig(scheduler="vllm-v0", max_new_tokens=64).max_new_tokens == "64"
    )  # a TOML integer for TGI's option


def test_unknown_config_key_lists_the_known_ones():
    with pytest.raises(KvsimError, match="max_num_seqs"):
        SimConfig.from_dict({"max_num_seq": 3})


def test_vllm_defaults_resolve_the_token_budget():
    assert SimConfig(scheduler="vllm-v0").resolved_max_num_batched_tokens(4096) == 4096
    assert SimConfig(scheduler="vllm-v0").resolved_max_num_batched_tokens(1024) == 2048
    assert (
        SimConfig(scheduler="vllm-v0", enable_chunked_prefill=True).resolved_max_num_batched_tokens(4096)
        == 512
    )


def test_prefix_cache_hit_skips_the_shared_prompt_compute():
    # Two 1024-token prompts sharing their first 512-token prefix block; the second arrives after the first
    # finished, so its first 512 tokens come from the cache.
    trace = make_trace([(0.0, 1024, 2), (5.0, 1024, 2)], prefix_block_hashes=[(1, 2), (1, 3)])
    result = run(trace, allocator="paged:enable_prefix_caching=true")
    assert result.recorder.num_cached_tokens.tolist() == [0, 512]
    assert run(trace).recorder.num_cached_tokens.tolist() == [0, 0]


def test_simulate_collects_young_objects_less_often_and_restores_the_setting(monkeypatch):
    """simulate() runs with a young-generation threshold of GC_YOUNG_THRESHOLD and restores the process's;
    a process that collects less often, or never, keeps its setting."""
    import gc

    import simpy

    from kvsim.simulator import run as run_module

    during = []
    env_run = simpy.Environment.run

    def watched(self, *args, **kwargs):
        during.append(gc.get_threshold())
        return env_run(self, *args, **kwargs)

    monkeypatch.setattr(simpy.Environment, "run", watched)
    before = gc.get_threshold()
    try:
        for threshold, expected in ((700, 50_000), (100_000, 100_000), (0, 0)):
            gc.set_threshold(threshold, 10, 10)
            run(make_trace([(0.0, 100, 20), (0.1, 50, 5)]))
            assert during.pop() == (expected, 10, 10)
            assert gc.get_threshold() == (threshold, 10, 10)
    finally:
        gc.set_threshold(*before)
    assert run_module.GC_YOUNG_THRESHOLD == 50_000
