"""Where points run: in this process, a local process pool, or a Ray cluster. All three run the same
``run_point`` on the same tasks, so the outcomes are identical; only the completion order differs, and the
sweep puts rows back in grid order.

A point's files travel back inside its outcome (not through a shared disk), so a Ray cluster whose workers
cannot see this machine's disk still fills the local run folders.
"""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvsim.errors import KvsimError
from kvsim.simulator.sweep.grid import Value

# config (the point's full configuration, seed included), out_dir (an empty folder for its run files)
# -> the run's summary dict (docs/outputs.md). Must be a module-level function: it is pickled to workers.
PointRunner = Callable[[dict[str, Value], Path], dict[str, Any]]


@dataclass(frozen=True)
class PointTask:
    """One point to run: its place in the grid, its swept values, and its full configuration."""

    index: int
    point_id: str
    point: dict[str, Value]  # the swept fields only
    config: dict[str, Value]  # base fields + swept fields + "seed"


def run_point(runner: PointRunner, task: PointTask) -> dict[str, Any]:
    """Run one point, catching its failure: a failed point is an outcome, not the end of the sweep."""
    with tempfile.TemporaryDirectory(prefix=f"kvsim-point-{task.point_id}-") as tmp:
        tmp_dir = Path(tmp)
        try:
            summary = runner(dict(task.config), tmp_dir)
            status, error, trace_text = "ok", "", ""
        except Exception as exc:
            summary = None
            status, error, trace_text = "error", f"{type(exc).__name__}: {exc}", traceback.format_exc()
        # relative path -> bytes, sorted so the outcome does not depend on the file system's listing order
        files = {
            str(path.relative_to(tmp_dir)): path.read_bytes()
            for path in sorted(tmp_dir.rglob("*"))
            if path.is_file()
        }
    if trace_text:
        files["error.txt"] = trace_text.encode()
    return {"index": task.index, "status": status, "error": error, "summary": summary, "files": files}


def execute(
    tasks: Sequence[PointTask], runner: PointRunner, *, jobs: int = 1, ray_address: str | None = None
) -> Iterator[dict[str, Any]]:
    """Yield each task's outcome as it completes (completion order; ``outcome["index"]`` says which)."""
    if not tasks:
        return
    if ray_address:
        yield from _execute_ray(tasks, runner, jobs=jobs, ray_address=ray_address)
    elif jobs == 1:
        for task in tasks:
            yield run_point(runner, task)
    else:
        yield from _execute_pool(tasks, runner, jobs=jobs)


def _execute_pool(tasks: Sequence[PointTask], runner: PointRunner, *, jobs: int) -> Iterator[dict[str, Any]]:
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
        pending = {pool.submit(run_point, runner, task) for task in tasks}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                try:
                    outcomes = [future.result() for future in done]
                except BrokenProcessPool as exc:  # a worker was killed (out of memory?), not a point's error
                    raise KvsimError(
                        f"a worker process died ({exc}); finished points are saved: rerun with --resume, "
                        "and fewer --jobs if memory ran out"
                    ) from exc
                # several may finish together: hand them on in grid order, for a stable progress log
                yield from sorted(outcomes, key=lambda outcome: outcome["index"])
        finally:
            for future in pending:
                future.cancel()


def _execute_ray(
    tasks: Sequence[PointTask], runner: PointRunner, *, jobs: int, ray_address: str
) -> Iterator[dict[str, Any]]:
    try:
        import ray
    except ImportError as exc:
        raise KvsimError(
            f"--ray-address {ray_address!r} needs Ray: pip install 'kvsim[ray]' (or drop --ray-address to use "
            "the local process pool)"
        ) from exc
    started_here = not ray.is_initialized()
    if started_here:
        # "local" starts a fresh single-machine instance of --jobs CPUs; anything else names a running cluster
        options: dict[str, Any] = {"num_cpus": jobs} if ray_address == "local" else {}
        try:
            ray.init(address=ray_address, include_dashboard=False, log_to_driver=False, **options)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise KvsimError(
                f"--ray-address {ray_address!r}: cannot connect to a Ray cluster ({exc}); start one with "
                "`ray start --head` and pass its address, or use 'local' for a one-machine instance"
            ) from exc
    try:
        remote_run_point = ray.remote(num_cpus=1)(run_point)
        runner_ref = ray.put(runner)
        pending = [remote_run_point.remote(runner_ref, task) for task in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                outcome = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # a worker or node died: run_point itself never raises
                raise KvsimError(
                    f"a Ray task died ({type(exc).__name__}: {exc}); finished points are saved: rerun with --resume"
                ) from exc
            yield outcome
    finally:
        if started_here:
            ray.shutdown()
