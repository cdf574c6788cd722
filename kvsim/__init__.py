"""kvsim: a discrete-event simulator of LLM serving with a kernel-calibrated cost model.

Importing kvsim is cheap and never imports torch, triton or plotly; the subpackages are
``kvsim.traces``, ``kvsim.simulator``, ``kvsim.calibrate``, ``kvsim.kernels`` and ``kvsim.reports``.
"""

from kvsim.errors import KvsimError

__version__ = "0.1.0"
__all__ = ["KvsimError", "__version__"]
