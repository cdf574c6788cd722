"""kvsim.kernels: Triton attention kernels, paged and contiguous, decode and prefill."""
