"""A sweep's --out holds one sweep: --resume finishes the same spec (or a grown grid), a different spec or another
command's results are refused unless --overwrite clears them; point folders are written whole."""

import pytest
from sweep_toy_runner import toy_runner

from kvsim.errors import KvsimError
from kvsim.simulator.sweep import Grid, SweepSpec, run_sweep
from kvsim.simulator.sweep import engine as sweep_engine


def _spec(*options, base=None, seed=7):
    return SweepSpec(Grid.from_options(options), base=base or {}, seed=seed)


def _points(out):
    return sorted(p.name for p in (out / "points").iterdir())


def test_resume_with_a_different_spec_is_refused_unless_overwrite(tmp_path):
    """Before, --resume with another base ran the new points beside the old ones in points/."""
    out = tmp_path / "out"
    run_sweep(_spec("rate=1,2", base={"model": "llama-2-7b"}), toy_runner, out)
    old = _points(out)
    other = _spec("rate=1,2", base={"model": "llama-3-8b"})
    with pytest.raises(
        KvsimError, match=r"holds 2 point\(s\) that are not in this sweep.*--overwrite"
    ) as error:
        run_sweep(other, toy_runner, out, resume=True)
    assert "llama-3-8b" in str(error.value)  # the spec's difference is named
    assert _points(out) == old
    result = run_sweep(other, toy_runner, out, overwrite=True)
    assert result.num_run == 2 and not set(_points(out)) & set(old)


def test_resume_of_the_same_or_a_grown_grid_still_works(tmp_path):
    out = tmp_path / "out"
    run_sweep(_spec("rate=1,2"), toy_runner, out)
    assert run_sweep(_spec("rate=1,2"), toy_runner, out, resume=True).num_run == 0
    assert run_sweep(_spec("rate=1,2,3"), toy_runner, out, resume=True).num_run == 1


def test_a_sweep_into_another_commands_out_is_refused(tmp_path):
    out = tmp_path / "out"
    run_folder = out / "paged_block_size-16"
    run_folder.mkdir(parents=True)
    (run_folder / "summary.json").write_text("{}")
    with pytest.raises(
        KvsimError, match=r"holds results not written by this sweep.*run folders paged_block_size-16"
    ):
        run_sweep(_spec("rate=1"), toy_runner, out)
    assert run_sweep(_spec("rate=1"), toy_runner, out, overwrite=True).num_run == 1
    assert not run_folder.exists()


def test_resume_and_overwrite_together_are_refused(tmp_path):
    with pytest.raises(KvsimError, match="give one, not both"):
        run_sweep(_spec("rate=1"), toy_runner, tmp_path, resume=True, overwrite=True)


def test_an_interrupted_point_leaves_no_point_folder(tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_save = sweep_engine._save
    calls = []

    def interrupted(point_dir, task, outcome):
        calls.append(task.index)
        if len(calls) == 2:  # Ctrl-C while the second point's files are written
            outcome = {
                **outcome,
                "files": {**outcome["files"], "requests.csv": None},
            }  # write_bytes(None) fails
        return real_save(point_dir, task, outcome)

    monkeypatch.setattr(sweep_engine, "_save", interrupted)
    with pytest.raises(TypeError):
        run_sweep(_spec("rate=1,2"), toy_runner, out)
    assert len(_points(out)) == 1  # the first point, whole; nothing of the second, not even hidden
    monkeypatch.undo()
    assert run_sweep(_spec("rate=1,2"), toy_runner, out, resume=True).num_run == 1
