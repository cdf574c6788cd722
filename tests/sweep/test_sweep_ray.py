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


@pytest.mark.slow
def test_real_simulations_through_ray_match_the_process_pool_file_for_file(tmp_path):
    from kvsim.simulator.sweep.point import SEED_FIELDS, simulate_point

    grid = Grid.from_options(["allocator=paged;reserved:pow2;vattention:page_size=64KiB", "rate=2,8"])
    spec = SweepSpec(grid, base={"trace": "azure-code", "num_requests": 60}, seed_fields=SEED_FIELDS)
    run_sweep(spec, simulate_point, tmp_path / "pool", jobs=2)
    run_sweep(spec, simulate_point, tmp_path / "ray", jobs=2, ray_address="local")
    assert (tmp_path / "pool" / "results.csv").read_bytes() == (tmp_path / "ray" / "results.csv").read_bytes()
    pool_files = sorted(p.relative_to(tmp_path / "pool") for p in (tmp_path / "pool" / "points").rglob("*.*"))
    assert len(pool_files) == 6 * 5  # point.json + the four run-folder files, per point
    for relative in pool_files:
        assert (tmp_path / "pool" / relative).read_bytes() == (tmp_path / "ray" / relative).read_bytes()
