"""Two fixes to Triton 3.6's CPU interpreter, applied only in interpreter mode (compiled kernels untouched).

1. NumPy >= 2.4: the interpreter holds every scalar as a shape-(1,) array and turns it into a `range(...)`
   bound with `int(array)`, which NumPy 2.4 made a TypeError ("only 0-dimensional arrays can be converted to
   Python scalars"; numpy.org/doc/stable/release/2.4.0-notes.html). Every kernel whose loop bounds are
   computed at run time breaks, as every attention kernel's are. Newer Triton converts via `.squeeze()`.
2. bfloat16 `tl.dot`: NumPy has no bfloat16, so the interpreter stores bf16 as its uint16 bits and
   `create_dot` multiplies those bits as integers. Widening bf16 operands to float32 first is exact (a bf16
   value is the top half of a float32) and matches the tensor cores, which multiply bf16 exactly into fp32.
"""

from __future__ import annotations

_applied = False


def apply() -> None:
    """Idempotent; call before running a kernel under TRITON_INTERPRET=1."""
    global _applied
    if _applied:
        return
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    # Other Triton versions may lack these internals (or have fixed them): then leave them alone.
    original_patch = getattr(interpreter, "_patch_lang_tensor", None)
    builder = getattr(interpreter, "InterpreterBuilder", None)
    original_dot = getattr(builder, "create_dot", None)

    def patch_lang_tensor(tensor, scope):
        original_patch(tensor, scope)
        # scope records and later restores the attribute, like the interpreter's own patches
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    if original_patch is not None:
        interpreter._patch_lang_tensor = patch_lang_tensor

    def widen(handle):
        if handle.dtype.scalar != tl.bfloat16:
            return handle
        as_fp32 = (handle.data.astype(np.uint32) << 16).view(np.float32)
        return interpreter.TensorHandle(as_fp32, tl.float32)

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        return original_dot(self, widen(a), widen(b), d, input_precision, max_num_imprecise_acc)

    if original_dot is not None:
        builder.create_dot = create_dot
    _applied = True
