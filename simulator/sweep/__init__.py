"""``kvsim sweep`` as a Python API: a grid of config fields, each point a full simulation (DESIGN §7).

    spec = SweepSpec(Grid.from_options(["allocator=paged,vattention", "rate=1:4:1"]), base={"trace": "sharegpt"})
    result = run_sweep(spec, simulate_point, Path("out"), jobs=2)

The machinery (grid, engine, backends, table) takes any ``PointRunner``; ``point.simulate_point`` is the one
that runs kvsim's simulator.
"""

from kvsim.simulator.sweep.backends import PointRunner, PointTask
from kvsim.simulator.sweep.engine import SweepResult, SweepSpec, run_sweep
from kvsim.simulator.sweep.grid import Grid, parse_grid_option

__all__ = ["Grid", "PointRunner", "PointTask", "SweepResult", "SweepSpec", "parse_grid_option", "run_sweep"]
