"""The same sweep through a local Ray instance and through the process pool gives identical results."""

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'kvsim[ray]'")

import sweep_toy_runner  # noqa: E402
from ray import cloudpickle  # noqa: E402 - Ray pickles with its own copy
from sweep_toy_runner import toy_runner  # noqa: E402

from kvsim.simulator.sweep import Grid, SweepSpec, run_sweep  # noqa: E402


def test_ray_and_process_pool_give_identical_results(tmp_path):
    # Ray's workers cannot import the tests folder: send the runner's module by value
    cloudpickle.register_pickle_by_value(sweep_toy_runner)
    spec = SweepSpec(
        Grid.from_options(["allocator=paged,vattention", "rate=1:5:1", "fail=false,true"]), seed=1
    )
    run_sweep(spec, toy_runner, tmp_path / "pool", jobs=2)
    run_sweep(spec, toy_runner, tmp_path / "ray", jobs=2, ray_address="local")
    pool = (tmp_path / "pool" / "results.csv").read_bytes()
    assert pool == (tmp_path / "ray" / "results.csv").read_bytes()
    assert pool.count(b"\n") == 21
    for point_dir in (tmp_path / "pool" / "points").iterdir():
        ray_dir = tmp_path / "ray" / "points" / point_dir.name
        assert (point_dir / "point.json").read_bytes() == (ray_dir / "point.json").read_bytes()
