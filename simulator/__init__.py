"""kvsim.simulator: the SimPy serving engine, schedulers, KV allocators and cost models.

This package never imports torch, triton or plotly, and importing it does not import simpy either, so that
``kvsim.calibrate`` (which runs on the GPU machine, where simpy is absent) can use its specs and profile schema.
The Python API is loaded on first use::

    from kvsim.simulator import SimConfig, simulate, RunResult
"""

from __future__ import annotations

import importlib

# public name -> module that defines it (imported lazily: simulate pulls in simpy)
_API = {
    "SimConfig": "kvsim.simulator.config",
    "simulate": "kvsim.simulator.run",
    "RunResult": "kvsim.simulator.run",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'kvsim.simulator' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
