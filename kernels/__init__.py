"""kvsim.kernels: Triton attention kernels, paged and contiguous, decode and prefill.

The four kernels load on first use, so `python -m kvsim.kernels.bench` can still choose the interpreter:
Triton reads TRITON_INTERPRET when a kernel is decorated. On a machine without a GPU, set
TRITON_INTERPRET=1 before the first use to run the kernels on CPU tensors in Triton's interpreter.
"""

from __future__ import annotations

import importlib

# public name -> module that defines it
_EXPORTS = {
    "paged_decode_attention": "kvsim.kernels.decode",
    "contiguous_decode_attention": "kvsim.kernels.decode",
    "paged_prefill_attention": "kvsim.kernels.prefill",
    "contiguous_prefill_attention": "kvsim.kernels.prefill",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kvsim.kernels' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
