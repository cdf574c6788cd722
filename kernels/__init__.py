"""kvsim.kernels: Triton attention kernels, paged and contiguous, decode and prefill.

Importing this package imports torch and triton (kvsim itself never does). On a machine without a GPU, set
TRITON_INTERPRET=1 before the import to run the kernels on CPU tensors in Triton's interpreter.
"""

from kvsim.kernels.validation import interpreting

if interpreting():
    from kvsim.kernels import interpreter_compat

    interpreter_compat.apply()

from kvsim.kernels.decode import contiguous_decode_attention, paged_decode_attention
from kvsim.kernels.prefill import contiguous_prefill_attention, paged_prefill_attention

__all__ = [
    "contiguous_decode_attention",
    "contiguous_prefill_attention",
    "paged_decode_attention",
    "paged_prefill_attention",
]
