"""The sweep engine over a cheap runner: ordering, pool vs serial, failures, resume, seeds (engine.py)."""

import csv
import json

import pytest
from sweep_toy_runner import counting_runner, toy_runner

from kvsim.errors import KvsimError
from kvsim.simulator.sweep import Grid, SweepSpec, run_sweep


def _spec(*options, base=None, seed=7, seed_fields=None):
    return SweepSpec(Grid.from_options(options), base=base or {}, seed=seed, seed_fields=seed_fields)


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_results_are_in_grid_order_with_swept_fields_and_metrics(tmp_path):
    spec = _spec("allocator=paged,reserved:pow2", "rate=1:3:1")
    result = run_sweep(spec, toy_runner, tmp_path)
    rows = _csv_rows(tmp_path / "results.csv")
    assert [(r["allocator"], r["rate"]) for r in rows] == [
        ("paged", "1"), ("paged", "2"), ("paged", "3"),
        ("reserved:pow2", "1"), ("reserved:pow2", "2"), ("reserved:pow2", "3"),
    ]  # fmt: skip
    assert list(rows[0])[:5] == ["index", "point_id", "allocator", "rate", "seed"]
    assert all(r["status"] == "ok" and r["num_requests"] == "100" for r in rows)
    assert rows[1]["ttft_mean_s"] == "1.0"
    assert result.num_run == 6 and result.num_failed == 0
    point_dir = tmp_path / rows[4]["run_dir"]
    assert json.loads((point_dir / "config.json").read_text())["allocator"] == "reserved:pow2"
    assert json.loads((point_dir / "point.json").read_text())["status"] == "ok"


def test_process_pool_gives_the_serial_results_byte_for_byte(tmp_path):
    spec = _spec("allocator=paged,vattention", "rate=0.5:5:0.5")
    run_sweep(spec, toy_runner, tmp_path / "serial", jobs=1)
    run_sweep(spec, toy_runner, tmp_path / "pool", jobs=2)
    serial = (tmp_path / "serial" / "results.csv").read_bytes()
    assert serial == (tmp_path / "pool" / "results.csv").read_bytes()
    assert serial.count(b"\n") == 21


def test_a_failed_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    spec = _spec("rate=1,2,3", "fail=false,true")
    result = run_sweep(spec, toy_runner, tmp_path, jobs=2)
    rows = _csv_rows(tmp_path / "results.csv")
    assert [r["status"] for r in rows] == ["ok", "error"] * 3
    assert rows[3]["error"] == "RuntimeError: point asked to fail (rate=2)"
    assert rows[3]["ttft_p99_s"] == ""  # no invented numbers for a failed point
    assert "Traceback" in (tmp_path / rows[3]["run_dir"] / "error.txt").read_text()
    assert result.num_failed == 3


def test_resume_skips_finished_points_and_reruns_failed_ones(tmp_path):
    log = tmp_path / "calls.log"
    out = tmp_path / "out"
    base = {"log_path": str(log)}
    first = _spec("rate=1,2,3", base={**base, "fail": False})
    run_sweep(first, counting_runner, out)
    assert log.read_text().split() == ["1", "2", "3"]

    with pytest.raises(KvsimError, match="--resume"):
        run_sweep(first, counting_runner, out)

    grown = _spec("rate=1,2,3,4", base={**base, "fail": False})
    result = run_sweep(grown, counting_runner, out, resume=True)
    assert log.read_text().split() == ["1", "2", "3", "4"]  # only the new point ran
    assert result.num_run == 1
    assert [r["rate"] for r in _csv_rows(out / "results.csv")] == ["1", "2", "3", "4"]


def test_resume_reruns_a_point_that_failed(tmp_path):
    spec = _spec("rate=1,2", "fail=true")
    run_sweep(spec, toy_runner, tmp_path)
    # rerunning with the same config fails again: each resume tries failed points once more
    again = run_sweep(spec, toy_runner, tmp_path, resume=True)
    assert again.num_run == 2 and again.num_failed == 2


def test_point_seed_depends_on_the_point_not_on_its_position_or_the_grid(tmp_path):
    small = run_sweep(_spec("rate=2,3"), toy_runner, tmp_path / "a")
    large = run_sweep(_spec("rate=3,2,1"), toy_runner, tmp_path / "b")
    seed_by_rate = {r["rate"]: (r["seed"], r["point_id"]) for r in large.rows}
    for row in small.rows:
        assert seed_by_rate[row["rate"]] == (row["seed"], row["point_id"])
    other_sweep_seed = run_sweep(_spec("rate=2,3", seed=8), toy_runner, tmp_path / "c")
    assert other_sweep_seed.rows[0]["seed"] != small.rows[0]["seed"]


def test_seed_fields_give_common_random_numbers_across_system_fields(tmp_path):
    spec = _spec("allocator=paged,vattention", "rate=1,2", base={"trace": "t"}, seed_fields=("trace",))
    seeds = {row["seed"] for row in run_sweep(spec, toy_runner, tmp_path).rows}
    assert len(seeds) == 1  # same trace: every allocator and rate sees the same request sample


def test_swept_seed_field_makes_replicates(tmp_path):
    result = run_sweep(_spec("seed=0,1,2", base={"rate": 1}), toy_runner, tmp_path)
    assert len({row["seed"] for row in result.rows}) == 3


def test_a_field_both_fixed_and_swept_is_an_error():
    with pytest.raises(KvsimError, match="both fixed"):
        _spec("rate=1,2", base={"rate": 3})


@pytest.mark.parametrize(
    "name, text",
    [
        (
            "sweep.toml",
            'seed = 3\n[base]\ntrace = "t"\n[grid]\nallocator = ["paged", "reserved:pow2"]\nrate = "1:2:1"\n',
        ),
        (
            "sweep.yaml",
            "seed: 3\nbase:\n  trace: t\ngrid:\n  allocator: [paged, reserved:pow2]\n  rate: 1:2:1\n",
        ),
    ],
)
def test_a_spec_file_toml_or_yaml(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    spec = SweepSpec.from_file(path)
    assert spec.seed == 3 and spec.base == {"trace": "t"} and len(spec.grid) == 4
    assert [dict(p) for p in spec.grid.points()][-1] == {"allocator": "reserved:pow2", "rate": 2}
    path.write_text("[grid\n" if name.endswith(".toml") else "grid: [\n")
    with pytest.raises(KvsimError, match=r"not valid (TOML|YAML)"):
        SweepSpec.from_file(path)
    path.write_text("grid = 3\n" if name.endswith(".toml") else "grid: 3\n")
    with pytest.raises(KvsimError, match="grid must be a table of fields"):
        SweepSpec.from_file(path)


def test_a_dead_worker_process_is_a_clear_error_and_finished_points_are_kept(tmp_path):
    from sweep_toy_runner import dying_runner

    with pytest.raises(KvsimError, match=r"worker process died.*--resume"):
        run_sweep(_spec("rate=1,2"), dying_runner, tmp_path, jobs=2)
    result = run_sweep(_spec("rate=1,2"), toy_runner, tmp_path, resume=True)
    assert [row["status"] for row in result.rows] == ["ok", "ok"]
