"""kvsim: a discrete-event simulator of LLM serving with a kernel-calibrated cost model.

The public API, imported lazily so that ``import kvsim`` stays cheap and never imports torch, triton, simpy
or plotly::

    import kvsim
    trace = kvsim.load_trace("azure-conv", rate=8.0)
    result = kvsim.simulate(kvsim.SimConfig(model="llama-3-8b", gpu="h100-sxm", allocator="paged"), trace)
    result.write("runs/x")
    kvsim.write_report(["runs/x"], "report.html")

The subpackages are ``kvsim.traces``, ``kvsim.simulator``, ``kvsim.calibrate``, ``kvsim.kernels`` and
``kvsim.reports``.
"""

import importlib

from kvsim.errors import KvsimError

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "load_trace": "kvsim.traces",
    "Trace": "kvsim.traces",
    "Request": "kvsim.traces",
    "SimConfig": "kvsim.simulator.config",
    "simulate": "kvsim.simulator.run",
    "RunResult": "kvsim.simulator.run",
    "ModelSpec": "kvsim.simulator.specs",
    "GpuSpec": "kvsim.simulator.specs",
    "make_cost_model": "kvsim.simulator.cost",
    "make_allocator": "kvsim.simulator.allocators",
    "write_report": "kvsim.reports",
}

__all__ = ["KvsimError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kvsim' has no attribute {name!r}")
